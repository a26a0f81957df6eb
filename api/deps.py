"""Dependencies: the engine, the signed-in account, and the permission checks.

An account is found by `Authorization: Bearer <token>` (API) or by the `relief_session`
cookie (pages). Permission checks are dependencies, so no handler repeats them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request
from sqlmodel import Session, col, select

from api.security import token_hash
from models.tables import Account, Case, ReviewTask, WebSession
from states.engine import CaseEngine

SESSION_COOKIE = "relief_session"

# path parameters, bounded so that no input can overflow a database integer or column
TaskId = Annotated[int, Path(ge=1, le=2**62, description="task id")]
CaseNo = Annotated[
    str, Path(min_length=1, max_length=30, description="case number, e.g. DC-2022-000001")
]
SESSION_HOURS = 12


def get_engine(request: Request) -> CaseEngine:
    engine: CaseEngine = request.app.state.engine
    return engine


EngineDep = Annotated[CaseEngine, Depends(get_engine)]


def optional_account(request: Request, engine: EngineDep) -> Account | None:
    header = request.headers.get("authorization", "")
    now = engine.clock.now()
    with Session(engine.db) as s:
        if header.lower().startswith("bearer "):
            digest = token_hash(header.split(" ", 1)[1].strip())
            account = s.exec(select(Account).where(col(Account.token_hash) == digest)).first()
        else:
            cookie = request.cookies.get(SESSION_COOKIE)
            if not cookie:
                return None
            session = s.get(WebSession, token_hash(cookie))
            if session is None or session.expires_at < now - timedelta(0):
                return None
            account = s.get(Account, session.account_id)
    if account is None or not account.active:
        return None
    return account


def current_account(account: Annotated[Account | None, Depends(optional_account)]) -> Account:
    if account is None:
        raise HTTPException(
            401,
            detail={"message_zh": "请先登录或提供有效的访问令牌", "message_en": "not signed in"},
        )
    return account


CurrentAccount = Annotated[Account, Depends(current_account)]


def require(*roles: str) -> Callable[[Account], Account]:
    def check(account: CurrentAccount) -> Account:
        if account.role not in roles:
            raise HTTPException(
                403, detail={"message_zh": "无权进行此操作", "message_en": f"needs role {roles}"}
            )
        return account

    return check


CurrentOperator = Annotated[Account, Depends(require("operator"))]
CurrentReviewer = Annotated[Account, Depends(require("reviewer"))]
CurrentApplicant = Annotated[Account, Depends(require("applicant"))]


def not_found() -> HTTPException:
    # the same answer whether the case does not exist or is someone else's: nothing leaks
    return HTTPException(404, detail={"message_zh": "案件不存在", "message_en": "no such case"})


def load_visible_case(engine: CaseEngine, account: Account, case_no: str) -> Case:
    """The case if this account may see it; 404 otherwise (never 'exists but not yours')."""
    with Session(engine.db) as s:
        case = s.exec(select(Case).where(col(Case.case_no) == case_no)).first()
        if case is None:
            raise not_found()
        if account.role == "operator":
            return case
        if account.role == "applicant":
            from models.tables import Applicant

            applicant = s.get(Applicant, case.applicant_id)
            if applicant is None or applicant.identity != account.uscc:
                raise not_found()
            return case
        mine = s.exec(
            select(ReviewTask.id).where(
                col(ReviewTask.case_id) == case.id,
                col(ReviewTask.bureau_code) == account.bureau_code,
            )
        ).first()
        if mine is None:
            raise not_found()
        return case


def my_open_task(engine: CaseEngine, account: Account, case: Case, kind: str) -> ReviewTask:
    """The reviewer's own section's open task of `kind` on this case, or 403."""
    with Session(engine.db) as s:
        task = s.exec(
            select(ReviewTask).where(
                col(ReviewTask.case_id) == case.id,
                col(ReviewTask.kind) == kind,
                col(ReviewTask.status) == "open",
                col(ReviewTask.bureau_code) == account.bureau_code,
                col(ReviewTask.section_code) == (account.section_code or ""),
            )
        ).first()
    if task is None:
        with Session(engine.db) as s:
            closed = s.exec(
                select(ReviewTask.id).where(
                    col(ReviewTask.case_id) == case.id,
                    col(ReviewTask.kind) == kind,
                    col(ReviewTask.bureau_code) == account.bureau_code,
                    col(ReviewTask.section_code) == (account.section_code or ""),
                )
            ).first()
        if closed is not None:  # it was ours, and someone has just done it
            raise HTTPException(
                409,
                detail={
                    "message_zh": "该任务已办理，案件已更新，请刷新后查看",
                    "message_en": f"the {kind} task was already completed",
                },
            )
        raise HTTPException(
            403,
            detail={
                "message_zh": "本科室没有该案件的待办任务",
                "message_en": f"no open {kind} task of your section",
            },
        )
    return task


def check_version(case: Case, expected: int | None) -> None:
    """A decision made on an old view of the case is refused before anything else."""
    if expected is not None and case.version != expected:
        raise HTTPException(
            409,
            detail={
                "message_zh": f"案件已被他人修改（当前版本{case.version}，"
                f"您看到的是版本{expected}），请刷新后重试",
                "message_en": "stale version",
            },
        )


def separation_of_duties(engine: CaseEngine, account: Account, case: Case) -> None:
    """The person who reviewed a case cannot also confirm it or approve its payout."""
    with Session(engine.db) as s:
        reviewed = s.exec(
            select(ReviewTask.id).where(
                col(ReviewTask.case_id) == case.id,
                col(ReviewTask.kind) == "review",
                col(ReviewTask.decided_by) == account.username,
            )
        ).first()
    if reviewed is not None:
        raise HTTPException(
            403,
            detail={
                "message_zh": "职责分离：审核过本案件的人员不能再确认或决定",
                "message_en": "separation of duties: you reviewed this case",
            },
        )
