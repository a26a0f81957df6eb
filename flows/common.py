"""What every flow shares: the engine from settings, chunks, and Prefect's quiet settings."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import TypeVar

from models.db import engine_for, migrate
from models.settings import Settings, get_settings
from states.clock import Clock
from states.engine import CaseEngine

T = TypeVar("T")

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


def case_engine(*, now: datetime | None = None, settings: Settings | None = None) -> CaseEngine:
    """The engine on RELIEF_DATABASE_URL; an embedded SQLite file sets itself up."""
    settings = settings or get_settings()
    if settings.database_url.startswith("sqlite"):
        migrate(settings.database_url)
    return CaseEngine(
        engine_for(settings.database_url), settings=settings, clock=Clock(now or settings.now)
    )


def chunked(items: Sequence[T], size: int) -> list[list[T]]:
    """Split a batch into chunks, one Prefect task each."""
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


@contextmanager
def heartbeats_off() -> Iterator[None]:
    """A sync flow run costs ~1 s with heartbeats on, ~0.1 s off (PREFECT-NOTES.md)."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield
