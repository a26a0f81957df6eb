"""异常重试 — an operator's "retry now", the same for the API, the page and the command line.

The engine re-queues what failed in its transaction (CaseEngine.act_on_incident); a notice is
then delivered straight away by the outbox's own delivery, which claims its attempt first, so
an outbox run at the same moment cannot send it too. A payout waits for the next payout run.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from models.tables import Incident, Notice
from notifications.delivery import deliver
from states.actors import Actor
from states.engine import CaseEngine


def retry_now(engine: CaseEngine, incident_id: int, actor: Actor) -> dict[str, Any]:
    """The one way to retry an incident (API and page): the engine re-queues it in its
    transaction; a notice is then delivered straight away by the outbox's own delivery
    (`skipped` when an outbox run took it first)."""
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
        # delivery claims its attempt first: an outbox run at this moment cannot send it too
        outcome = deliver(engine.db, notice_id, engine.settings, engine.clock.now())
    with Session(engine.read_db) as s:
        after = s.get(Incident, incident_id)
        status = after.status if after else "retrying"
    return {"incident_id": incident_id, "case_no": done.case_no, "outcome": outcome,
            "status": status}  # fmt: skip
