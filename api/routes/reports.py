"""统计报表与审计导出 — the measure report and the audit export, for operators.

The parameters are checked by reports.query, as for the command line and the page: a bad one
is a 422 naming the parameter and the rule (an unknown case a 404), before anything is read.
The audit export streams: the database is read page by page while the answer is sent.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response, StreamingResponse

from api.deps import CurrentOperator, EngineDep
from reports import audit, exports
from reports.measures import measure_report
from reports.query import (
    AUDIT_FORMATS,
    REPORT_FORMATS,
    QueryRefused,
    audit_query,
    gather,
    parse_format,
    report_query,
)

router = APIRouter(prefix="/operator", tags=["reports"])
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV = "text/csv; charset=utf-8"
JSONL = "application/x-ndjson; charset=utf-8"
API_FORMATS = tuple(f for f in REPORT_FORMATS if f != "table")
# raw strings, checked by reports.query (its messages name the parameter and the rule); the
# length bound only keeps a pasted essay out of the error message
Param = Annotated[str | None, Query(max_length=200)]
From = Annotated[str | None, Query(alias="from", max_length=200)]


def refused(exc: QueryRefused) -> JSONResponse:
    status = 404 if any(e.rule == "case.unknown" for e in exc.errors) else 422
    return JSONResponse(
        status_code=status,
        content={"error": "invalid_request", "message_zh": "请求参数有误，未作任何输出",
                 "errors": [e.as_dict() for e in exc.errors]},
    )  # fmt: skip


def attachment(name: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}"'}


@router.get("/report", response_model=None)
def report(
    account: CurrentOperator,
    engine: EngineDep,
    first: From = None,
    to: Param = None,
    measure: Param = None,
    bureau: Param = None,
    format: Param = None,
) -> Response | dict[str, Any]:
    """Per measure, deciding bureau and month: counts, money and timing (json, csv or xlsx)."""
    try:
        chosen, query = gather(
            lambda: parse_format(format or "json", API_FORMATS),
            lambda: report_query(first=first, last=to, measure=measure, bureau=bureau,
                                 today=engine.clock.today()),
        )  # fmt: skip
    except QueryRefused as exc:
        return refused(exc)
    result = measure_report(engine.read_db, query)
    if chosen == "csv":
        return StreamingResponse(
            exports.report_csv(result), media_type=CSV,
            headers=attachment(exports.file_name(result, "csv")),
        )  # fmt: skip
    if chosen == "xlsx":
        return Response(
            exports.report_xlsx(result), media_type=XLSX,
            headers=attachment(exports.file_name(result, "xlsx")),
        )  # fmt: skip
    return result.as_dict()


@router.get("/audit", response_model=None)
def audit_export(
    account: CurrentOperator,
    engine: EngineDep,
    case: Param = None,
    first: From = None,
    to: Param = None,
    measure: Param = None,
    format: Param = None,
) -> Response:
    """Every event, notice and delivery attempt of a case, a date range or a measure (streamed
    JSON Lines or CSV)."""
    try:
        chosen, query = gather(
            lambda: parse_format(format or "jsonl", AUDIT_FORMATS),
            lambda: audit_query(case=case, first=first, last=to, measure=measure),
        )
        audit.check_case(engine.read_db, query)
    except QueryRefused as exc:
        return refused(exc)
    records = audit.audit_records(engine.read_db, query)
    if chosen == "csv":
        body, media = audit.csv_export(records), CSV
    else:
        body, media = audit.jsonl_lines(records), JSONL
    name = audit.file_name(query, chosen)
    return StreamingResponse(body, media_type=media, headers=attachment(name))
