"""按措施统计 — what each measure came to, per deciding bureau and month (docs/reports.md).

A cell is (month, measure, bureau). The **month** is the Beijing (Asia/Shanghai) calendar
month in which the counted thing happened, so one case can add to several months: filed in
July, decided in August, paid in September. The **measure** is the measure number of the
case's type in the edition that judged it (`Edition.measure_of`). The **bureau** is the
deciding bureau: the bureau of the case's `decide` route, else of its first route; a case
without routes counts under the empty code, shown as 未指定单位.

Columns (each counts events in the cell's month, from the audit trail `case_event`):

- `applications` 申请: cases filed in the month (`filed_on`, the Beijing date relief received
  them, 收件日期; a paper receipt's date when one was recorded) that were filed by a `submit`
  (not the ex-officio grants).
- `accepted` 受理: transitions into `accepted` (即时受理, 受理, 容缺受理).
- `not_accepted` 不予受理: transitions into `not_accepted` (即时不予受理 or by an officer).
- `granted` 准予 / `partially_granted` 部分准予: `approve` events ending in `approved` /
  `partially_approved` (for intake-and-referral types the approval is the referral).
- `refused` 不予: `reject` events.
- `withdrawn` 撤回 / `expired` 终止办理: transitions into `withdrawn` / `expired`.
- `ex_officio` 依职权准予: `grant_ex_officio` events (licences extended without an application).
- `decided` 作出决定: `granted + partially_granted + refused`, the decisions the two timing
  columns are measured over.
- `granted_amount` 准予金额: the `amount_granted` of the cases granted (fully or partly) in the
  month, whatever its form (a subsidy, or a rent reduction the landlord gives).
- `ordered_amount` 下达拨付金额: payouts created in the month (`payout.created_at`: the approval
  orders it in the same transaction).
- `paid_amount` 已拨付金额: payouts whose `record_payment` event is in the month.
- `median_working_days` 决定用时中位数: the median, over the month's decisions, of the Chinese
  working days after `filed_on` up to and including the decision's Beijing date
  (`base.working_days.working_days_between`: 0 for a decision on the filing day).
- `within_deadline_share` 按期决定率: of the month's decisions whose deciding task has a due
  date, the share decided on or before it (Beijing date ≤ `due_on`). The deciding task is the
  case's latest `decide` task; a refusal at the confirmation stage has none and is measured
  against its latest `confirm` task. Empty when no decision of the cell has a due date.

Totals: one row per month with data (every measure and bureau), and one for the whole range;
a total's median and share are taken over all its decisions, never averaged from the cells.
Money is Decimal yuan summed exactly (the database holds integer fen).
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import Engine, and_, exists, or_, select
from sqlalchemy.sql import Select

from base.civil_dates import SHANGHAI
from base.money import format_cny
from base.working_days import working_days_between
from models.tables import Case, CaseEvent, Payout, ReviewTask
from reports.query import ReportQuery, bureau_label, measure_label, measure_types, month_key
from states.edition import edition_by_id
from states.labels import COLUMN_ZH

COUNTS = ("applications", "accepted", "not_accepted", "granted", "partially_granted", "refused",
          "withdrawn", "expired", "ex_officio", "decided")  # fmt: skip
MONEY = ("granted_amount", "ordered_amount", "paid_amount")
TIMING = ("median_working_days", "within_deadline_share")
COLUMNS = COUNTS + MONEY + TIMING
KEYS = ("month", "measure", "measure_zh", "bureau", "bureau_zh")  # what names a row
ENTERED = {
    "accepted": "accepted",
    "not_accepted": "not_accepted",
    "withdrawn": "withdrawn",
    "expired": "expired",
}  # fmt: skip  (to_state → column)
TRIGGERS = ("approve", "reject", "grant_ex_officio", "record_payment")
ZERO = Decimal("0.00")
SHARE = Decimal("0.0001")
Value = int | Decimal | None

_C = Case.__table__  # type: ignore[attr-defined]
_E = CaseEvent.__table__  # type: ignore[attr-defined]
_T = ReviewTask.__table__  # type: ignore[attr-defined]
_P = Payout.__table__  # type: ignore[attr-defined]
_ROUTES = _C.c.assessment["routes"].label("routes")  # only the routes of the ~5 KB assessment
STREAM = 1000  # rows fetched at a time


@dataclass
class Tally:
    """What one cell (or one total) adds up."""

    counts: Counter[str] = field(default_factory=Counter)
    money: dict[str, Decimal] = field(default_factory=lambda: dict.fromkeys(MONEY, ZERO))
    days: list[int] = field(default_factory=list)
    with_due: int = 0
    on_time: int = 0

    def merge(self, other: Tally) -> None:
        self.counts.update(other.counts)
        for k, v in other.money.items():
            self.money[k] += v
        self.days.extend(other.days)
        self.with_due += other.with_due
        self.on_time += other.on_time

    def values(self) -> dict[str, Value]:
        out: dict[str, Value] = {c: self.counts[c] for c in COUNTS}
        out.update(self.money)
        out["median_working_days"] = median(self.days)
        out["within_deadline_share"] = (
            (Decimal(self.on_time) / Decimal(self.with_due)).quantize(SHARE, ROUND_HALF_UP)
            if self.with_due
            else None
        )
        return out


def median(values: list[int]) -> Decimal | None:
    """The median as a Decimal (x.5 between two middle values); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return Decimal(ordered[mid])
    return (Decimal(ordered[mid - 1] + ordered[mid]) / 2).normalize()


