"""统计报表页 — the measure report for operators: pick months and a measure, read the table,
download it as CSV or XLSX.

A GET form (it changes nothing, so it carries no CSRF token: a token in the URL would only
leak into logs and Referer headers). Its values are checked by reports.query, as for the API
and the command line; a bad one is named in a message on the page, in Chinese, never a 422 or
a 500. The download links are the API's (GET /api/operator/report), which accept the page's
session for a read.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from api.deps import EngineDep
from api.pages.views import MaybeSession, back, page
from reports import exports
from reports.measures import measure_report
from reports.query import (
    QueryRefused,
    bureau_names,
    measure_label,
    measure_types,
    month_key,
    report_query,
)

router = APIRouter(include_in_schema=False)
FIELD_ZH = {"from": "起始月份", "to": "截止月份", "measure": "措施", "bureau": "决定单位"}
Text = Annotated[str, Query()]
From = Annotated[str, Query(alias="from")]


@router.get("/operator/report", response_class=HTMLResponse)
def report_page(
    request: Request,
    session: MaybeSession,
    engine: EngineDep,
    first: From = "",
    to: Text = "",
    measure: Text = "",
    bureau: Text = "",
) -> Response:
    if session is None or session.account is None or session.account.role != "operator":
        return back("/login")
    # what the form shows back: cut short, so that a pasted essay stays out of the page
    form = {"from": first[:20], "to": to[:20], "measure": measure[:20], "bureau": bureau[:40]}
    problems: list[str] = []
    result = None
    try:
        query = report_query(
            first=first or None, last=to or None, measure=measure or None,
            bureau=bureau or None, today=engine.clock.today(),
        )  # fmt: skip
    except QueryRefused as exc:
        problems = [f"{FIELD_ZH.get(e.field, e.field)}：{e.message_zh}" for e in exc.errors]
    else:
        result = measure_report(engine.read_db, query)
        form["from"], form["to"] = month_key(query.first_month), month_key(query.last_month)
    downloads = {}
    if result is not None:
        params = {k: v for k, v in result.query.as_dict().items() if v}
        downloads = {
            fmt: "/api/operator/report?" + urlencode({**params, "format": fmt})
            for fmt in ("csv", "xlsx")
        }
    return page(
        request,
        engine,
        session,
        "report.html.j2",
        form=form,
        problems=problems,
        headers=exports.headers(exports.TABLE_KEYS),
        lines=[(r.kind, exports.shown(r)) for r in result.lines()] if result else [],
        measures=[(m, measure_label(m)) for m in measure_types() if m],
        bureaus=sorted(bureau_names().items()),
        downloads=downloads,
    )
