"""页面 — login, the bureau case page, the operator dashboard, the status page (the tasklist:
api/pages/tasklist.py).

Pages sign in with a session cookie (HttpOnly, SameSite=Lax, kept in the database) and act
through the same engine calls as the API: the engine decides who may do what. Every form
carries a CSRF token bound to the session (api/web_session.py); messages travel in the
session, never in the URL; every template is autoescaped. A refusal comes back as a message
on the page, never a stack trace.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader
from markupsafe import Markup
from sqlmodel import Session, col, select

import templates as templates_pkg
from api import throttle, web_session
from api.deps import EngineDep, case_id_of, client_address, load_visible_case
from api.routes.common import case_detail, documents_on, payload_of
from api.routes.public import lookup
from api.schemas import PUBLIC_STATUS
from api.security import dummy_hash, password_ok
from api.web_session import CSRF_FIELD, SESSION_COOKIE, SESSION_HOURS, PageSession
from base.civil_dates import to_minute, zh_date
from base.money import format_cny, to_money
from base.query_codes import display as display_code
from models.input_errors import InvalidApplication
from models.statuses import RequestStatus, TaskStatus
from models.tables import Account, ApplicantRequest, Notice, ReviewTask
from states.actors import ROLE_ZH, actor_of
from states.catalog import spec_for
from states.documents import missing_slots
from states.edition import edition_by_id
from states.engine import CaseEngine, FireResult
from states.errors import EngineError
from states.labels import NOTICE_ZH, state_zh, trigger_zh

router = APIRouter(include_in_schema=False)
# autoescape on for every template whatever its file name (*.html.j2 is not in Starlette's
# default list, which is how an applicant's <script> once reached a clerk's browser)
_env = Environment(
    loader=FileSystemLoader(str(Path(templates_pkg.__file__).parent / "pages")),
    autoescape=True,
)
_env.globals.update(role_zh=ROLE_ZH, state_zh=state_zh, trigger_zh=trigger_zh)
_env.filters.update(minute=to_minute, yuan=lambda v: format_cny(to_money(v or 0)))
pages = Jinja2Templates(env=_env)
Csrf = Annotated[str, Form(alias=CSRF_FIELD, max_length=300)]


class CsrfRefused(Exception):
    """A state-changing form without this session's token: refused, nothing changed."""


def page_session(request: Request, engine: EngineDep) -> PageSession | None:
    return web_session.load(engine.read_db, request.cookies.get(SESSION_COOKIE), engine.clock.now())


MaybeSession = Annotated[PageSession | None, Depends(page_session)]


