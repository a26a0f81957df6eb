"""发文字号的流水 — each issuer's last serial of a year, locked while numbers are handed out.

The rows are locked in key order, in the same transaction as the notices they number: a
rolled-back change leaves no hole, two changes never share a number, and two units of work
that number for the same issuers wait for each other instead of deadlocking.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import update
from sqlmodel import Session, col, select

from models.db import insert_if_absent
from models.tables import DocSerial


def lock_serials(s: Session, keys: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int]:
    """The last serial of each (prefix, year), every row locked until the transaction ends."""
    out: dict[tuple[str, int], int] = {}
    for prefix, year in sorted(set(keys)):
        insert_if_absent(s, DocSerial, {"prefix": prefix, "year": year, "last": 0})
        row = s.exec(
            select(DocSerial)
            .where(col(DocSerial.prefix) == prefix, col(DocSerial.year) == year)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).one()
        out[(prefix, year)] = row.last
    return out


def store_serials(s: Session, last: dict[tuple[str, int], int]) -> None:
    """Write back the last serial handed out for each (prefix, year) locked above."""
    for (prefix, year), serial in last.items():
        s.execute(
            update(DocSerial)
            .where(col(DocSerial.prefix) == prefix, col(DocSerial.year) == year)
            .values(last=serial)
        )
