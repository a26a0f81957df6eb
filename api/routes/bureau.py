"""审核单位 — the work queue of one's own section, claiming, releasing, reassigning, reviewing,
confirming, deciding.

Each step goes to the engine with the caller as its actor; the engine decides whether this
reviewer's section holds the task, whether it is theirs to take, and separation of duties.
The queue's filters and sort keys are closed vocabularies: an unknown value is a 422 naming
the parameter (docs/tasklist.md).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from sqlmodel import Session

from api.deps import CaseNo, CurrentActor, EngineDep, TaskId, case_id_of, require
from api.routes.common import fired, payload_of
from api.schemas import (
    CaseDecision,
    Confirmation,
    FireResultPublic,
    ReviewDecision,
    TaskPublic,
    task_public,
)
from models.tables import Account, Case, ReviewTask
from models.work_queue import (
    OFFSET_MAX,
    PAGE_DEFAULT,
    PAGE_MAX,
    SEARCH_MAX,
    QueueQuery,
    SortKey,
    section_page,
)
from states.catalog import catalog
from states.engine import CaseEngine
from states.lifecycle import CaseState
from states.rules import TaskKind

router = APIRouter(tags=["bureaus"])
# a section's staff: reviewers, and intake officers (their queue is the intake tasks)
CurrentStaff = Annotated[Account, Depends(require("reviewer", "intake_officer"))]


class AssigneeFilter(StrEnum):
    MINE = "mine"  # 我的任务
    UNASSIGNED = "unassigned"  # 未认领
    ANYONE = "anyone"  # 全部


class Order(StrEnum):
    ASC = "asc"
    DESC = "desc"


class Reassignment(BaseModel):
    to: str = Field(min_length=1, max_length=80, description="the colleague's login name")


def _invalid(field: str, message: str) -> RequestValidationError:
    """A 422 naming the query parameter, like FastAPI's own."""
    error = {"loc": ("query", field), "type": "value_error", "msg": message}
    return RequestValidationError([error])


@router.get(
    "/tasks",
    response_model=list[TaskPublic],
    responses={
        200: {"headers": {"X-Total-Count": {"description": "tasks matching, over every page",
                                            "schema": {"type": "integer"}}}}
    },
)  # fmt: skip
def work_queue(
    account: CurrentStaff,
    engine: EngineDep,
    response: Response,
    status: Annotated[str, Query(pattern="^(open|done|cancelled|all)$")] = "open",
    case_type: Annotated[str | None, Query(pattern="^[a-z][a-z0-9_]{0,39}$")] = None,
    kind: TaskKind | None = None,
    state: Annotated[CaseState | None, Query(description="the case's state")] = None,
    overdue: Annotated[bool | None, Query(description="true: only overdue; false: none")] = None,
    applicant: Annotated[str | None, Query(max_length=SEARCH_MAX)] = None,
    case_no: Annotated[str | None, Query(max_length=30)] = None,
    assignee: AssigneeFilter = AssigneeFilter.ANYONE,
    mine: Annotated[bool, Query(description="the same as assignee=mine")] = False,
    sort: SortKey = SortKey.DUE,
    order: Order = Order.ASC,
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = PAGE_DEFAULT,
    offset: Annotated[int, Query(ge=0, le=OFFSET_MAX)] = 0,
) -> list[TaskPublic]:
    """My section's tasks, filtered and sorted, a page at a time; the total in X-Total-Count."""
    if case_type is not None and case_type not in catalog():
        raise _invalid("case_type", f"no application type {case_type!r}")
    if mine and assignee == AssigneeFilter.UNASSIGNED:
        raise _invalid("mine", "mine=true contradicts assignee=unassigned")
    who = AssigneeFilter.MINE if mine else assignee
    query = QueueQuery(
        status=None if status == "all" else status,
        case_type=case_type,
        kind=kind,
        state=state,
        overdue=overdue,
        applicant=(applicant or "").strip() or None,
        case_no=(case_no or "").strip() or None,
        assignee=None if who == AssigneeFilter.ANYONE else who.value,
        me=account.username,
        sort=sort.value,
        descending=order == Order.DESC,
        limit=limit,
        offset=offset,
    )
    today = engine.clock.today()
    with Session(engine.read_db) as s:
        found = section_page(
            s, account.bureau_code or "", account.section_code or "", query, today=today
        )
    response.headers["X-Total-Count"] = str(found.total)
    return [task_public(r.task, r.case.case_no or "", r.case.case_type, today) for r in found.rows]


@router.post("/tasks/{task_id}/claim", response_model=TaskPublic)
def claim(task_id: TaskId, actor: CurrentActor, engine: EngineDep) -> TaskPublic:
    """Take a task of my section; someone else's claim is a 409."""
    engine.claim_task(task_id, actor=actor)
    return _task(engine, task_id)


@router.post("/tasks/{task_id}/release", response_model=TaskPublic)
def release(task_id: TaskId, actor: CurrentActor, engine: EngineDep) -> TaskPublic:
    """Give back my claim (a section head: anyone's claim in the section)."""
    engine.release_task(task_id, actor=actor)
    return _task(engine, task_id)


@router.post("/tasks/{task_id}/reassign", response_model=TaskPublic)
def reassign(
    task_id: TaskId, body: Reassignment, actor: CurrentActor, engine: EngineDep
) -> TaskPublic:
    """A section head gives a task to a colleague of the section who may take its step."""
    engine.reassign_task(task_id, to=body.to, actor=actor)
    return _task(engine, task_id)


def _task(engine: CaseEngine, task_id: int) -> TaskPublic:
    """The task as it is now (after the engine's change)."""
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
