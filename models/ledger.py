"""尝试台账 — one ledger for every attempt to reach the outside: notice deliveries and payments.

An attempt is committed as `sending` before the outside is called and updated with what came
back after, each in its own transaction: a crash in between leaves `sending`, which the next
run resolves (a payment by asking the treasury, a notice by sending again with the same
Message-ID / Idempotency-Key). The same pattern serves both tables.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, SQLModel, col, select

from models.statuses import ATTEMPT_MOVES, check


def record_attempt(
    db: Engine,
    model: type[SQLModel],
    key: dict[str, Any],
    *,
    status: str,
    at: datetime,
    **values: Any,
) -> None:
    """Insert the attempt `key` names, or move it to `status` (its own committed transaction)."""
    with Session(db) as s, s.begin():
        stmt = select(model)
        for column, value in key.items():
            stmt = stmt.where(col(getattr(model, column)) == value)
        row = s.exec(stmt).first()
        if row is None:
            row = model(**key, status=status, at=at, **values)
        else:
            check(ATTEMPT_MOVES, row.status, status)  # type: ignore[attr-defined]
            row.status, row.at = status, at  # type: ignore[attr-defined]
            for column, value in values.items():
                setattr(row, column, value)
        s.add(row)
