"""审核单位 — the work queue of one's own section, claiming, reviewing, confirming, deciding."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from sqlalchemy import update
from sqlmodel import Session, col

from api.deps import (
    CaseNo,
    CurrentReviewer,
    EngineDep,
    TaskId,
    check_version,
    load_visible_case,
    my_open_task,
    separation_of_duties,
)
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


def own_task(engine: EngineDep, account: CurrentReviewer, task_id: int) -> tuple[ReviewTask, Case]:
    with Session(engine.db) as s:
        task = s.get(ReviewTask, task_id)
        case = s.get(Case, task.case_id) if task else None
    mine = (
        task is not None
        and task.bureau_code == account.bureau_code
        and task.section_code == (account.section_code or "")
    )
    if not mine or case is None:
        raise HTTPException(404, detail={"message_zh": "任务不存在", "message_en": "no such task"})
    assert task is not None
    return task, case


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
    with Session(engine.db) as s:
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
def claim(task_id: TaskId, account: CurrentReviewer, engine: EngineDep) -> TaskPublic:
    """Take a task; someone else's claim is a 409."""
    task, case = own_task(engine, account, task_id)
    with Session(engine.db) as s, s.begin():
        done = s.exec(
            update(ReviewTask)
            .where(
                col(ReviewTask.id) == task_id,
                col(ReviewTask.status) == "open",
                (col(ReviewTask.assignee).is_(None))
                | (col(ReviewTask.assignee) == account.username),
            )
            .values(assignee=account.username)
        )
    if done.rowcount != 1:
        raise HTTPException(
            409,
            detail={
                "message_zh": f"该任务已由{task.assignee or '他人'}认领或已办结",
                "message_en": "claimed by someone else or closed",
            },
        )
    task.assignee = account.username
    return task_public(task, case.case_no or "", case.case_type, engine.clock.today())


@router.post("/tasks/{task_id}/review", response_model=FireResultPublic)
def review(
    task_id: TaskId, body: ReviewDecision, account: CurrentReviewer, engine: EngineDep
) -> FireResultPublic:
    """My section's review decision: pass or fail (with a reason)."""
    task, _ = own_task(engine, account, task_id)
    if task.assignee not in (None, account.username):
        raise HTTPException(
            409,
            detail={
                "message_zh": f"该任务已由{task.assignee}认领",
                "message_en": "claimed by someone else",
            },
        )
    assert task.id is not None
    return fired(
        engine.decide_task(
            task.id, decision=body.decision, actor=account.username, reason=body.reason
        )
    )


@router.post("/cases/{case_no}/confirm", response_model=FireResultPublic)
def confirm(
    case_no: CaseNo, body: Confirmation, account: CurrentReviewer, engine: EngineDep
) -> FireResultPublic:
    """经确认: confirm the facts (optionally the confirmed figures)."""
    case = load_visible_case(engine, account, case_no)
    check_version(case, body.expected_version)
    my_open_task(engine, account, case, "confirm")
    separation_of_duties(engine, account, case)
    assert case.id is not None
    payload = {"facts": body.facts} if body.facts else {}
    return fired(
        engine.fire(
            case.id,
            "confirm",
            actor=account.username,
            payload=payload,
            expected_version=body.expected_version,
        )
    )


@router.post("/cases/{case_no}/decide", response_model=FireResultPublic)
def decide(
    case_no: CaseNo, body: CaseDecision, account: CurrentReviewer, engine: EngineDep
) -> FireResultPublic:
    """Approve (an amount at or below the ceiling; below it is partial), reject, or ask for more."""
    case = load_visible_case(engine, account, case_no)
    check_version(case, body.expected_version)
    if body.action == "request_info":
        my_open_task(engine, account, case, "review")
    else:
        my_open_task(engine, account, case, "decide")
        separation_of_duties(engine, account, case)
    assert case.id is not None
    payload = payload_of(amount=body.amount, reason=body.reason, items=body.items)
    return fired(
        engine.fire(
            case.id,
            body.action,
            actor=account.username,
            payload=payload,
            expected_version=body.expected_version,
        )
    )
