"""Test helpers that play applicants and bureaus through the engine (no shortcuts)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session, SQLModel

from models.tables import Case, ReviewTask
from states.engine import CaseEngine, FireResult


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
            task.id, decision=decision, actor=f"reviewer:{task.bureau_code}", reason=reason
        )
    return result


def decide(
    engine: CaseEngine, case_id: int, *, approve: bool, payload: dict[str, Any] | None = None
) -> FireResult:
    """Reviews pass (or fail), confirmation if the type needs it, then the decision."""
    pass_reviews(engine, case_id, "pass" if approve else "fail", None if approve else "不符合条件")
    if case(engine, case_id).state == "awaiting_confirmation":
        engine.fire(case_id, "confirm", actor="confirmer")
    if approve:
        return engine.fire(case_id, "approve", actor="decider", payload=payload)
    return engine.fire(case_id, "reject", actor="decider", payload={"reason": "不符合条件"})
