"""Helpers the routers share: reading a case's rows, and firing with the caller's name."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from api.schemas import CaseDetail, FireResultPublic, detail
from models.tables import Case, CaseDocument, CaseEvent, Notice, ReviewTask
from states.edition import edition_by_id
from states.engine import CaseEngine, FireResult
from states.labels import state_zh


def case_detail(engine: CaseEngine, case: Case) -> CaseDetail:
    with Session(engine.read_db) as s:
        tasks = list(
            s.exec(
                select(ReviewTask)
                .where(col(ReviewTask.case_id) == case.id)
                .order_by(col(ReviewTask.id))
            ).all()
        )
        events = list(
            s.exec(
                select(CaseEvent)
                .where(col(CaseEvent.case_id) == case.id)
                .order_by(col(CaseEvent.seq))
            ).all()
        )
        notices = list(
            s.exec(
                select(Notice)
                .where(col(Notice.case_id) == case.id, col(Notice.audience) == "applicant")
                .order_by(col(Notice.id))
            ).all()
        )
    return detail(case, tasks, events, notices, engine.clock.today())


def fired(result: FireResult) -> FireResultPublic:
    return FireResultPublic(
        case_no=result.case_no,
        state=result.state,
        state_zh=state_zh(result.state),
        version=result.version,
        replayed=result.replayed,
    )


def case_notices(engine: CaseEngine, case: Case) -> list[Notice]:
    with Session(engine.read_db) as s:
        return list(
            s.exec(
                select(Notice)
                .where(col(Notice.case_id) == case.id, col(Notice.audience) == "applicant")
                .order_by(col(Notice.id))
            ).all()
        )


def documents_on(engine: CaseEngine, case: Case, *, url_prefix: str = "/api") -> list[Any]:
    """A case's documents with their slot's label, oldest first."""
    from api.schemas import CaseDocumentPublic

    edition = edition_by_id(case.edition_id)
    with Session(engine.read_db) as s:
        rows = s.exec(
            select(CaseDocument)
            .where(col(CaseDocument.case_id) == case.id)
            .order_by(col(CaseDocument.id))
        ).all()
    out = []
    for d in rows:
        assert d.id is not None
        slot = edition.slot(case.case_type, d.slot)
        out.append(
            CaseDocumentPublic(
                id=d.id,
                slot=d.slot,
                slot_label=slot.label if slot else d.slot,
                filename=d.filename,
                media_type=d.media_type,
                size=d.size,
                uploaded_by=d.uploaded_by,
                at=d.at.astimezone(engine.clock.now().tzinfo).strftime("%Y-%m-%d %H:%M"),
                url=f"{url_prefix}/cases/{case.case_no}/documents/{d.id}",
            )
        )
    return out


def payload_of(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v not in (None, "", [])}
