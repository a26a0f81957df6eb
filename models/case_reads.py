"""案件查询 — the reads of one case the command line prints, in SQLAlchemy Core.

`relief status` and `relief history` must answer in well under a second; importing the ORM
(SQLModel and pydantic's table models) alone costs half of one. These queries name the columns
of models/tables.py and give each the same column type, so money stays Decimal and times stay
aware; tests/unit/test_case_reads.py compares them with the ORM's rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import JSON, Boolean, Date, Engine, Row, text

from models.db import read_only
from models.types import AwareDateTime, MoneyType

_CASE_COLUMNS = (
    "SELECT id, case_no, case_type, state, version, decision, amount_ceiling, amount_granted,"
    " filed_on, edition_id, manual_review FROM relief_case WHERE "
)
_CASE_TYPES = dict(
    amount_ceiling=MoneyType, amount_granted=MoneyType, filed_on=Date, manual_review=Boolean
)
_CASE_BY_NO = text(_CASE_COLUMNS + "case_no = :ref").columns(**_CASE_TYPES)
_CASE_BY_ID = text(_CASE_COLUMNS + "id = :ref").columns(**_CASE_TYPES)
_TASKS = text(
    "SELECT id, kind, unit, status, due_on, decision FROM review_task"
    " WHERE case_id = :case_id ORDER BY id"
).columns(due_on=Date)
_EVENTS = text(
    'SELECT seq, at, "trigger", from_state, to_state, actor, payload FROM case_event'
    " WHERE case_id = :case_id ORDER BY seq"
).columns(at=AwareDateTime, payload=JSON)


def find_case(db: Engine, ref: str) -> Row[Any] | None:
    """The case numbered `ref` (DC-2022-000001), or with id `ref` when it is all digits; None
    for anything else, however it is made."""
    if len(ref) > 30 or "\x00" in ref:  # case_no is at most 30 characters, never a NUL
        return None
    by_id = ref.isascii() and ref.isdigit() and len(ref) <= 18  # an id fits in 64 bits
    with read_only(db).connect() as conn:
        if by_id:
            return conn.execute(_CASE_BY_ID, {"ref": int(ref)}).first()
        return conn.execute(_CASE_BY_NO, {"ref": ref}).first()


def case_tasks(db: Engine, case_id: int) -> Sequence[Row[Any]]:
    """A case's tasks, oldest first."""
    with read_only(db).connect() as conn:
        return conn.execute(_TASKS, {"case_id": case_id}).all()


def case_events(db: Engine, case_id: int) -> Sequence[Row[Any]]:
    """A case's audit events in order."""
    with read_only(db).connect() as conn:
        return conn.execute(_EVENTS, {"case_id": case_id}).all()
