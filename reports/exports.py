"""报表导出 — the measure report as rows for a table, CSV, XLSX and JSON."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from reports.files import Cell, Sheet, csv_lines, xlsx_bytes
from reports.measures import COLUMNS, COUNTS, KEYS, MONEY, Report, ReportRow, display, label

CSV_KEYS = KEYS  # month, measure, measure_zh, bureau, bureau_zh
TABLE_KEYS = ("month", "measure_zh", "bureau_zh")  # what a person reads


def headers(keys: tuple[str, ...] = CSV_KEYS) -> list[str]:
    return [label(c) for c in (*keys, *COLUMNS)]


def flat(row: ReportRow, keys: tuple[str, ...] = CSV_KEYS) -> list[Cell]:
    names = row.keys()
    return [*(names[k] for k in keys), *(row.values[c] for c in COLUMNS)]


def shown(row: ReportRow) -> list[str]:
    """A row as a person reads it (money 1,234.00, shares 95.0%)."""
    names = row.keys()
    return [*(names[k] for k in TABLE_KEYS), *(display(c, row.values[c]) for c in COLUMNS)]


def kinds(keys: tuple[str, ...] = CSV_KEYS) -> list[str]:
    def kind(c: str) -> str:
        if c in MONEY:
            return "money"
        if c == "within_deadline_share":
            return "share"
        return "count" if c in COUNTS or c == "median_working_days" else "text"

    return ["text"] * len(keys) + [kind(c) for c in COLUMNS]


def report_csv(report: Report) -> Iterator[str]:
    return csv_lines(headers(), (flat(r) for r in report.lines()))


def report_xlsx(report: Report) -> bytes:
    lines = list(report.lines())
    totals = {i for i, r in enumerate(lines) if r.kind != "cell"}
    q = report.query.as_dict()
    title = f"按措施统计 {q['from']}至{q['to']}"
    return xlsx_bytes([Sheet(title, headers(), [flat(r) for r in lines], kinds(), totals)])


def report_json(report: Report) -> str:
    body: dict[str, Any] = report.as_dict()
    return json.dumps(body, ensure_ascii=False, indent=2)


def file_name(report: Report, suffix: str) -> str:
    q = report.query.as_dict()
    extra = "".join(f"-{q[k]}" for k in ("measure", "bureau") if q[k])
    return f"relief-report-{q['from']}-{q['to']}{extra}.{suffix}"
