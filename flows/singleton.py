"""One sweep at a time: a PostgreSQL advisory lock held for the length of a flow run.

With several workers, two runs of the same scheduled sweep can overlap (a run that takes longer
than its interval, a late run picked up next to the current one). The payout and outbox sweeps
call the outside world (treasury, SMTP) between reading their work list and recording the
outcome, so two of them at once could pay or send the same thing twice. The lock lives in the
application database, not in Prefect: it is held by the run's own connection, so a run that is
killed (SIGKILL, a lost machine) releases it the moment PostgreSQL sees the connection close,
and the next scheduled run carries on. Prefect's deployment concurrency limits would instead
keep the slot of a killed run until its lease expires.

On SQLite (one machine, one writer) there is nothing to coordinate and the lock is a no-op.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, text


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for `relief:<name>` (pg advisory locks take a bigint)."""
    digest = hashlib.sha256(f"relief:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextmanager
def exclusive(db: Engine, name: str) -> Iterator[bool]:
    """Yields True if this run holds the `name` lock, False if another run holds it."""
    if db.dialect.name != "postgresql":
        yield True
        return
    key = lock_key(name)
    with db.connect() as conn:
        got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
        conn.commit()  # session-level lock: it outlives this statement's transaction
        try:
            yield got
        finally:
            if got:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()
