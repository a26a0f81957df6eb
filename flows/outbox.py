"""送达 — the outbox delivery flow: every pending notice that is due, in chunks."""

from __future__ import annotations

from datetime import datetime

from prefect import flow, task
from prefect.utilities.annotations import quote
from pydantic import BaseModel, Field

from flows.common import case_engine, chunked
from flows.singleton import exclusive
from models.settings import get_settings
from notifications.delivery import deliver, due_notices


class OutboxParams(BaseModel):
    now: datetime | None = Field(default=None, description="deliver as of (default: clock)")


class OutboxSummary(BaseModel):
    due: int = 0
    delivered: int = 0
    no_channel: int = 0
    awaiting_channel: int = Field(
        default=0, description="owed on e-mail or SMS, not configured here: waiting, no incident"
    )
    retry_later: int = 0
    failed: int = 0
    busy: bool = Field(default=False, description="another outbox run held the lock; did nothing")


@task(retries=2, retry_delay_seconds=2)
def deliver_chunk(ids: list[int], now: datetime | None) -> dict[str, int]:
    engine = case_engine(now=now)
    out = {
        "delivered": 0,
        "no_channel": 0,
        "awaiting_channel": 0,
        "pending": 0,
        "failed": 0,
        "skipped": 0,
    }
    for notice_id in ids:
        out[deliver(engine.db, notice_id, engine.settings, engine.clock.now())] += 1
    return out


@flow(name="outbox", log_prints=False)
def outbox_flow(params: OutboxParams | None = None) -> OutboxSummary:
    """Deliver the notices the outbox holds (one outbox run at a time across workers)."""
    params = params or OutboxParams()
    engine = case_engine(now=params.now)
    with exclusive(engine.db, "outbox") as mine:
        if not mine:
            return OutboxSummary(busy=True)
        ids = due_notices(engine.db, engine.clock.now(), engine.settings)
        summary = OutboxSummary(due=len(ids))
        chunks = chunked(ids, get_settings().chunk_size)
        for fut in [deliver_chunk.submit(quote(c), params.now) for c in chunks]:
            part = fut.result()
            summary.delivered += part["delivered"]
            summary.no_channel += part["no_channel"]
            summary.awaiting_channel += part["awaiting_channel"]
            summary.retry_later += part["pending"]
            summary.failed += part["failed"]
        return summary