@dataclass(frozen=True)
class ReportRow:
    """One line: a cell, a month's total (measure and bureau empty) or the total (all empty)."""

    kind: str  # cell, month_total or total
    month: str
    measure: str
    bureau: str
    values: dict[str, Value]

    @property
    def measure_zh(self) -> str:
        return {"cell": measure_label(self.measure), "month_total": "本月合计",
                "total": "合计"}[self.kind]  # fmt: skip

    @property
    def bureau_zh(self) -> str:
        return bureau_label(self.bureau) if self.kind == "cell" else ""

    def keys(self) -> dict[str, str]:
        return {"month": self.month or "合计", "measure": self.measure,
                "measure_zh": self.measure_zh, "bureau": self.bureau,
                "bureau_zh": self.bureau_zh}  # fmt: skip

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: money as "1234.00" strings (exact), the share as "0.9500"."""
        out: dict[str, Any] = {"kind": self.kind, **self.keys()}
        for k, v in self.values.items():
            out[k] = str(v) if isinstance(v, Decimal) else v
        return out


@dataclass(frozen=True)
class Report:
    query: ReportQuery
    rows: list[ReportRow]  # cells, by month, measure number, bureau code
    month_totals: list[ReportRow]
    total: ReportRow

    def lines(self) -> Iterator[ReportRow]:
        """Each month's cells then its total; the grand total last."""
        totals = {r.month: r for r in self.month_totals}
        month = None
        for row in self.rows:
            if month is not None and row.month != month:
                yield totals[month]
            month = row.month
            yield row
        if month is not None:
            yield totals[month]
        yield self.total

    def as_dict(self) -> dict[str, Any]:
        return {
            "query": self.query.as_dict(),
            "columns": [{"key": c, "label_zh": label(c)} for c in (*KEYS, *COLUMNS)],
            "rows": [r.as_dict() for r in self.rows],
            "month_totals": [r.as_dict() for r in self.month_totals],
            "total": self.total.as_dict(),
        }


def label(column: str) -> str:
    return COLUMN_ZH[column]


def display(column: str, value: Value) -> str:
    """A value as a person reads it: 1,234.00 yuan, 95.0%, — for nothing to measure."""
    if value is None:
        return "—"
    if column in MONEY:
        return format_cny(Decimal(value))
    if column == "within_deadline_share":
        return f"{(Decimal(value) * 100).quantize(Decimal('0.1'), ROUND_HALF_UP)}%"
    return str(value)


# ---------------------------------------------------------------- who and what a case is
def deciding_bureau(routes: Any) -> str:
    """The bureau of the decide route, else of the first route, else ""."""
    if not isinstance(routes, list) or not routes:
        return ""
    for r in routes:
        if isinstance(r, dict) and r.get("kind") == "decide":
            return str(r.get("bureau") or "")
    first = routes[0]
    return str(first.get("bureau") or "") if isinstance(first, dict) else ""


@functools.cache
def measure_of(case_type: str, edition_id: str) -> str:
    """The measure of a type in the edition that judged the case ("" if neither knows it)."""
    try:
        return edition_by_id(edition_id).measure_of(case_type)
    except KeyError:
        return ""


@functools.lru_cache(maxsize=65536)
def _working_days(start: date, end: date) -> int:
    return working_days_between(start, end)


# ---------------------------------------------------------------- the report
def measure_report(db: Engine, query: ReportQuery) -> Report:
    """The report for `query`, read from `db` (a few streamed queries, no writes)."""
    cells: dict[tuple[str, str, str], Tally] = {}

    def cell(month: str, row: Any) -> Tally | None:
        m = measure_of(row.case_type, row.edition_id)
        b = deciding_bureau(row.routes)
        if (query.measure is not None and m != query.measure) or (
            query.bureau is not None and b != query.bureau
        ):
            return None
        return cells.setdefault((month, m, b), Tally())

    with db.connect() as conn:
        for row in _stream(conn, _applications(query)):
            if (t := cell(month_key(row.filed_on), row)) is not None:
                t.counts["applications"] += 1
        for row in _stream(conn, _events(query)):
            at = _local(row.at)
            if (t := cell(month_key(at), row)) is not None:
                _count_event(t, row, at.date())
        for row in _stream(conn, _orders(query)):
            if (t := cell(month_key(_local(row.created_at)), row)) is not None:
                t.money["ordered_amount"] += row.amount
    return _assemble(query, cells)


