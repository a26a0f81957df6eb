"""申请人 — submit, supply requested material, withdraw, see one's own cases and notices."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Header
from sqlmodel import Session, col, select

from api.deps import (
    CaseNo,
    CurrentAccount,
    CurrentActor,
    CurrentApplicant,
    EngineDep,
    case_id_of,
    load_visible_case,
)
from api.routes.common import case_detail, case_notices, fired
from api.schemas import CaseDetail, CaseSummary, FireResultPublic, NoticePublic, Supply, summary
from base.identifiers import bounded_key
from models.tables import Applicant, Case

router = APIRouter(tags=["applicants"])


@router.post("/applications", response_model=list[CaseSummary], status_code=201)
def submit_application(
    actor: CurrentActor,
    engine: EngineDep,
    application: Annotated[
        dict[str, Any], Body(description="an application; see `relief schema TYPE`")
    ],
    idempotency_key: Annotated[str | None, Header(max_length=120)] = None,
) -> list[CaseSummary]:
    """Submit an application (a chain's stores become one case each); filed when received."""
    key = bounded_key(actor.username, idempotency_key) if idempotency_key else None
    results = engine.submit(application, actor=actor, request_key=key)
    with Session(engine.read_db) as s:
        cases = [s.get(Case, r.case_id) for r in results]
    return [CaseSummary(**summary(c)) for c in cases if c is not None]


@router.get("/my/cases", response_model=list[CaseSummary])
def my_cases(account: CurrentApplicant, engine: EngineDep) -> list[CaseSummary]:
    """The signed-in applicant's cases, newest first."""
    with Session(engine.read_db) as s:
        applicant = s.exec(select(Applicant).where(col(Applicant.identity) == account.uscc)).first()
        if applicant is None:
            return []
        rows = s.exec(
            select(Case).where(col(Case.applicant_id) == applicant.id).order_by(col(Case.id).desc())
        ).all()
    return [CaseSummary(**summary(c)) for c in rows]


@router.get("/cases/{case_no}", response_model=CaseDetail)
def get_case(case_no: CaseNo, account: CurrentAccount, engine: EngineDep) -> CaseDetail:
    """A case with its facts, every check and its reason, tasks, history and notices."""
    return case_detail(engine, load_visible_case(engine, account, case_no))


@router.get("/cases/{case_no}/notices", response_model=list[NoticePublic])
def get_notices(case_no: CaseNo, account: CurrentAccount, engine: EngineDep) -> list[NoticePublic]:
    """The notices issued on a case."""
    case = load_visible_case(engine, account, case_no)
    return [NoticePublic.of(n) for n in case_notices(engine, case)]


@router.post("/cases/{case_no}/supply", response_model=FireResultPublic)
def supply(
    case_no: CaseNo, body: Supply, actor: CurrentActor, engine: EngineDep
) -> FireResultPublic:
    """Send the corrected (补正) or additional (补充) material the bureau asked for."""
    case_id = case_id_of(engine, case_no)
    with Session(engine.read_db) as s:
        state = s.exec(select(Case.state).where(col(Case.id) == case_id)).one()
    trigger = "resubmit" if state == "correction_requested" else "supply_info"
    return fired(
        engine.fire(
            case_id,
            trigger,
            actor=actor,
            payload={"facts": body.facts},
            expected_version=body.expected_version,
        )
    )


@router.post("/cases/{case_no}/withdraw", response_model=FireResultPublic)
def withdraw(case_no: CaseNo, actor: CurrentActor, engine: EngineDep) -> FireResultPublic:
    """Withdraw an application that is not yet decided."""
    return fired(engine.fire(case_id_of(engine, case_no), "withdraw", actor=actor))
