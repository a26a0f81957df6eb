"""审核单位 — the work queue of one's own section, claiming, reviewing, confirming, deciding.

Each step goes to the engine with the caller as its actor; the engine decides whether this
reviewer's section holds the task, whether it is theirs to take, and separation of duties.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlmodel import Session

from api.deps import CaseNo, CurrentActor, CurrentReviewer, EngineDep, TaskId, case_id_of
from api.routes.common import fired, payload_of
from api.schemas import (
    CaseDecision,
    Confirmation,
    FireResultPublic,
    ReviewDecision,
    TaskPublic,
    task_public,
)
from models.tables import Case, ReviewTask
from models.work_queue import PAGE_DEFAULT, PAGE_MAX, section_queue

router = APIRouter(tags=["bureaus"])


@router.get("/tasks", response_model=list[TaskPublic])
def work_queue(
    account: CurrentReviewer,
    engine: EngineDep,
    status: Annotated[str, Query(pattern="^(open|done|cancelled|all)$")] = "open",
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = PAGE_DEFAULT,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> list[TaskPublic]:
    """My section's tasks, a page at a time: by due date (overdue first), then by task id."""
    today = engine.clock.today()
    with Session(engine.read_db) as s:
        rows = section_queue(
            s,
            account.bureau_code or "",
            account.section_code or "",
            status=None if status == "all" else status,
            limit=limit,
            offset=offset,
        )
    return [task_public(t, c.case_no or "", c.case_type, today) for t, c in rows]


@router.post("/tasks/{task_id}/claim", response_model=TaskPublic)
def claim(task_id: TaskId, actor: CurrentActor, engine: EngineDep) -> TaskPublic:
    """Take a task of my section; someone else's claim is a 409."""
    engine.claim_task(task_id, actor=actor)
    with Session(engine.read_db) as s:
        task = s.get(ReviewTask, task_id)
        assert task is not None
        case = s.get(Case, task.case_id)
        assert case is not None
    return task_public(task, case.case_no or "", case.case_type, engine.clock.today())


@router.post("/tasks/{task_id}/review", response_model=FireResultPublic)
def review(
    task_id: TaskId, body: ReviewDecision, actor: CurrentActor, engine: EngineDep
) -> FireResultPublic:
    """My section's review decision: pass or fail (with a reason)."""
    return fired(
        engine.decide_task(task_id, decision=body.decision, actor=actor, reason=body.reason)
    )


@router.post("/cases/{case_no}/confirm", response_model=FireResultPublic)
def confirm(
    case_no: CaseNo, body: Confirmation, actor: CurrentActor, engine: EngineDep
) -> FireResultPublic:
    """经确认: confirm the facts (optionally the confirmed figures)."""
    payload = {"facts": body.facts} if body.facts else {}
    return fired(
        engine.fire(
            case_id_of(engine, case_no),
            "confirm",
            actor=actor,
            payload=payload,
            expected_version=body.expected_version,
        )
    )


@router.post("/cases/{case_no}/decide", response_model=FireResultPublic)
def decide(
    case_no: CaseNo, body: CaseDecision, actor: CurrentActor, engine: EngineDep
) -> FireResultPublic:
    """Approve (an amount at or below the ceiling; below it is partial), reject, or ask for more."""
    payload = payload_of(amount=body.amount, reason=body.reason, items=body.items, slots=body.slots)
    return fired(
        engine.fire(
            case_id_of(engine, case_no),
            body.action,
            actor=actor,
            payload=payload,
            expected_version=body.expected_version,
        )
    )
