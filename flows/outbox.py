"""送达 — the outbox delivery flow: every pending notice that is due, in chunks."""

from __future__ import annotations

from datetime import datetime

from prefect import flow, task
from pydantic import BaseModel, Field

from flows.common import Tally, case_engine, chunked, run_chunks, total
from flows.singleton import exclusive
from models.settings import get_settings
from notifications.delivery import ChannelBreaker, deliver, due_notices


class OutboxParams(BaseModel):
    now: datetime | None = Field(default=None, description="deliver as of (default: clock)")


class OutboxSummary(Tally):
    due: int = 0
    delivered: int = 0
    no_channel: int = 0
    awaiting_channel: int = Field(
        default=0, description="owed on e-mail or SMS, not configured here: waiting, no incident"
    )
    retry_later: int = 0
    held: int = Field(
        default=0,
        description="owed only on a channel that failed RELIEF_CHANNEL_TRIP_AFTER times in a row "
        "in this run: not tried, no attempt counted, due again in the next run",
    )
    failed: int = 0
    busy: bool = Field(default=False, description="another outbox run held the lock; did nothing")


@task(retries=2, retry_delay_seconds=2)
def deliver_chunk(ids: list[int], now: datetime | None) -> OutboxSummary:
    engine = case_engine(now=now)
    breaker = ChannelBreaker(engine.settings.channel_trip_after)  # this chunk's run
    out: dict[str, int] = {}
    for notice_id in ids:
        outcome = deliver(engine.db, notice_id, engine.settings, engine.clock.now(), breaker)
        out[outcome] = out.get(outcome, 0) + 1
    return OutboxSummary(
        delivered=out.get("delivered", 0),
        no_channel=out.get("no_channel", 0),
        awaiting_channel=out.get("awaiting_channel", 0),
        retry_later=out.get("pending", 0),
        held=out.get("held", 0),
        failed=out.get("failed", 0),
    )


@flow(name="outbox", log_prints=False)
def outbox_flow(params: OutboxParams | None = None) -> OutboxSummary:
    """Deliver the notices the outbox holds (one outbox run at a time across workers)."""
    params = params or OutboxParams()
    engine = case_engine(now=params.now)
    with exclusive(engine.db, "outbox") as mine:
        if not mine:
            return OutboxSummary(busy=True)
        ids = due_notices(engine.db, engine.clock.now(), engine.settings)
        chunks = chunked(ids, get_settings().chunk_size)
        return total(OutboxSummary(due=len(ids)), run_chunks(deliver_chunk, chunks, params.now))
