"""运营概览 — the operator's dashboard: cases by state per measure, money per measure and month,
open and overdue tasks per section over time, the outbox and payout backlog, incidents.

The figures come from reports/ (read-only queries, defined once); the charts are SVG drawn on
the server (api/charts.py) and shown as images from this app. An incident is retried or
resolved through the engine (CaseEngine.act_on_incident), as through the API.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Annotated, Any, TypeVar, cast

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session

from api import charts, throttle, web_session
from api.deps import EngineDep
from api.pages.views import Csrf, MaybeSession, back, page, require_csrf
from base.civil_dates import to_minute
from notifications.incident_retry import retry_now
from reports import dashboard as figures
from reports.dashboard import incident_rows
from states.actors import actor_of
from states.engine import CaseEngine
from states.errors import EngineError
from states.labels import INCIDENT_STATUS_ZH, INCIDENT_ZH, STATE_ZH

router = APIRouter(include_in_schema=False)
T = TypeVar("T")
CHARTS = ("cases", "money-by-measure", "money-by-month", "tasks-open", "tasks-overdue")
IncidentId = Annotated[int, PathParam(ge=1, le=2**31 - 1)]
INCIDENTS_SHOWN = 100  # the oldest first; the rest through GET /api/operator/incidents


def _operator(session: Any) -> bool:
    return (
        session is not None and session.account is not None and session.account.role == "operator"
    )


_FIGURES: dict[tuple[str, str, str], Any] = {}
_FIGURES_LOCK = threading.Lock()


def this_minute(engine: CaseEngine, what: str, compute: Callable[[], T]) -> T:
    """The figure as of this minute (Asia/Shanghai), computed once per process and minute: a
    dashboard view asks for the money three times (its table and two charts) and the task
    history twice, and the page shows times to the minute anyway."""
    key = (f"{id(engine)}:{engine.read_db.url}", what, to_minute(engine.clock.now()))
    with _FIGURES_LOCK:
        if key in _FIGURES:
            return cast(T, _FIGURES[key])
    value = compute()
    with _FIGURES_LOCK:
        for old in [k for k in _FIGURES if k[:2] == key[:2]]:
            del _FIGURES[old]  # one minute kept per database and figure
        _FIGURES[key] = value
    return value


def dashboard_figures(engine: CaseEngine) -> dict[str, Any]:
    """What the page's tables show (each chart reads its own figures: `chart`)."""
    from reports.money import money

    today = engine.clock.today()
    with Session(engine.read_db) as s:
        types = figures.cases_by_state(s)
        units = figures.tasks_now(s, today)
        backlog = figures.backlog(s)
    by_measure, by_month = this_minute(engine, "money", lambda: money(engine.read_db, today))
    return {
        "types": types,
        "states": [st for st in STATE_ZH if any(t.by_state.get(st) for t in types)],
        "units": units,
        "backlog": backlog,
        "by_measure": by_measure,
        "by_month": by_month,
    }


@router.get("/operator", response_class=HTMLResponse)
def dashboard(request: Request, session: MaybeSession, engine: EngineDep) -> Response:
    if not _operator(session):
        return back("/login")
    assert session is not None and session.account is not None
    shown, total = incident_rows(engine.read_db, ("open", "retrying"), limit=INCIDENTS_SHOWN)
    return page(
        request,
        engine,
        session,
        "operator.html.j2",
        f=dashboard_figures(engine),
        incidents=shown,
        incidents_total=total,
        incident_zh=INCIDENT_ZH,
        incident_status_zh=INCIDENT_STATUS_ZH,
        locks=throttle.current_locks(engine.db, engine.clock.now()),
        scope_zh=throttle.SCOPE_ZH,
        charts=CHARTS,
    )


@router.get("/operator/charts/{name}.svg")
def chart(name: str, session: MaybeSession, engine: EngineDep) -> Response:
    """One chart as an SVG image (for operators only, like the page); each reads only what it
    draws."""
    if not _operator(session):
        raise HTTPException(403)
    if name not in CHARTS:
        raise HTTPException(404)
    from reports.money import money

    today = engine.clock.today()
    if name.startswith("money-"):
        by_measure, by_month = this_minute(engine, "money", lambda: money(engine.read_db, today))
        if name == "money-by-measure":
            svg = charts.money_chart("各措施资金（元）", [measure_short(r.key) for r in by_measure],
                                     series_of(by_measure))  # fmt: skip
        else:
            svg = charts.money_chart("各月资金（元）", [r.label for r in by_month],
                                     series_of(by_month))  # fmt: skip
        return Response(svg, media_type="image/svg+xml")
    with Session(engine.read_db) as s:
        if name == "cases":
            svg = charts.cases_chart(figures.cases_by_state(s))
        else:
            days, units = this_minute(engine, "tasks", lambda: figures.task_history(s, today))
            overdue = name == "tasks-overdue"
            title = "逾期任务（按科室，每日日终）" if overdue else "待办任务（按科室，每日日终）"
            svg = charts.tasks_chart(title, days, units, overdue=overdue)
    return Response(svg, media_type="image/svg+xml")


def measure_short(key: str) -> str:
    return f"第{key}项" if key else "未归类"


def series_of(rows: list[Any]) -> dict[str, list[Any]]:
    return {
        "准予金额": [r.granted for r in rows],
        "下达拨付": [r.ordered for r in rows],
        "已拨付": [r.paid for r in rows],
    }


@router.post("/operator/incidents/{incident_id}/retry")
def page_retry_incident(
    incident_id: IncidentId, session: MaybeSession, engine: EngineDep, csrf: Csrf = ""
) -> Response:
    form = require_csrf(engine, session, csrf)
    if form.account is None:
        return back("/login")
    try:
        done = retry_now(engine, incident_id, actor_of(form.account))
    except EngineError as exc:
        web_session.push_flash(engine.db, form, exc.message_zh, "error")
        return back("/operator#incidents")
    text = {
        "delivered": "已重试：通知书已送达，异常已办结",
        "queued": "已重试：拨付已重新排入拨付队列，下次拨付流程将以原幂等键支付",
    }.get(done["outcome"], "已重试：本次仍未送达，系统将按重试间隔继续投递")
    web_session.push_flash(engine.db, form, f"{done['case_no']} {text}", "info")
    return back("/operator#incidents")


@router.post("/operator/incidents/{incident_id}/resolve")
def page_resolve_incident(
    incident_id: IncidentId,
    session: MaybeSession,
    engine: EngineDep,
    csrf: Csrf = "",
    note: Annotated[str, Form(max_length=8000)] = "",  # the engine says when it is too long
) -> Response:
    form = require_csrf(engine, session, csrf)
    if form.account is None:
        return back("/login")
    try:
        done = engine.act_on_incident(
            incident_id, action="resolve", actor=actor_of(form.account), note=note
        )
    except EngineError as exc:
        web_session.push_flash(engine.db, form, exc.message_zh, "error")
        return back("/operator#incidents")
    web_session.push_flash(engine.db, form, f"{done.case_no} 的异常已办结", "info")
    return back("/operator#incidents")
