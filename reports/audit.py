"""审计导出 — every event, notice and delivery attempt of the cases asked for, as a stream.

Selections (reports.query.AuditQuery): one case; a Beijing date range (each record by its own
time: an event's `at`, a notice's `created_at`, an attempt's `at`); a measure (every record of
its cases), optionally within a range. Records come case by case (by case id): the case's
events in `seq` order, then each notice (by id) followed by its delivery attempts (by attempt
number). Cases are read in pages of `PAGE` by keyset, so a district's whole history is never
held in memory, and nothing is written.

Each record is a flat dict with `record` = event, notice or delivery (docs/reports.md lists
the fields). A notice carries its document number and content hash, and `hash_verified`: the
hash recomputed from the stored title and text (sha256 of "title\\ntext", as rendered) — True
when the stored notice is the one that was issued.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from typing import Any

from sqlalchemy import Engine, select, union
from sqlalchemy.engine import Connection
from sqlalchemy.sql import Select

from models.tables import Case, CaseEvent, Notice, NoticeDelivery
from reports.files import Cell, csv_lines
from reports.measures import measure_of
from reports.query import AuditQuery, measure_types, refuse
from states.labels import COLUMN_ZH, NOTICE_ZH, trigger_zh
from states.labels import state_zh as _state_zh

PAGE = 200  # cases per page of the export
_C = Case.__table__  # type: ignore[attr-defined]
_E = CaseEvent.__table__  # type: ignore[attr-defined]
_N = Notice.__table__  # type: ignore[attr-defined]
_D = NoticeDelivery.__table__  # type: ignore[attr-defined]

_NOTICE = [
    _N.c[name]
    for name in (
        "id",
        "case_id",
        "event_seq",
        "kind",
        "audience",
        "doc_number",
        "issuer",
        "recipient",
        "title",
        "status",
        "attempts",
        "created_at",
        "delivered_at",
        "content_hash",
        "body_text",
    )
]  # fmt: skip  (not body_html: the text is what the hash covers)
# the CSV's columns: every field of every record type, in this order (blank where not its own)
FIELDS = (
    "record", "case_no", "case_type", "measure", "at", "seq", "trigger", "trigger_zh",
    "from_state", "to_state", "to_state_zh", "actor", "request_key", "payload",
    "notice_id", "event_seq", "kind", "kind_zh", "audience", "doc_number", "issuer",
    "recipient", "title", "status", "attempts", "created_at", "delivered_at", "content_hash",
    "hash_verified", "channel", "attempt_no", "receipt",
)  # fmt: skip


def check_case(db: Engine, query: AuditQuery) -> None:
    """Refuse a case number no case has (before any output starts)."""
    if query.case_no is None:
        return
    with db.connect() as conn:
        found = conn.execute(select(_C.c.id).where(_C.c.case_no == query.case_no)).first()
    if found is None:
        raise refuse("case", "case.unknown", f"没有受理编号为“{query.case_no}”的案件",
                     f"no case {query.case_no!r}")  # fmt: skip


def audit_records(db: Engine, query: AuditQuery, *, page: int = PAGE) -> Iterator[dict[str, Any]]:
    """The records of `query`, case by case (a generator: read as it is consumed)."""
    with db.connect() as conn:
        last = 0
        while True:
            cases = conn.execute(_cases(query).where(_C.c.id > last).order_by(_C.c.id).limit(page))
            batch = {r.id: r for r in cases}
            if not batch:
                return
            yield from _page(conn, query, batch)
            last = max(batch)


def _page(conn: Connection, query: AuditQuery, cases: dict[int, Any]) -> Iterator[dict[str, Any]]:
    ids = list(cases)
    events: dict[int, list[Any]] = {i: [] for i in ids}
    notices: dict[int, list[Any]] = {i: [] for i in ids}
    deliveries: dict[int, list[Any]] = {}
    own_events = _within(select(_E).where(_E.c.case_id.in_(ids)), _E.c.at, query)
    for e in conn.execute(own_events.order_by(_E.c.case_id, _E.c.seq)):
        events[e.case_id].append(e)
    own_notices = _within(select(*_NOTICE).where(_N.c.case_id.in_(ids)), _N.c.created_at, query)
    for n in conn.execute(own_notices.order_by(_N.c.case_id, _N.c.id)):
        notices[n.case_id].append(n)
    attempts = (
        select(_D, _N.c.case_id, _N.c.doc_number)
        .join(_N, _N.c.id == _D.c.notice_id)
        .where(_N.c.case_id.in_(ids))
    )
    attempts = _within(attempts, _D.c.at, query)
    for d in conn.execute(attempts.order_by(_D.c.notice_id, _D.c.attempt_no, _D.c.id)):
        deliveries.setdefault(d.notice_id, []).append(d)
    for case_id, case in cases.items():
        head = {"case_no": case.case_no, "case_type": case.case_type,
                "measure": measure_of(case.case_type, case.edition_id)}  # fmt: skip
        if query.measure is not None and head["measure"] != query.measure:
            continue  # its type carries another measure in the edition that judged it
        for e in events[case_id]:
            yield _event(head, e)
        seen = set()
        for n in notices[case_id]:
            seen.add(n.id)
            yield _notice(head, n)
            for d in deliveries.pop(n.id, []):
                yield _delivery(head, d)
        # attempts in the range whose notice was made before it
        for notice_id in sorted(k for k, v in deliveries.items() if v and v[0].case_id == case_id):
            for d in deliveries.pop(notice_id):
                yield _delivery(head, d)


def _cases(query: AuditQuery) -> Select[Any]:
    stmt = select(_C.c.id, _C.c.case_no, _C.c.case_type, _C.c.edition_id)
    if query.case_no is not None:
        return stmt.where(_C.c.case_no == query.case_no)
    if query.measure is not None:
        stmt = stmt.where(_C.c.case_type.in_(measure_types().get(query.measure, ())))
    if query.start is not None and query.end is not None:
        touched = union(
            select(_E.c.case_id.label("case_id")).where(_E.c.at >= query.start,
                                                        _E.c.at < query.end),
            select(_N.c.case_id).where(_N.c.created_at >= query.start,
                                       _N.c.created_at < query.end),
            select(_N.c.case_id).join(_D, _D.c.notice_id == _N.c.id)
            .where(_D.c.at >= query.start, _D.c.at < query.end),
        ).subquery()  # fmt: skip
        stmt = stmt.where(_C.c.id.in_(select(touched.c.case_id)))
    return stmt


def _within(stmt: Select[Any], column: Any, query: AuditQuery) -> Select[Any]:
    if query.start is None or query.end is None:
        return stmt
    return stmt.where(column >= query.start, column < query.end)


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _event(head: dict[str, Any], e: Any) -> dict[str, Any]:
    return {"record": "event", **head, "seq": e.seq, "at": _iso(e.at), "trigger": e.trigger,
            "trigger_zh": trigger_zh(e.trigger), "from_state": e.from_state,
            "to_state": e.to_state, "to_state_zh": _state_zh(e.to_state), "actor": e.actor,
            "request_key": e.request_key, "payload": e.payload}  # fmt: skip


def verified(title: str, text: str, digest: str) -> bool | None:
    """Whether the stored title and text still hash to the digest issued (None: no digest)."""
    if not digest:
        return None
    return hashlib.sha256(f"{title}\n{text}".encode()).hexdigest() == digest


def _notice(head: dict[str, Any], n: Any) -> dict[str, Any]:
    return {"record": "notice", **head, "notice_id": n.id, "event_seq": n.event_seq,
            "kind": n.kind, "kind_zh": NOTICE_ZH.get(n.kind, n.kind), "audience": n.audience,
            "doc_number": n.doc_number, "issuer": n.issuer, "recipient": n.recipient,
            "title": n.title, "status": n.status, "attempts": n.attempts,
            "created_at": _iso(n.created_at), "delivered_at": _iso(n.delivered_at),
            "content_hash": n.content_hash,
            "hash_verified": verified(n.title, n.body_text, n.content_hash)}  # fmt: skip


def _delivery(head: dict[str, Any], d: Any) -> dict[str, Any]:
    return {"record": "delivery", **head, "notice_id": d.notice_id, "doc_number": d.doc_number,
            "channel": d.channel, "attempt_no": d.attempt_no, "status": d.status,
            "receipt": d.receipt, "at": _iso(d.at)}  # fmt: skip


# ---------------------------------------------------------------- the two formats
def file_name(query: AuditQuery, suffix: str) -> str:
    """relief-audit-DC-2022-000001.jsonl, relief-audit-2022-07-01-2022-07-31-3.csv, …"""
    parts = [
        query.case_no,
        query.first_day and query.first_day.isoformat(),
        query.last_day and query.last_day.isoformat(),
        query.measure and f"m{query.measure}",
    ]
    return "relief-audit-" + "-".join(p for p in parts if p) + f".{suffix}"


def jsonl_lines(records: Iterable[dict[str, Any]]) -> Iterator[str]:
    """One JSON object per line (UTF-8, Chinese as is)."""
    for r in records:
        yield json.dumps(r, ensure_ascii=False, sort_keys=False, default=str) + "\n"


def csv_export(records: Iterable[dict[str, Any]]) -> Iterator[str]:
    """The records as CSV with Chinese headers (FIELDS order), guarded against formulas."""
    return csv_lines([COLUMN_ZH[f] for f in FIELDS], (_csv_row(r) for r in records))


def _csv_row(r: dict[str, Any]) -> list[Cell]:
    row: list[Cell] = []
    for f in FIELDS:
        v = r.get(f)
        if f == "payload" and v is not None:
            v = json.dumps(v, ensure_ascii=False, sort_keys=True, default=str)
        row.append(v)
    return row
