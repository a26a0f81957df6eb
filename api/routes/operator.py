"""运营 — import batches, run flows, see incidents and counts."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Query
from fastapi import Path as PathParam
from pydantic import BaseModel, Field
from sqlalchemy import func
from sqlmodel import Session, col, select

from api import throttle
from api.deps import CurrentActor, CurrentOperator, EngineDep
from models.statuses import TaskStatus
from models.tables import Case, Incident, Notice, Payout, ReviewTask
from states.actors import Actor
from states.engine import CaseEngine
from states.labels import INCIDENT_ZH

router = APIRouter(prefix="/operator", tags=["operators"])
FLOWS = ("sla", "payout", "outbox")


@router.post("/batches")
def import_batch(
    account: CurrentOperator,
    engine: EngineDep,
    applications: Annotated[list[dict[str, Any]], Body(embed=True, max_length=10000)],
    batch_id: Annotated[str | None, Body(embed=True, max_length=120)] = None,
) -> dict[str, Any]:
    """Import a batch of applications through the intake flow (a Prefect flow run)."""
    from flows.intake import IntakeParams, intake_flow

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "batch.json"
        path.write_text(json.dumps(applications, ensure_ascii=False), encoding="utf-8")
        summary = intake_flow(IntakeParams(file=path, batch_id=batch_id, account=account.username))
    return summary.model_dump(mode="json")


@router.post("/flows/{name}")
def run_flow(name: str, account: CurrentOperator, engine: EngineDep) -> dict[str, Any]:
    """Run a scheduled flow now: sla, payout or outbox."""
    if name not in FLOWS:
        raise HTTPException(
            404,
            detail={
                "message_zh": f"没有名为{name}的流程，可选：{'、'.join(FLOWS)}",
                "message_en": "unknown flow",
            },
        )
    if name == "sla":
        from flows.sla import SlaParams, sla_flow

        return sla_flow(SlaParams(account=account.username)).model_dump(mode="json")
    if name == "payout":
        from flows.payout import PayoutParams, payout_flow

        return payout_flow(PayoutParams(account=account.username)).model_dump(mode="json")
    from flows.outbox import outbox_flow

    return outbox_flow().model_dump(mode="json")


@router.get("/incidents")
def incidents(
    account: CurrentOperator,
    engine: EngineDep,
    status: Annotated[str, Query(pattern="^(open|retrying|resolved|all)$")] = "open",
) -> list[dict[str, Any]]:
    """Incidents: payments and notices that failed after their retries, requests overdue —
    open ones by default; each with its case number."""
    return [
        {**i.model_dump(mode="json"), "case_no": no, "kind_zh": INCIDENT_ZH.get(i.kind, i.kind)}
        for i, no in incident_rows(engine, None if status == "all" else status)
    ]


def incident_rows(engine: CaseEngine, status: str | None) -> list[tuple[Incident, str | None]]:
    with Session(engine.read_db) as s:
        query = select(Incident, Case.case_no).join(
            Case, col(Case.id) == col(Incident.case_id), isouter=True
        )
        if status is not None:
            query = query.where(col(Incident.status) == status)
        return [(i, no) for i, no in s.exec(query.order_by(col(Incident.id))).all()]


IncidentId = Annotated[int, PathParam(ge=1, le=2**31 - 1)]


class IncidentNote(BaseModel):
    note: str = Field(default="", max_length=2000, description="resolve: how it was handled")


@router.post("/incidents/{incident_id}/retry")
def retry_incident(
    incident_id: IncidentId, actor: CurrentActor, engine: EngineDep
) -> dict[str, Any]:
    """Retry now: a failed notice is delivered again at once; a failed payout goes back to
    the payment queue for the next payout run (same idempotency key). An audit event."""
    return retry_now(engine, incident_id, actor)


@router.post("/incidents/{incident_id}/resolve")
def resolve_incident(
    incident_id: IncidentId,
    body: IncidentNote,
    actor: CurrentActor,
    engine: EngineDep,
) -> dict[str, Any]:
    """Close an incident handled outside relief, with a note saying how. An audit event."""
    done = engine.act_on_incident(incident_id, action="resolve", actor=actor, note=body.note)
    return {"incident_id": incident_id, "status": "resolved", "case_no": done.case_no}


def retry_now(engine: CaseEngine, incident_id: int, actor: Actor) -> dict[str, Any]:
    """The one way to retry an incident (API and page): the engine re-queues it in its
    transaction; a notice is then delivered straight away by the outbox's own delivery."""
    from notifications.delivery import deliver

    done = engine.act_on_incident(incident_id, action="retry", actor=actor)
    with Session(engine.read_db) as s:
        incident = s.get(Incident, incident_id)
        assert incident is not None
        what, _, key = incident.ref.partition(":")
        notice_id = (
            s.exec(select(Notice.id).where(col(Notice.idempotency_key) == key)).first()
            if what == "notice"
            else None
        )
    outcome = "queued"
    if notice_id is not None:
        outcome = deliver(engine.db, notice_id, engine.settings, engine.clock.now())
    with Session(engine.read_db) as s:
        after = s.get(Incident, incident_id)
        status = after.status if after else "retrying"
    return {"incident_id": incident_id, "case_no": done.case_no, "outcome": outcome,
            "status": status}  # fmt: skip