def page(
    request: Request,
    engine: CaseEngine,
    session: PageSession | None,
    name: str,
    *,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """Render a page; a browser without a session gets one (its forms need a CSRF token)."""
    if session is None:
        session = web_session.start(engine.db, engine.clock.now())
    response = pages.TemplateResponse(
        request,
        name,
        {
            "account": session.account,
            "flash": web_session.pop_flash(engine.db, session),
            "csrf_field": CSRF_FIELD,
            "csrf_token": web_session.csrf_token(engine.db, session, engine.settings.secret_key),
            **context,
        },
        status_code=status_code,
    )
    if session.cookie:
        set_session_cookie(response, session, engine)
    return response


def set_session_cookie(response: Response, session: PageSession, engine: CaseEngine) -> None:
    assert session.cookie is not None
    hours = SESSION_HOURS if session.account else web_session.ANONYMOUS_MINUTES / 60
    response.set_cookie(
        SESSION_COOKIE,
        session.cookie,
        httponly=True,
        samesite="lax",
        secure=engine.settings.cookie_secure,
        max_age=int(hours * 3600),
        path="/",
    )


def require_csrf(engine: CaseEngine, session: PageSession | None, token: str) -> PageSession:
    """The session this form belongs to, or CsrfRefused (a forged or stale form)."""
    if session is None or not web_session.csrf_valid(
        engine.db, session, token, engine.settings.secret_key
    ):
        raise CsrfRefused()
    return session


def csrf_refused_page(request: Request, exc: Exception) -> HTMLResponse:
    """403 for a form that did not come from our own page (registered by api.main)."""
    engine: CaseEngine = request.app.state.engine
    cookie = request.cookies.get(SESSION_COOKIE)
    session = web_session.load(engine.read_db, cookie, engine.clock.now())
    return page(request, engine, session, "refused.html.j2", status_code=403)  # still signed in


def back(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def home_of(account: Account) -> str:
    return {
        "reviewer": "/bureau/tasks",
        "intake_officer": "/bureau/tasks",
        "operator": "/operator",
        "applicant": "/my",
    }.get(account.role, "/status")


@router.get("/", response_class=HTMLResponse)
def index(session: MaybeSession) -> Response:
    account = session.account if session else None
    return back(home_of(account) if account else "/login")


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, engine: EngineDep, session: MaybeSession) -> Response:
    if session and session.account:
        return back(home_of(session.account))
    return page(request, engine, session, "login.html.j2")


@router.post("/login")
def login(
    request: Request,
    engine: EngineDep,
    session: MaybeSession,
    csrf: Csrf = "",
    username: Annotated[str, Form(max_length=200)] = "",
    password: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    """Sign in; failures slow down, then lock, per account and per address (api/throttle.py).

    The attempt is checked while both counts' rows are locked, one after another with any
    other at that moment on any process, and counts only when the password is wrong: a burst
    of guesses stops at the limit, and clerks signing in at once behind one address (a service
    hall, a proxy) are not taken for guesses. The password hash (scrypt, tens of ms) is
    computed before the rows are locked, unless a count already says wait."""
    form_session = require_csrf(engine, session, csrf)
    limits = throttle.limits(engine.settings)
    now = engine.clock.now()
    name = username.strip()[:80]
    counted = [(limits["login_address"], client_address(request)), (limits["login_account"], name)]
    account: Account | None = None
    checked = False
    try:
        with Session(engine.read_db) as s:
            for limit, key in counted:
                throttle.check(s, limit, key, now)
        account, checked = _password_account(engine, name, password), True
    except throttle.Throttled:
        pass  # refused below, where the try during the wait is counted
    try:
        with throttle.attempt(engine.db, counted, now) as attempt:
            if not checked:  # the wait ended meanwhile (or a lock was lifted)
                account = _password_account(engine, name, password)
            if account is None:
                attempt.failed()
    except throttle.Throttled as exc:
        web_session.push_flash(engine.db, form_session, exc.message_zh, "error")
        return back("/login")
    if account is None:
        web_session.push_flash(engine.db, form_session, "用户名或密码不正确", "error")
        return back("/login")
    throttle.succeed(engine.db, limits["login_account"], name)
    web_session.end(engine.db, form_session)  # a new session id on sign-in (no fixation)
    signed_in = web_session.start(engine.db, now, account)
    response = back(home_of(account))
    set_session_cookie(response, signed_in, engine)
    return response


def _password_account(engine: CaseEngine, name: str, password: str) -> Account | None:
    """The account that may sign in with this name and password, else None. scrypt runs
    whatever the account (unknown, disabled, password-less): the answer's time tells nothing."""
    with Session(engine.read_db) as s:
        account = s.exec(select(Account).where(col(Account.username) == name)).first()
    usable = account is not None and account.active and account.role != "system"
    stored = account.password_hash if usable and account is not None else None
    if not password_ok(password, stored or dummy_hash()) or not stored:
        return None
    return account


@router.post("/logout")
def logout(engine: EngineDep, session: MaybeSession, csrf: Csrf = "") -> Response:
    web_session.end(engine.db, require_csrf(engine, session, csrf))
    response = back("/login")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


async def _staff(session: MaybeSession) -> PageSession:
    if (
        session is None
        or session.account is None
        or session.account.role
        not in (
            "reviewer",
            "intake_officer",
        )
    ):
        raise HTTPException(303, headers={"Location": "/login"})
    return session


Staff = Annotated[PageSession, Depends(_staff)]


async def _case_viewer(session: MaybeSession) -> PageSession:
    """Bureau staff, and operators (read-only: an operator holds no task), see a case page."""
    if session is not None and session.account is not None and session.account.role == "operator":
        return session
    return await _staff(session)


CaseViewer = Annotated[PageSession, Depends(_case_viewer)]


def _account(session: PageSession) -> Account:
    assert session.account is not None
    return session.account


@router.get("/bureau/cases/{case_no}", response_class=HTMLResponse)
def case_page(
    request: Request, case_no: str, session: CaseViewer, engine: EngineDep
) -> HTMLResponse:
    account = _account(session)
    case = load_visible_case(engine, account, case_no[:30])
    detail = case_detail(engine, case)
    with Session(engine.read_db) as s:
        own = set(
            s.exec(
                select(ReviewTask.id).where(
                    col(ReviewTask.case_id) == case.id,
                    col(ReviewTask.status) == TaskStatus.OPEN,
                    col(ReviewTask.bureau_code) == account.bureau_code,
                    col(ReviewTask.section_code) == (account.section_code or ""),
                )
            ).all()
        )
    mine = [t for t in detail.tasks if t.id in own]
    documents = documents_on(engine, case)
    edition = edition_by_id(case.edition_id)
    return page(
        request,
        engine,
        session,
        "case.html.j2",
        case=detail,
        mine=mine,
        facts=flatten(case.facts),
        type_label=spec_for(case.case_type).label_zh,
        documents=documents,
        slots=edition.slots_for(case.case_type),
        missing=[
            s.label
            for s in missing_slots(edition, case.case_type, case.facts, {d.slot for d in documents})
        ],
        open_requests=open_requests_text(engine, case),
        backing=backing_documents(edition, case.case_type, detail.checks, documents),
        diagram=state_diagram(case.case_type, detail),
    )


def state_diagram(case_type: str, detail: Any) -> Markup | None:
    """The type's diagram with this case's state and path marked (Operate's instance view);
    None where graphviz is not installed (the page then lists the path in words only).

    The SVG is built from our own tables and labels (no applicant text), so it is inlined."""
    from process.diagram import DiagramUnavailable, highlighted

    taken = [(e.from_state or "draft", e.to_state, e.trigger) for e in detail.history]
    try:
        return Markup(highlighted(case_type, detail.state, taken))
    except DiagramUnavailable:
        return None


def backing_documents(
    edition: Any, case_type: str, checks: list[dict[str, Any]], documents: list[Any]
) -> dict[str, list[Any]]:
    """For each check, the documents of the slots that cite its clause (what backs it)."""
    by_slot: dict[str, list[Any]] = {}
    for d in documents:
        by_slot.setdefault(d.slot, []).append(d)
    out: dict[str, list[Any]] = {}
    for check in checks:
        clause = str(check.get("clause") or "")
        for slot in edition.slots_for(case_type):
            if clause and (slot.clause in clause or clause in slot.clause):
                out.setdefault(str(check["code"]), []).extend(by_slot.get(slot.slot, []))
    return out


def open_requests_text(engine: CaseEngine, case: Any) -> list[str]:
    """What the case waits for from its applicant, in words, with the deadline."""
    with Session(engine.read_db) as s:
        rows = s.exec(
            select(ApplicantRequest).where(
                col(ApplicantRequest.case_id) == case.id,
                col(ApplicantRequest.status) == RequestStatus.OPEN,
            )
        ).all()
    return [
        f"{NOTICE_ZH.get(r.kind, r.kind)}：{'、'.join(r.items) or '（见通知书）'}，"
        f"期限{zh_date(r.deadline)}"
        for r in rows
    ]


def flatten(node: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Facts as (dotted path, value) rows, lists numbered: what the applicant told us."""
    if isinstance(node, dict):
        return [row for k, v in node.items() for row in flatten(v, f"{prefix}{k}.")]
    if isinstance(node, list):
        return [row for i, v in enumerate(node, 1) for row in flatten(v, f"{prefix}{i}.")]
    return [(prefix.rstrip("."), "" if node is None else str(node))]


def act_and_return(
    engine: CaseEngine, session: PageSession, url: str, call: Callable[[], Any]
) -> Response:
    """Run an engine call for a form; its outcome becomes the next page's message."""
    try:
        result = call()
    except (EngineError, InvalidApplication) as exc:
        message = exc.message_zh if isinstance(exc, EngineError) else str(exc)
        web_session.push_flash(engine.db, session, f"未办理：{message}", "error")
    else:
        state = result.state if isinstance(result, FireResult) else None
        web_session.push_flash(
            engine.db, session, f"已办理：案件现为“{state_zh(state)}”" if state else "已办理"
        )
    return back(url)


def _case_url(case_no: str) -> str:
    return f"/bureau/cases/{case_no[:30]}"


@router.post("/bureau/cases/{case_no}/review")
def page_review(
    case_no: str,
    session: MaybeSession,
    engine: EngineDep,
    csrf: Csrf = "",
    decision: Annotated[str, Form(max_length=10)] = "",
    reason: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    form = require_csrf(engine, session, csrf)

    def call() -> Any:
        actor = _page_actor(form)
        task_id = _open_task_of(engine, form, case_no, "review")
        return engine.decide_task(
            task_id, decision=decision, actor=actor, reason=reason.strip() or None
        )

    return act_and_return(engine, form, _case_url(case_no), call)


@router.post("/bureau/cases/{case_no}/claim")
def page_claim(
    case_no: str,
    session: MaybeSession,
    engine: EngineDep,
    csrf: Csrf = "",
    task_id: Annotated[int, Form(ge=1, le=2**62)] = 1,
) -> Response:
    form = require_csrf(engine, session, csrf)
    return act_and_return(
        engine,
        form,
        _case_url(case_no),
        lambda: engine.claim_task(task_id, actor=_page_actor(form)),
    )


@router.post("/bureau/cases/{case_no}/confirm")
def page_confirm(
    case_no: str,
    session: MaybeSession,
    engine: EngineDep,
    csrf: Csrf = "",
    version: Annotated[int, Form(ge=1, le=2**62)] = 1,
) -> Response:
    form = require_csrf(engine, session, csrf)
    return act_and_return(
        engine,
        form,
        _case_url(case_no),
        lambda: engine.fire(
            case_id_of(engine, case_no[:30]),
            "confirm",
            actor=_page_actor(form),
            expected_version=version,
        ),
    )


@router.post("/bureau/cases/{case_no}/decide")
def page_decide(
    case_no: str,
    session: MaybeSession,
    engine: EngineDep,
    csrf: Csrf = "",
    action: Annotated[str, Form(max_length=20)] = "",
    version: Annotated[int, Form(ge=1, le=2**62)] = 1,
    amount: Annotated[str, Form(max_length=20)] = "",
    reason: Annotated[str, Form(max_length=2000)] = "",
    items: Annotated[str, Form(max_length=5000)] = "",
    slots: Annotated[list[str] | None, Form(max_length=20)] = None,
) -> Response:
    form = require_csrf(engine, session, csrf)

    def call() -> Any:
        if action not in ("approve", "reject", "request_info"):
            raise EngineError("未知的操作", f"unknown action {action!r}")
        lines = [i.strip() for i in items.splitlines() if i.strip()]
        payload = payload_of(
            amount=amount.strip() or None,
            reason=reason.strip() or None,
            items=lines,
            slots=[s[:60] for s in slots or []],
        )
        return engine.fire(
            case_id_of(engine, case_no[:30]),
            action,
            actor=_page_actor(form),
            payload=payload,
            expected_version=version,
        )

    return act_and_return(engine, form, _case_url(case_no), call)


def _page_actor(session: PageSession) -> Any:
    """The signed-in account as the engine's actor; signed out, the engine hears nobody."""
    if session.account is None:
        raise EngineError("请先登录", "not signed in")
    return actor_of(session.account)


def _open_task_of(engine: CaseEngine, session: PageSession, case_no: str, kind: str) -> int:
    """The id of the case's open task of `kind` for this section (the engine checks it)."""
    case = load_visible_case(engine, session.account, case_no[:30])  # else: 案件不存在
    case_id = case.id
    with Session(engine.read_db) as s:
        tasks = s.exec(
            select(ReviewTask.id, ReviewTask.bureau_code, ReviewTask.section_code)
            .where(
                col(ReviewTask.case_id) == case_id,
                col(ReviewTask.kind) == kind,
                col(ReviewTask.status) == TaskStatus.OPEN,
            )
            .order_by(col(ReviewTask.id))
        ).all()
    assert session.account is not None
    bureau, section = session.account.bureau_code, session.account.section_code
    own = [t for t, b, sec in tasks if b == bureau and sec == (section or "")]
    if not own:
        raise EngineError("本科室没有该案件待办的审核任务", f"no open {kind} task of yours")
    return int(own[0])


@router.post("/operator/locks/lift")
def page_lift_lock(
    session: MaybeSession,
    engine: EngineDep,
    csrf: Csrf = "",
    scope: Annotated[str, Form(max_length=30)] = "",
    key: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    form = require_csrf(engine, session, csrf)
    if form.account is None or form.account.role != "operator":
        return back("/login")
    lifted = throttle.lift(engine.db, scope, key, by=form.account.username, now=engine.clock.now())
    web_session.push_flash(
        engine.db, form, f"已解除锁定：{key}" if lifted else "该锁定已不存在", "info"
    )
    return back("/operator")


@router.get("/status", response_class=HTMLResponse)
def status_form(request: Request, session: MaybeSession, engine: EngineDep) -> HTMLResponse:
    return page(request, engine, session, "status.html.j2", result=None, error=None, case_no="")


@router.post("/status", response_class=HTMLResponse)
def status_page(
    request: Request,
    session: MaybeSession,
    engine: EngineDep,
    csrf: Csrf = "",
    case_no: Annotated[str, Form(max_length=60)] = "",
    code: Annotated[str, Form(max_length=60)] = "",
) -> HTMLResponse:
    """The lookup is a POST: the query code stays out of URLs, logs and Referer headers."""
    form = require_csrf(engine, session, csrf)
    result, error = None, None
    try:
        case = lookup(engine, case_no, code, client_address(request))
    except throttle.Throttled as exc:
        error = exc.message_zh
    except EngineError:
        error = "未找到该案件，请核对受理编号和查询码"
    else:
        with Session(engine.read_db) as s:
            notices = s.exec(
                select(Notice)
                .where(col(Notice.case_id) == case.id, col(Notice.audience) == "applicant")
                .order_by(col(Notice.id))
            ).all()
        result = {
            "case": case,
            "code": display_code(case.query_code),
            "status": PUBLIC_STATUS.get(case.state, case.state),
            "type_label": spec_for(case.case_type).label_zh,
            "notices": notices,
        }
    return page(
        request, engine, form, "status.html.j2", result=result, error=error, case_no=case_no
    )
