"""What every flow shares: the engine from settings, chunks, and Prefect's quiet settings."""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Self, TypeVar

from pydantic import BaseModel
from sqlalchemy.engine import make_url

from base.clock import Clock
from models.db import engine_for, migrate
from models.settings import Settings, get_settings
from notifications.issuer import engine_with_notices
from states.engine import CaseEngine

T = TypeVar("T")
# Alembic's command API keeps module-level state: two tasks of one flow run (threads) that
# migrate at once fail with KeyError('script'). One migration at a time per process.
_MIGRATE_LOCK = threading.Lock()
_MIGRATED: set[tuple[str, int, int]] = set()

# Offline machines: Prefect's telemetry would only log failures; INFO logs one line per task.
PREFECT_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_LOGGING_LEVEL": "WARNING",
    # the local server's first start migrates its database: ~15-25 s on a busy 2-core machine
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
}


def configure_prefect_env() -> None:
    """Apply our Prefect defaults unless the operator set them (call before importing prefect)."""
    for key, value in PREFECT_DEFAULTS.items():
        os.environ.setdefault(key, value)


def import_prefect() -> None:
    """Import Prefect, leaving uvicorn's loggers as they were.

    Prefect configures logging on import with dictConfig naming a `uvicorn` logger, and
    dictConfig resets every existing child of a logger it names: `uvicorn.access` lost its
    handler and level, so a server stopped logging requests at its first flow call (2 of ~60
    requests were logged under `relief serve`)."""
    if "prefect.main" in sys.modules:  # `import prefect` is lazy; prefect.main sets up logging
        return
    manager = logging.Logger.manager
    saved = {
        name: (lg.level, list(lg.handlers), lg.propagate, lg.disabled)
        for name, lg in manager.loggerDict.items()
        if isinstance(lg, logging.Logger) and (name == "uvicorn" or name.startswith("uvicorn."))
    }
    import prefect.main  # noqa: F401

    for name, (level, handlers, propagate, disabled) in saved.items():
        lg = logging.getLogger(name)
        lg.setLevel(level)
        lg.handlers = handlers
        lg.propagate, lg.disabled = propagate, disabled


def case_engine(*, now: datetime | None = None, settings: Settings | None = None) -> CaseEngine:
    """The engine on RELIEF_DATABASE_URL; an embedded SQLite file sets itself up."""
    settings = settings or get_settings()
    if settings.database_url.startswith("sqlite"):
        _migrate_once(settings.database_url)
    return engine_with_notices(
        engine_for(settings.database_url), settings=settings, clock=Clock(now or settings.now)
    )


def _migrate_once(url: str) -> None:
    """Bring an embedded SQLite file to the newest schema, once per process and file.

    Alembic's check costs ~0.1 s (it reads every migration script); a payout batch of 10,000
    runs 50 tasks, each asking for an engine. The file's identity is part of the key, so a
    file deleted and made again is migrated again.
    """
    path = make_url(url).database or ""
    with _MIGRATE_LOCK:
        if _file_key(url, path) in _MIGRATED:
            return
        migrate(url)
        key = _file_key(url, path)
        if key is not None:
            _MIGRATED.add(key)


def _file_key(url: str, path: str) -> tuple[str, int, int] | None:
    """The database file's identity (device, inode), or None while it does not exist."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (url, st.st_dev, st.st_ino)


def chunked(items: Sequence[T], size: int) -> list[list[T]]:
    """Split a batch into chunks, one Prefect task each."""
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def run_chunks(task: Any, chunks: Sequence[T], *args: Any) -> list[Any]:
    """One Prefect task per chunk; their results in chunk order.

    On PostgreSQL the chunks run concurrently (Prefect's thread pool). SQLite has one writer:
    chunk transactions started together would wait for each other in SQLite's busy handler,
    which sleeps in steps of up to 100 ms, so there the chunks run one after another.

    A chunk goes to its task quoted: otherwise Prefect walks every item of every parameter
    looking for futures to wait on (~80 ms a task for 200 reconciliation lines;
    bench/prefect_cost.py). The other flows quote their chunks for the same reason.
    """
    from prefect.utilities.annotations import quote  # prefect after configure_prefect_env

    if get_settings().database_url.startswith("sqlite"):
        return [task.submit(quote(chunk), *args).result() for chunk in chunks]
    futures = [task.submit(quote(chunk), *args) for chunk in chunks]
    return [f.result() for f in futures]


@contextmanager
def heartbeats_off() -> Iterator[None]:
    """A sync flow run costs ~1 s with heartbeats on, ~0.1 s off (PREFECT-NOTES.md)."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


class Tally(BaseModel):
    """A flow's summary that adds up: each chunk's task returns one, the flow sums them
    (numbers add, lists join, counts by key merge, flags or)."""

    def add(self, other: Self) -> Self:
        merged: dict[str, Any] = {}
        for name in type(self).model_fields:
            mine, theirs = getattr(self, name), getattr(other, name)
            if isinstance(mine, bool):
                merged[name] = mine or theirs
            elif isinstance(mine, int | float):
                merged[name] = mine + theirs
            elif isinstance(mine, list):
                merged[name] = [*mine, *theirs]
            elif isinstance(mine, dict):
                merged[name] = {k: mine.get(k, 0) + theirs.get(k, 0) for k in {*mine, *theirs}}
            else:
                merged[name] = mine if mine not in (None, "") else theirs
        return type(self)(**merged)


def total(first: T, parts: Sequence[T]) -> T:
    """`first` (the flow's own fields) with every chunk's summary added."""
    out = first
    for part in parts:
        out = out.add(part)  # type: ignore[attr-defined]
    return out