@router.get("/counts")
def counts(account: CurrentOperator, engine: EngineDep) -> dict[str, Any]:
    """Cases by state and type; open and overdue tasks by bureau; incidents; outbox backlog."""
    today = engine.clock.today()
    with Session(engine.read_db) as s:
        by_state = dict(s.exec(select(Case.state, func.count()).group_by(col(Case.state))).all())
        by_type = dict(
            s.exec(select(Case.case_type, func.count()).group_by(col(Case.case_type))).all()
        )
        open_tasks = s.exec(
            select(ReviewTask.bureau_code, func.count())
            .where(col(ReviewTask.status) == TaskStatus.OPEN)
            .group_by(col(ReviewTask.bureau_code))
        ).all()
        overdue = s.exec(
            select(ReviewTask.bureau_code, func.count())
            .where(
                col(ReviewTask.status) == TaskStatus.OPEN,
                col(ReviewTask.due_on) < today,
                col(ReviewTask.paused_on).is_(None),
            )
            .group_by(col(ReviewTask.bureau_code))
        ).all()
        incidents_open = s.exec(
            select(func.count()).select_from(Incident).where(col(Incident.status) == "open")
        ).one()
        # the outbox backlog: pending notices, and how old the oldest is (a stuck delivery
        # flow shows here first); payouts ordered or sent but not yet paid
        outbox_pending, oldest = s.exec(
            select(func.count(), func.min(Notice.created_at)).where(col(Notice.status) == "pending")
        ).one()
        # owed on e-mail or SMS that this installation has not configured: not incidents
        awaiting_channel = s.exec(
            select(func.count()).select_from(Notice).where(col(Notice.status) == "awaiting_channel")
        ).one()
        payouts_waiting = dict(
            s.exec(
                select(Payout.status, func.count())
                .where(col(Payout.status).in_(["ordered", "sent"]))
                .group_by(col(Payout.status))
            ).all()
        )
    return {
        "by_state": by_state,
        "by_type": by_type,
        "open_tasks_by_bureau": dict(open_tasks),
        "overdue_by_bureau": dict(overdue),
        "incidents_open": incidents_open,
        "outbox_pending": outbox_pending,
        "outbox_oldest_pending_at": oldest.isoformat() if oldest else None,
        "outbox_awaiting_channel": awaiting_channel,
        "payouts_waiting": payouts_waiting,
    }


@router.get("/locks")
def locks(account: CurrentOperator, engine: EngineDep) -> list[dict[str, Any]]:
    """Accounts, addresses and cases locked after repeated failures (sign-in, token, lookup)."""
    return [
        {**r.model_dump(mode="json"), "scope_zh": throttle.SCOPE_ZH.get(r.scope, r.scope)}
        for r in throttle.current_locks(engine.db, engine.clock.now())
    ]


@router.post("/locks/lift")
def lift_lock(
    account: CurrentOperator,
    engine: EngineDep,
    scope: Annotated[str, Body(embed=True, max_length=30)],
    key: Annotated[str, Body(embed=True, max_length=200)],
) -> dict[str, Any]:
    """Lift a lock; its count starts afresh. 404 when nothing is locked under that key."""
    if not throttle.lift(engine.db, scope, key, by=account.username, now=engine.clock.now()):
        raise HTTPException(404, detail={"message_zh": "没有该锁定", "message_en": "no such lock"})
    return {"scope": scope, "key": key, "lifted_by": account.username}
