"""One sweep at a time: a PostgreSQL advisory lock held for the length of a flow run.

With several workers, two runs of the same scheduled sweep can overlap (a run that takes longer
than its interval, a late run picked up next to the current one). The payout and outbox sweeps
call the outside world (treasury, SMTP) between reading their work list and recording the
outcome, so two of them at once could pay or send the same thing twice. The lock lives in the
application database, not in Prefect: it is held by the run's own connection, so a run that is
killed (SIGKILL, a lost machine) releases it the moment PostgreSQL sees the connection close,
and the next scheduled run carries on. Prefect's deployment concurrency limits would instead
keep the slot of a killed run until its lease expires.

The run's lock lasts only as long as its session: a PostgreSQL restart or `pg_terminate_backend`
ends it while the run's tasks go on, and a second run may then take it. So a sweep that pays
also claims each payment (`claimed`, a transaction-level lock on the payout for the length of
one payment): whatever happened to the run's lock, two runs never pay one payout at once.

On SQLite (one machine, one writer) there is nothing to coordinate and the locks are no-ops.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from states.errors import connection_lost

log = logging.getLogger(__name__)


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
                _unlock(conn, key)


def _unlock(conn: Connection, key: int) -> None:
    """Release the run's lock; a session that died took its lock with it (nothing to do)."""
    try:
        conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
        conn.commit()
    except DBAPIError as exc:
        if not connection_lost(exc):
            raise
        log.warning("the %s lock's session was lost before the run ended", key)


@contextmanager
def claimed(db: Engine, name: str) -> Iterator[bool]:
    """Yields True if this block holds the `name` lock, False if someone else does; held in a
    transaction of its own for the length of the block, released when it ends (or when its
    session dies, with everything else of that session)."""
    if db.dialect.name != "postgresql":
        yield True
        return
    conn = db.connect()
    trans = conn.begin()
    try:
        got = conn.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": lock_key(name)})
        yield bool(got.scalar())
    finally:
        with suppress(DBAPIError):  # the lock goes with the transaction either way
            trans.rollback()
        conn.close()
