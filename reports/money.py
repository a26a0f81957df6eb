"""资金概览 — money granted, ordered and paid per measure and per month, for the dashboard.

Read from the measure report (reports/measures.py), so the dashboard and the report cannot
disagree: the same definitions (the month an approval, an order or a payment happened), the
same exact Decimal sums. The dashboard looks at the last MONTHS months up to this one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from sqlalchemy import Engine

from reports.measures import ZERO, measure_report
from reports.query import ReportQuery

MONTHS = 12  # how far back the dashboard's money looks, this month included
AMOUNTS = ("granted_amount", "ordered_amount", "paid_amount")


@dataclass(frozen=True)
class MoneyLine:
    key: str  # a measure number or a month (2022-12)
    label: str
    granted: Decimal
    ordered: Decimal
    paid: Decimal


def months_back(today: date, months: int = MONTHS) -> ReportQuery:
    """The `months` calendar months that end with today's."""
    index = today.year * 12 + today.month - 1 - (months - 1)
    first = date(index // 12, index % 12 + 1, 1)
    return ReportQuery(first_month=first, last_month=today.replace(day=1))


def money(db: Engine, today: date, months: int = MONTHS) -> tuple[list[MoneyLine], list[MoneyLine]]:
    """(per measure, per month) over the last `months` months; every month shown, empty or
    not, and only measures with money."""
    query = months_back(today, months)
    report = measure_report(db, query)
    sums: dict[str, list[Decimal]] = {}
    labels: dict[str, str] = {}
    for row in report.rows:
        got = sums.setdefault(row.measure, [ZERO, ZERO, ZERO])
        labels[row.measure] = row.measure_zh
        for i, column in enumerate(AMOUNTS):
            got[i] += Decimal(row.values[column] or ZERO)
    order = sorted(sums, key=lambda m: (not m.isdigit(), int(m) if m.isdigit() else 0, m))
    by_measure = [MoneyLine(m, labels[m], *sums[m]) for m in order if any(sums[m])]
    totals = {r.month: r.values for r in report.month_totals}
    by_month = []
    for month in query.months():
        v = totals.get(month, {})
        year, mon = month.split("-")
        amounts = (Decimal(v.get(c) or ZERO) for c in AMOUNTS)
        by_month.append(MoneyLine(month, f"{year}年{int(mon)}月", *amounts))
    return by_measure, by_month
