"""时钟 — the one clock of the system, in Asia/Shanghai; tests and demos can fix it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from base.civil_dates import SHANGHAI


@dataclass(frozen=True)
class Clock:
    """Real time unless `fixed` is set (an aware datetime)."""

    fixed: datetime | None = None

    def __post_init__(self) -> None:
        if self.fixed is not None and self.fixed.tzinfo is None:
            raise ValueError("a fixed clock needs a timezone-aware datetime")

    def now(self) -> datetime:
        return (self.fixed or datetime.now(SHANGHAI)).astimezone(SHANGHAI)

    def today(self) -> date:
        return self.now().date()
