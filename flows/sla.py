"""办理时限 — the SLA sweep: remind a section before a task falls due, escalate when overdue;
remind an applicant before a 补正 / 容缺 / 补充 deadline, and end the case when it passes.

Deadlines are counted in Chinese working days and stop while the case waits on the applicant
(paused tasks are skipped). Each reminder or escalation is a case event and a notice, written
once per task or request; a second sweep the same day does nothing. An applicant's deadline
passes at the end of its day: the sweep of the next day ends the case (终止办理, with its
notice) unless the applicant answered, which closes the request.
"""

from __future__ import annotations

from datetime import datetime

from prefect import flow, task
from pydantic import BaseModel, Field
from sqlmodel import Session, col, select

from base.working_days import working_days_between
from flows.common import Tally, case_engine, chunked, run_chunks, total
from models.settings import get_settings
from models.statuses import RequestStatus, TaskStatus
from models.tables import ApplicantRequest, ReviewTask
from states.actors import SYSTEM_ACCOUNT


class SlaParams(BaseModel):
    now: datetime | None = Field(default=None, description="sweep as of this time (default: clock)")
    account: str = Field(
        default=SYSTEM_ACCOUNT,
        description="the account the flow acts as (an operator's, or system)",
    )


class SlaSummary(Tally):
    open_tasks: int = 0
    reminded: int = 0
    escalated: int = 0
    open_requests: int = 0
    applicants_reminded: int = 0
    requests_lapsed: int = 0  # the case ended (终止办理)
    requests_overdue: int = 0  # decided meanwhile: an incident for an operator


@task(retries=2, retry_delay_seconds=2)
def request_chunk(items: list[tuple[int, str]], now: datetime | None, account: str) -> SlaSummary:
    engine = case_engine(now=now)
    actor = engine.actor(account)
    out = SlaSummary()
    for request_id, kind in items:  # each its own transaction: an answer meanwhile wins
        if kind == "reminder":
            out.applicants_reminded += int(engine.note_request(request_id, actor=actor) is not None)
            continue
        result = engine.lapse_request(request_id, actor=actor)
        if result is not None:
            out.requests_lapsed += int(result.state == "expired")
            out.requests_overdue += int(result.state != "expired")
    return out


@task(retries=2, retry_delay_seconds=2)
def note_chunk(items: list[tuple[int, str]], now: datetime | None, account: str) -> SlaSummary:
    engine = case_engine(now=now)
    actor = engine.actor(account)
    out = SlaSummary()
    for task_id, kind in items:  # each its own transaction: a task closed meanwhile is skipped
        if engine.note_task(task_id, kind=kind, actor=actor) is not None:
            out.reminded += int(kind == "reminder")
            out.escalated += int(kind == "escalation")
    return out


@flow(name="sla-sweep", log_prints=False)
def sla_flow(params: SlaParams | None = None) -> SlaSummary:
    """Find tasks coming due and overdue; remind and escalate them."""
    params = params or SlaParams()
    settings = get_settings()
    engine = case_engine(now=params.now)
    today = engine.clock.today()
    with Session(engine.db) as s:
        tasks = s.exec(
            select(ReviewTask).where(
                col(ReviewTask.status) == TaskStatus.OPEN,
                col(ReviewTask.paused_on).is_(None),
                col(ReviewTask.due_on).is_not(None),
            )
        ).all()
    work: list[tuple[int, str]] = []
    for t in tasks:
        assert t.id is not None and t.due_on is not None
        if t.due_on < today:
            if t.escalated_on is None:
                work.append((t.id, "escalation"))
        elif working_days_between(today, t.due_on) <= settings.sla_remind_working_days:
            if t.reminded_on is None:
                work.append((t.id, "reminder"))
    chunks = chunked(work, settings.chunk_size)
    parts = run_chunks(note_chunk, chunks, params.now, params.account)
    with Session(engine.db) as s:
        requests = s.exec(
            select(ApplicantRequest.id, ApplicantRequest.deadline, ApplicantRequest.reminded_on)
            .where(col(ApplicantRequest.status) == RequestStatus.OPEN)
            .order_by(col(ApplicantRequest.id))
        ).all()
    asks: list[tuple[int, str]] = []
    for request_id, deadline, reminded_on in requests:
        assert request_id is not None
        if deadline < today:
            asks.append((request_id, "lapse"))
        elif reminded_on is None and (
            working_days_between(today, deadline) <= settings.applicant_remind_working_days
        ):
            asks.append((request_id, "reminder"))
    parts += run_chunks(request_chunk, chunked(asks, settings.chunk_size), params.now,
                        params.account)  # fmt: skip
    return total(SlaSummary(open_tasks=len(tasks), open_requests=len(requests)), parts)
