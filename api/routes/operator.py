"""运营 — import batches, run flows, see incidents and counts."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Query, Response
from fastapi import Path as PathParam
from pydantic import BaseModel, Field
from sqlmodel import Session

from api import throttle
from api.deps import CurrentActor, CurrentOperator, EngineDep
from notifications.incident_retry import retry_now
from reports.dashboard import incident_rows
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
    response: Response,
    status: Annotated[str, Query(pattern="^(open|retrying|resolved|all)$")] = "open",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> list[dict[str, Any]]:
    """Incidents: payments and notices that failed after their retries, requests overdue —
    open ones by default, oldest first, a page at a time (the total in X-Total-Count); each
    with its case number."""
    statuses = None if status == "all" else (status,)
    rows, total = incident_rows(engine.read_db, statuses, limit=limit, offset=offset)
    response.headers["X-Total-Count"] = str(total)
    return [
        {**i.model_dump(mode="json"), "case_no": no, "kind_zh": INCIDENT_ZH.get(i.kind, i.kind)}
        for i, no in rows
    ]


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


@router.get("/counts")
def counts(account: CurrentOperator, engine: EngineDep) -> dict[str, Any]:
    """Cases by state and type; open and overdue tasks by bureau; incidents; outbox backlog —
    the dashboard's figures (reports/dashboard.py), as JSON."""
    from collections import Counter

    from reports import dashboard as figures

    with Session(engine.read_db) as s:
        types = figures.cases_by_state(s)
        units = figures.tasks_now(s, engine.clock.today())
        backlog = figures.backlog(s)
    by_state: Counter[str] = Counter()
    for t in types:
        by_state.update(t.by_state)
    open_tasks: Counter[str] = Counter()
    overdue: Counter[str] = Counter()
    for u in units:
        open_tasks[u.bureau] += u.open_now
        if u.overdue_now:
            overdue[u.bureau] += u.overdue_now
    oldest = backlog.oldest_pending_at
    return {
        "by_state": dict(by_state),
        "by_type": {t.case_type: t.total for t in types if t.total},
        "open_tasks_by_bureau": dict(open_tasks),
        "overdue_by_bureau": dict(overdue),
        "incidents_open": backlog.incidents_open,
        "outbox_pending": backlog.notices_pending,
        "outbox_oldest_pending_at": oldest.isoformat() if oldest else None,
        "outbox_awaiting_channel": backlog.notices_awaiting_channel,
        # payouts ordered or sent but not yet paid
        "payouts_waiting": {k: n for k, (n, _) in backlog.payouts.items() if k != "failed"},
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
