"""运营 — import batches, run flows, see incidents and counts."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException
from sqlalchemy import func
from sqlmodel import Session, col, select

from api import throttle
from api.deps import CurrentOperator, EngineDep
from models.statuses import TaskStatus
from models.tables import Case, Incident, Notice, Payout, ReviewTask

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
def incidents(account: CurrentOperator, engine: EngineDep) -> list[dict[str, Any]]:
    """Open incidents: payments and notices that failed after their retries."""
    with Session(engine.read_db) as s:
        rows = s.exec(
            select(Incident).where(col(Incident.status) == "open").order_by(col(Incident.id))
        ).all()
    return [r.model_dump(mode="json") for r in rows]


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
