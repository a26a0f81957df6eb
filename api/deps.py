"""Dependencies: the engine and who is asking — nothing more.

An account is found by `Authorization: Bearer <token>` (API) or by the `relief_session`
cookie (pages) and handed to the engine as an Actor. What the actor may do is the engine's
decision (states/authority.py), so the API, the pages, the CLI and the flows cannot differ.
The role dependencies below only pick which routes a kind of account sees.

A dependency that only looks at what is already read is `async def`: FastAPI runs a plain
`def` dependency in the thread pool, and under load each such hop waits its turn for one of
the process's `api_threads` again (docs/reliability.md, "Load"). Only the ones that read the
database stay plain `def`.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request
from sqlmodel import Session, col, select

from api import throttle, web_session
from api.security import token_hash
from api.web_session import SESSION_COOKIE
from models.tables import Account, Applicant, Case, ReviewTask
from states.actors import Actor, actor_of
from states.authority import can_see
from states.engine import CaseEngine
from states.errors import CaseNotFound, no_such_case

# path parameters, bounded so that no input can overflow a database integer or column
TaskId = Annotated[int, Path(ge=1, le=2**31 - 1, description="task id (a 32-bit key)")]
CaseNo = Annotated[
    str, Path(min_length=1, max_length=30, description="case number, e.g. DC-2022-000001")
]


async def get_engine(request: Request) -> CaseEngine:
    engine: CaseEngine = request.app.state.engine
    return engine


EngineDep = Annotated[CaseEngine, Depends(get_engine)]


def client_address(request: Request) -> str:
    """The client's address as the server sees it (behind a trusted proxy, the forwarded one)."""
    return request.client.host if request.client else "unknown"


def optional_account(request: Request, engine: EngineDep) -> Account | None:
    """The account of a Bearer token, or of the page session's cookie (pages, and API reads).

    A wrong token counts against the client address; while the address is held off, even a
    right token waits. A cookie does not authorize a request that changes something (a
    cross-site form could send it): those need the token.
    """
    header = request.headers.get("authorization", "")
    now = engine.clock.now()
    if header.lower().startswith("bearer "):
        limit = throttle.limits(engine.settings)["token_address"]
        address = client_address(request)
        digest = token_hash(header.split(" ", 1)[1].strip())
        with Session(engine.read_db) as s:
            throttle.check(s, limit, address, now)
            account = s.exec(select(Account).where(col(Account.token_hash) == digest)).first()
        if account is None:
            throttle.fail(engine.db, limit, address, now)
            return None
    else:
        # the API's own dependency (the pages read their session themselves): a request that
        # changes something needs the token, whatever the path it is mounted under
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            return None
        session = web_session.load(engine.read_db, request.cookies.get(SESSION_COOKIE), now)
        account = session.account if session else None
    if account is None or not account.active or account.role == "system":
        return None
    return account


async def current_account(account: Annotated[Account | None, Depends(optional_account)]) -> Account:
    if account is None:
        raise HTTPException(
            401,
            detail={"message_zh": "请先登录或提供有效的访问令牌", "message_en": "not signed in"},
        )
    return account


CurrentAccount = Annotated[Account, Depends(current_account)]


def require(*roles: str) -> Callable[[Account], Coroutine[None, None, Account]]:
    async def check(account: CurrentAccount) -> Account:
        if account.role not in roles:
            raise HTTPException(
                403, detail={"message_zh": "无权进行此操作", "message_en": f"needs role {roles}"}
            )
        return account

    return check


CurrentOperator = Annotated[Account, Depends(require("operator"))]
CurrentReviewer = Annotated[Account, Depends(require("reviewer"))]
CurrentApplicant = Annotated[Account, Depends(require("applicant"))]


def not_found() -> CaseNotFound:
    """The same answer whether the case does not exist or is someone else's: nothing leaks
    (the engine answers a case its actor may not see with this very error)."""
    return no_such_case()


async def actor(account: CurrentAccount) -> Actor:
    return actor_of(account)


CurrentActor = Annotated[Actor, Depends(actor)]


def case_id_of(engine: CaseEngine, case_no: str) -> int:
    """The id of a case by its number (the engine decides who may act on it)."""
    with Session(engine.read_db) as s:
        found = s.exec(select(Case.id).where(col(Case.case_no) == case_no)).first()
    if found is None:
        raise not_found()
    return found


def load_visible_case(engine: CaseEngine, account: Account, case_no: str) -> Case:
    """The case if this account may see it (states/authority.can_see); 404 otherwise."""
    with Session(engine.read_db) as s:
        case = s.exec(select(Case).where(col(Case.case_no) == case_no)).first()
        if case is None:
            raise not_found()
        owner = s.exec(
            select(Applicant.identity).where(col(Applicant.id) == case.applicant_id)
        ).first()
        bureaus = s.exec(
            select(ReviewTask.bureau_code).where(col(ReviewTask.case_id) == case.id)
        ).all()
    if not can_see(actor_of(account), owner, bureaus):
        raise not_found()
    return case