def _count_event(t: Tally, row: Any, on: date) -> None:
    if row.trigger == "record_payment":
        t.money["paid_amount"] += row.payout_amount or ZERO
        return
    if row.trigger == "grant_ex_officio":
        t.counts["ex_officio"] += 1
        return
    if row.trigger in ("approve", "reject"):
        column = {"approved": "granted", "partially_approved": "partially_granted"}.get(
            row.to_state, "refused"
        )
        t.counts[column] += 1
        t.counts["decided"] += 1
        if row.trigger == "approve":
            t.money["granted_amount"] += row.amount_granted or ZERO
        t.days.append(_working_days(row.filed_on, on))
        due = row.decide_due or row.confirm_due
        if due is not None:
            t.with_due += 1
            t.on_time += on <= due
        return
    if row.to_state in ENTERED and row.from_state != row.to_state:
        t.counts[ENTERED[row.to_state]] += 1


def _assemble(query: ReportQuery, cells: dict[tuple[str, str, str], Tally]) -> Report:
    order = list(measure_types())

    def sort_key(key: tuple[str, str, str]) -> tuple[str, int, str]:
        month, m, b = key
        return (month, order.index(m) if m in order else len(order), b)

    rows: list[ReportRow] = []
    months: dict[str, Tally] = {}
    total = Tally()
    for key in sorted(cells, key=sort_key):
        month, m, b = key
        rows.append(ReportRow("cell", month, m, b, cells[key].values()))
        months.setdefault(month, Tally()).merge(cells[key])
        total.merge(cells[key])
    month_totals = [ReportRow("month_total", mo, "", "", t.values()) for mo, t in months.items()]
    return Report(query, rows, month_totals, ReportRow("total", "", "", "", total.values()))


# ---------------------------------------------------------------- the queries
def _stream(conn: Any, stmt: Select[Any]) -> Iterator[Any]:
    yield from conn.execution_options(yield_per=STREAM).execute(stmt)


def _local(at: datetime) -> datetime:
    return at.astimezone(SHANGHAI)


def _types(query: ReportQuery, stmt: Select[Any]) -> Select[Any]:
    """Narrowed to the types that carry the measure in some edition (checked again per row)."""
    if query.measure is None:
        return stmt
    return stmt.where(_C.c.case_type.in_(measure_types().get(query.measure, ())))


def _applications(query: ReportQuery) -> Select[Any]:
    filed = exists().where(_E.c.case_id == _C.c.id, _E.c.trigger == "submit")
    return _types(
        query,
        select(_C.c.case_type, _C.c.edition_id, _ROUTES, _C.c.filed_on).where(
            _C.c.filed_on >= query.first_month, _C.c.filed_on <= query.last_day, filed
        ),
    )


def _due(kind: str) -> Any:
    return (
        select(_T.c.due_on)
        .where(_T.c.case_id == _E.c.case_id, _T.c.kind == kind)
        .order_by(_T.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )


def _events(query: ReportQuery) -> Select[Any]:
    counted = or_(
        _E.c.trigger.in_(TRIGGERS),
        and_(_E.c.to_state.in_(list(ENTERED)), _E.c.trigger.not_in(TRIGGERS)),
    )
    stmt = (
        select(
            _E.c.trigger,
            _E.c.from_state,
            _E.c.to_state,
            _E.c.at,
            _C.c.case_type,
            _C.c.edition_id,
            _ROUTES,
            _C.c.filed_on,
            _C.c.amount_granted,
            _due("decide").label("decide_due"),
            _due("confirm").label("confirm_due"),
            _P.c.amount.label("payout_amount"),
        )
        .join(_C, _C.c.id == _E.c.case_id)
        .outerjoin(_P, _P.c.case_id == _E.c.case_id)
        .where(_E.c.at >= query.start, _E.c.at < query.end, counted)
    )
    return _types(query, stmt)


def _orders(query: ReportQuery) -> Select[Any]:
    stmt = (
        select(_P.c.amount, _P.c.created_at, _C.c.case_type, _C.c.edition_id, _ROUTES)
        .join(_C, _C.c.id == _P.c.case_id)
        .where(_P.c.created_at >= query.start, _P.c.created_at < query.end)
    )
    return _types(query, stmt)
