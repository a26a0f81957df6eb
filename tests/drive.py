"""Test helpers that play applicants and bureaus through the engine (no shortcuts).

Each person is a real account (tests/staff.py): the applicant files for their own USCC, the
first reviewer of a section reviews, the second confirms and decides.
"""

from __future__ import annotations

from typing import Any

import staff
from sqlalchemy import func, select
from sqlmodel import Session, SQLModel

from models.tables import Case, ReviewTask
from states.engine import CaseEngine, FireResult


def submit(engine: CaseEngine, data: dict[str, Any], **kwargs: Any) -> list[FireResult]:
    """File `data` as its own applicant (online: filed on the engine's clock)."""
    return engine.submit(data, actor=staff.applicant_for(engine, data), **kwargs)


def tasks(
    engine: CaseEngine, case_id: int, *, kind: str | None = None, status: str = "open"
) -> list[ReviewTask]:
    with Session(engine.db) as s:
        stmt = select(ReviewTask).where(ReviewTask.case_id == case_id, ReviewTask.status == status)
        if kind:
            stmt = stmt.where(ReviewTask.kind == kind)
        return list(s.execute(stmt.order_by(ReviewTask.id)).scalars())


def case(engine: CaseEngine, case_id: int) -> Case:
    with Session(engine.db) as s:
        row = s.get(Case, case_id)
        assert row is not None
        return row


def count(engine: CaseEngine, table: type[SQLModel]) -> int:
    with Session(engine.db) as s:
        return int(s.execute(select(func.count()).select_from(table)).scalar_one())


def pass_reviews(
    engine: CaseEngine, case_id: int, decision: str = "pass", reason: str | None = None
) -> FireResult | None:
    result = None
    for task in tasks(engine, case_id, kind="review"):
        assert task.id is not None
        result = engine.decide_task(
            task.id, decision=decision, actor=staff.of_task(engine, task), reason=reason
        )
    return result


def fire_as_holder(
    engine: CaseEngine, case_id: int, trigger: str, kind: str, **kwargs: Any
) -> FireResult:
    """Fire `trigger` as the second reviewer of the section holding the `kind` task."""
    return engine.fire(case_id, trigger, actor=staff.holder(engine, case_id, kind), **kwargs)


def decide(
    engine: CaseEngine, case_id: int, *, approve: bool, payload: dict[str, Any] | None = None
) -> FireResult:
    """Reviews pass (or fail), confirmation if the type needs it, then the decision."""
    pass_reviews(engine, case_id, "pass" if approve else "fail", None if approve else "不符合条件")
    if case(engine, case_id).state == "awaiting_confirmation":
        fire_as_holder(engine, case_id, "confirm", "confirm")
    if approve:
        return fire_as_holder(engine, case_id, "approve", "decide", payload=payload)
    return fire_as_holder(engine, case_id, "reject", "decide", payload={"reason": "不符合条件"})


def run_to_the_end(engine: CaseEngine, data: dict[str, Any], *, approve: bool) -> int:
    """File, review, confirm, decide, and pay what is ordered (the payout flow's settle step):
    every step a person or the flow takes, each through the engine."""
    from flows.payout import settle
    from models.tables import Payout

    [result] = submit(engine, data)
    case_id = result.case_id
    if case(engine, case_id).state in ("not_accepted", "closed"):
        return case_id
    decide(engine, case_id, approve=approve)
    if case(engine, case_id).state == "payout_ordered":
        with Session(engine.db) as s:
            payout = s.execute(select(Payout).where(Payout.case_id == case_id)).scalar_one()
        settle(engine, payout, f"TR-{case_id}", staff.system(engine))
    return case_id
