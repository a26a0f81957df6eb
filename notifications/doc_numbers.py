"""发文字号 — `东市监〔2022〕12号`: serial per issuer and year, no gaps, no repeats.

The serial row is locked (FOR UPDATE on PostgreSQL; SQLite transactions are serialised) in the
same transaction as the state change that issues the notice, so a rolled-back change leaves
no hole and two changes never share a number.
"""

from __future__ import annotations

from sqlalchemy import update
from sqlmodel import Session, col, select

from models.tables import DocSerial


def doc_number(prefix: str, year: int, serial: int) -> str:
    """GB/T 9704-2012 §7.2.5: year in 〔〕, serial without 第 or leading zeros, ending in 号."""
    return f"{prefix}〔{year}〕{serial}号"


def next_doc_number(s: Session, prefix: str, year: int) -> str:
    serial = lock_serial(s, prefix, year) + 1
    s.exec(
        update(DocSerial)
        .where(col(DocSerial.prefix) == prefix, col(DocSerial.year) == year)
        .values(last=serial)
    )
    return doc_number(prefix, year, serial)


def lock_serial(s: Session, prefix: str, year: int) -> int:
    """The last serial the issuer used this year, its row locked until the transaction ends.

    The caller writes the new last serial back in the same transaction (the batch path hands
    out a run of numbers and writes the last one once).
    """
    dialect = s.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    s.exec(insert(DocSerial).values(prefix=prefix, year=year, last=0).on_conflict_do_nothing())  # type: ignore[call-overload]
    row = s.exec(
        select(DocSerial)
        .where(col(DocSerial.prefix) == prefix, col(DocSerial.year) == year)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    return row.last
