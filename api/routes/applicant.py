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
from api.schemas import (
    CaseDetail,
    CaseSummary,
    ContactIn,
    FireResultPublic,
    NoticePublic,
    Supply,
    summary,
)
from base.identifiers import bounded_key
from models.tables import CASE_LISTING, Applicant, Case
from states.contacts import stored_contact

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
    """Submit an application (a chain's stores become one case each); filed when received.
    `documents` (beside the application's own fields): files stored by `POST /api/documents`,
    `[{"slot": …, "sha256": …, "filename": …}]`."""
    key = bounded_key(actor.username, idempotency_key) if idempotency_key else None
    data = dict(application)
    documents = data.pop("documents", None) or []
    if not isinstance(documents, list):
        documents = [documents]  # the engine names the field that is wrong
    results = engine.submit(data, actor=actor, request_key=key, documents=documents)
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
            select(Case)
            .where(col(Case.applicant_id) == applicant.id)
            .options(*CASE_LISTING)
            .order_by(col(Case.id).desc())
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
    payload: dict[str, Any] = {}
    if body.facts:
        payload["facts"] = body.facts
    if body.documents:
        payload["documents"] = [d.model_dump() for d in body.documents]
    return fired(
        engine.fire(
            case_id, trigger, actor=actor, payload=payload, expected_version=body.expected_version
        )
    )


@router.get("/my/contact")
def my_contact(account: CurrentApplicant, engine: EngineDep) -> dict[str, Any]:
    """Where the signed-in applicant's notices go."""
    with Session(engine.read_db) as s:
        row = s.exec(select(Applicant).where(col(Applicant.identity) == account.uscc)).first()
    if row is None:
        return {"email": None, "phone": None, "notify": [], "im_url": None}
    return stored_contact(row)


@router.put("/my/contact")
def change_contact(body: ContactIn, actor: CurrentActor, engine: EngineDep) -> dict[str, Any]:
    """Change where notices go: every notice not yet delivered uses the new details."""
    details = body.model_dump(exclude={"expected"})
    return engine.update_contact(actor.identity or "", details, actor=actor, expected=body.expected)


@router.post("/cases/{case_no}/withdraw", response_model=FireResultPublic)
def withdraw(case_no: CaseNo, actor: CurrentActor, engine: EngineDep) -> FireResultPublic:
    """Withdraw an application that is not yet decided."""
    return fired(engine.fire(case_id_of(engine, case_no), "withdraw", actor=actor))
