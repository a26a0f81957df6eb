"""页面 — login, the bureau tasklist and case page, the operator dashboard, the status page.

Pages sign in with a session cookie (HttpOnly, SameSite=Lax, kept in the database) and act
through the same engine calls and permission checks as the API. A refusal comes back as a
message on the page, never a stack trace.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlmodel import Session, col, select

import templates as templates_pkg
from api.deps import (
    SESSION_COOKIE,
    SESSION_HOURS,
    EngineDep,
    load_visible_case,
    my_open_task,
    optional_account,
    separation_of_duties,
)
from api.routes.common import case_detail, payload_of
from api.routes.operator import counts, incidents
from api.routes.public import find_by_code
from api.schemas import PUBLIC_STATUS, task_public
from api.security import new_token, password_ok, token_hash
from models.input_errors import InvalidApplication
from models.tables import Account, ReviewTask, WebSession
from models.work_queue import section_queue
from states.catalog import spec_for
from states.engine import EngineError
from states.labels import state_zh

router = APIRouter(include_in_schema=False)
pages = Jinja2Templates(directory=str(Path(templates_pkg.__file__).parent / "pages"))
MaybeAccount = Annotated[Account | None, Depends(optional_account)]


def page(request: Request, name: str, account: Account | None, **context: Any) -> HTMLResponse:
    return pages.TemplateResponse(
        request, name, {"account": account, "msg": request.query_params.get("msg"), **context}
    )


def back(url: str, message: str | None = None) -> RedirectResponse:
    return RedirectResponse(f"{url}?msg={quote(message)}" if message else url, status_code=303)


def home_of(account: Account) -> str:
    return {"reviewer": "/bureau/tasks", "operator": "/operator"}.get(account.role, "/status")


@router.get("/", response_class=HTMLResponse)
def index(account: MaybeAccount) -> Response:
    return RedirectResponse(home_of(account) if account else "/login", status_code=303)


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, account: MaybeAccount) -> HTMLResponse:
    return page(request, "login.html.j2", account)


@router.post("/login")
def login(
    engine: EngineDep, username: Annotated[str, Form()], password: Annotated[str, Form()]
) -> Response:
    with Session(engine.db) as s, s.begin():
        account = s.exec(select(Account).where(col(Account.username) == username)).first()
        if (
            account is None
            or not account.active
            or not password_ok(password, account.password_hash)
        ):
            return back("/login", "用户名或密码不正确")
        token = new_token()
        assert account.id is not None
        s.add(
            WebSession(
                token_hash=token_hash(token),
                account_id=account.id,
                expires_at=engine.clock.now() + timedelta(hours=SESSION_HOURS),
            )
        )
        target = home_of(account)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE, token, httponly=True, samesite="lax", max_age=SESSION_HOURS * 3600
    )
    return response


@router.post("/logout")
def logout(request: Request, engine: EngineDep) -> Response:
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        with Session(engine.db) as s, s.begin():
            row = s.get(WebSession, token_hash(cookie))
            if row is not None:
                s.delete(row)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


def reviewer(account: MaybeAccount) -> Account:
    if account is None or account.role != "reviewer":
        raise HTTPException(303, headers={"Location": "/login"})
    return account


Reviewer = Annotated[Account, Depends(reviewer)]


@router.get("/bureau/tasks", response_class=HTMLResponse)
def tasklist(request: Request, account: Reviewer, engine: EngineDep) -> HTMLResponse:
    today = engine.clock.today()
    with Session(engine.db) as s:
        rows = section_queue(s, account.bureau_code or "", account.section_code or "")
    tasks = [
        (task_public(t, c.case_no or "", c.case_type, today), spec_for(c.case_type).label_zh)
        for t, c in rows
    ]
    return page(request, "tasks.html.j2", account, tasks=tasks, today=today)


@router.get("/bureau/cases/{case_no}", response_class=HTMLResponse)
def case_page(request: Request, case_no: str, account: Reviewer, engine: EngineDep) -> HTMLResponse:
    case = load_visible_case(engine, account, case_no)
    detail = case_detail(engine, case)
    mine = [
        t for t in detail.tasks if t.status == "open" and t.unit and _is_mine(engine, account, t.id)
    ]
    return page(
        request,
        "case.html.j2",
        account,
        case=detail,
        mine=mine,
        type_label=spec_for(case.case_type).label_zh,
    )


def _is_mine(engine: EngineDep, account: Account, task_id: int) -> bool:
    with Session(engine.db) as s:
        t = s.get(ReviewTask, task_id)
    return (
        t is not None
        and t.bureau_code == account.bureau_code
        and t.section_code == (account.section_code or "")
    )


def _act(url: str, call: Any) -> RedirectResponse:
    try:
        result = call()
    except (EngineError, InvalidApplication, HTTPException) as exc:
        message = getattr(exc, "message_zh", None) or (
            exc.detail.get("message_zh")
            if isinstance(exc, HTTPException) and isinstance(exc.detail, dict)
            else str(exc)
        )
        return back(url, f"未办理：{message}")
    return back(url, f"已办理：案件现为“{state_zh(result.state)}”")


@router.post("/bureau/cases/{case_no}/review")
def page_review(
    case_no: str,
    account: Reviewer,
    engine: EngineDep,
    decision: Annotated[str, Form()],
    reason: Annotated[str, Form()] = "",
) -> Response:
    url = f"/bureau/cases/{case_no}"

    def call() -> Any:
        case = load_visible_case(engine, account, case_no)
        task = my_open_task(engine, account, case, "review")
        assert task.id is not None
        return engine.decide_task(
            task.id, decision=decision, actor=account.username, reason=reason or None
        )

    return _act(url, call)


@router.post("/bureau/cases/{case_no}/confirm")
def page_confirm(
    case_no: str, account: Reviewer, engine: EngineDep, version: Annotated[int, Form()]
) -> Response:
    url = f"/bureau/cases/{case_no}"

    def call() -> Any:
        case = load_visible_case(engine, account, case_no)
        my_open_task(engine, account, case, "confirm")
        separation_of_duties(engine, account, case)
        assert case.id is not None
        return engine.fire(case.id, "confirm", actor=account.username, expected_version=version)

    return _act(url, call)


@router.post("/bureau/cases/{case_no}/decide")
def page_decide(
    case_no: str,
    account: Reviewer,
    engine: EngineDep,
    action: Annotated[str, Form()],
    version: Annotated[int, Form()],
    amount: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
    items: Annotated[str, Form()] = "",
) -> Response:
    url = f"/bureau/cases/{case_no}"

    def call() -> Any:
        if action not in ("approve", "reject", "request_info"):
            raise HTTPException(422, detail={"message_zh": "未知的操作"})
        case = load_visible_case(engine, account, case_no)
        if action == "request_info":
            my_open_task(engine, account, case, "review")
        else:
            my_open_task(engine, account, case, "decide")
            separation_of_duties(engine, account, case)
        assert case.id is not None
        lines = [i.strip() for i in items.splitlines() if i.strip()]
        payload = payload_of(
            amount=amount.strip() or None, reason=reason.strip() or None, items=lines
        )
        return engine.fire(
            case.id, action, actor=account.username, payload=payload, expected_version=version
        )

    return _act(url, call)


@router.get("/operator", response_class=HTMLResponse)
def dashboard(request: Request, account: MaybeAccount, engine: EngineDep) -> Response:
    if account is None or account.role != "operator":
        return RedirectResponse("/login", status_code=303)
    return page(
        request,
        "operator.html.j2",
        account,
        counts=counts(account, engine),
        incidents=incidents(account, engine),
    )


@router.get("/status", response_class=HTMLResponse)
def status_page(
    request: Request, account: MaybeAccount, engine: EngineDep, case_no: str = "", code: str = ""
) -> HTMLResponse:
    result = None
    error = None
    if case_no or code:
        try:
            case = find_by_code(engine, case_no.strip(), code.strip())
        except HTTPException:
            error = "未找到该案件，请核对受理编号和查询码"
        else:
            with Session(engine.db) as s:
                from models.tables import Notice

                notices = s.exec(
                    select(Notice)
                    .where(col(Notice.case_id) == case.id, col(Notice.audience) == "applicant")
                    .order_by(col(Notice.id))
                ).all()
            result = {
                "case": case,
                "status": PUBLIC_STATUS.get(case.state, case.state),
                "type_label": spec_for(case.case_type).label_zh,
                "notices": notices,
            }
    return page(request, "status.html.j2", account, result=result, error=error, case_no=case_no)
