"""Helpers the routers share: reading a case's rows, and firing with the caller's name."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from api.schemas import CaseDetail, FireResultPublic, detail
from models.tables import Case, CaseEvent, Notice, ReviewTask
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


def payload_of(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v not in (None, "", [])}
