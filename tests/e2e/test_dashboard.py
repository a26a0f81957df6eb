"""The dashboard's numbers equal direct SQL over the seeded district (326 cases, six months,
every outcome: tests/seeded.py) — written here independently, as a clerk with a SQL console
would count: cases by state per type, open and overdue tasks per section on every day of the
chart, the backlog, and money granted / ordered / paid per month (Beijing months, fen in the
database)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from seeded import CLOCKS, seeded_copy
from sqlalchemy import create_engine, text
from sqlmodel import Session

from api.main import create_app
from api.security import create_account
from base.civil_dates import SHANGHAI
from models.db import make_engine
from models.settings import Settings
from reports import dashboard as figures
from reports.money import money

TODAY = CLOCKS[-1].date()


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    folder = tmp_path_factory.getbasetemp() / "seeded"
    folder.mkdir(exist_ok=True)
    url = seeded_copy(folder, tmp_path_factory.mktemp("dash") / "dashboard.db")
    db = make_engine(url)
    yield db
    db.dispose()


def sql(db: Any, query: str, **params: Any) -> list[Any]:
    raw = create_engine(str(db.url))  # a plain engine: no ORM types, the stored values
    try:
        with raw.connect() as c:
            return list(c.execute(text(query), params).all())
    finally:
        raw.dispose()


def utc_text(at: datetime) -> str:
    from datetime import UTC

    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def end_of(day: date) -> datetime:
    return datetime.combine(day + timedelta(days=1), time.min, tzinfo=SHANGHAI)


def test_cases_by_state_per_type(seeded: Any) -> None:
    with Session(seeded) as s:
        shown = {
            (t.case_type, st): n for t in figures.cases_by_state(s) for st, n in t.by_state.items()
        }
    rows = sql(seeded, "SELECT case_type, state, COUNT(*) FROM relief_case GROUP BY 1, 2")
    direct = {(t, st): n for t, st, n in rows}
    assert shown == direct
    assert sum(direct.values()) >= 300


def test_open_and_overdue_tasks_per_section_every_day(seeded: Any) -> None:
    with Session(seeded) as s:
        days, units = figures.task_history(s, TODAY)
    assert days[-1] == TODAY and len(days) == figures.HISTORY_DAYS
    assert units, "the seed leaves tasks open"
    for u in units:
        for i, day in enumerate(days):
            cut = utc_text(end_of(day))
            [(opened, overdue)] = sql(
                seeded,
                "SELECT COUNT(*), COALESCE(SUM(CASE WHEN due_on < :day AND NOT "
                "(:day = :today AND paused_on IS NOT NULL) THEN 1 ELSE 0 END), 0) "
                "FROM review_task WHERE bureau_code = :b AND section_code = :s "
                "AND created_at < :cut AND (decided_at IS NULL OR decided_at >= :cut)",
                b=u.bureau, s=u.section, cut=cut, day=day.isoformat(), today=TODAY.isoformat(),
            )  # fmt: skip
            assert (u.open_by_day[i], u.overdue_by_day[i]) == (opened, overdue), (u.unit, day)
    with Session(seeded) as s:
        now = figures.tasks_now(s, TODAY)
    direct = sql(
        seeded,
        "SELECT bureau_code, section_code, COUNT(*), COALESCE(SUM(CASE WHEN due_on < :today "
        "AND paused_on IS NULL THEN 1 ELSE 0 END), 0) FROM review_task WHERE status = 'open' "
        "GROUP BY 1, 2 ORDER BY 1, 2",
        today=TODAY.isoformat(),
    )
    assert [(u.bureau, u.section, u.open_now, u.overdue_now) for u in now] == [
        tuple(r) for r in direct
    ]
    assert any(u.overdue_now for u in now), "the seed leaves some tasks overdue"
    assert all(u.unit for u in now)  # every section by its Chinese name


def test_backlog(seeded: Any) -> None:
    with Session(seeded) as s:
        b = figures.backlog(s)
    counts = dict(sql(seeded, "SELECT status, COUNT(*) FROM notice GROUP BY status"))
    assert b.notices_pending == counts.get("pending", 0)
    assert b.notices_awaiting_channel == counts.get("awaiting_channel", 0)
    assert b.notices_failed == counts.get("failed", 0)
    waiting = sql(
        seeded,
        "SELECT status, COUNT(*), SUM(amount) FROM payout "
        "WHERE status IN ('ordered', 'sent', 'failed') GROUP BY status",
    )
    payouts = {st: (n, Decimal(fen) / 100) for st, n, fen in waiting}
    assert b.payouts == payouts
    [(incidents,)] = sql(seeded, "SELECT COUNT(*) FROM incident WHERE status = 'open'")
    assert b.incidents_open == incidents


def month_of(column: str) -> str:
    """A stored UTC moment's Beijing month, in SQLite."""
    return f"strftime('%Y-%m', datetime({column}, '+8 hours'))"


def test_money_per_month_and_measure(seeded: Any) -> None:
    by_measure, by_month = money(seeded, TODAY)
    granted = dict(sql(seeded, f"""
        SELECT {month_of('e.at')}, SUM(c.amount_granted) FROM case_event e
        JOIN relief_case c ON c.id = e.case_id
        WHERE e.trigger = 'approve' AND e.to_state IN ('approved', 'partially_approved')
        GROUP BY 1"""))  # fmt: skip
    ordered = dict(
        sql(seeded, f"SELECT {month_of('created_at')}, SUM(amount) FROM payout GROUP BY 1")
    )
    paid = dict(sql(seeded, f"""
        SELECT {month_of('e.at')}, SUM(p.amount) FROM case_event e
        JOIN payout p ON p.case_id = e.case_id
        WHERE e.trigger = 'record_payment' GROUP BY 1"""))  # fmt: skip
    assert [m.key for m in by_month][-1] == TODAY.strftime("%Y-%m")
    for line in by_month:
        assert line.granted == Decimal(granted.get(line.key) or 0) / 100, line.key
        assert line.ordered == Decimal(ordered.get(line.key) or 0) / 100, line.key
        assert line.paid == Decimal(paid.get(line.key) or 0) / 100, line.key
    assert sum(m.granted for m in by_month) == sum(m.granted for m in by_measure) > 0
    assert sum(m.paid for m in by_month) == sum(m.paid for m in by_measure) > 0


def test_the_page_shows_the_same_numbers(seeded: Any, tmp_path: Path) -> None:
    """The rendered page, signed in as an operator, carries the counts from the same reads."""
    url = str(seeded.url)
    create_account(seeded, username="op_dash", role="operator", password="pw-op-dash-1",
                   now=CLOCKS[-1])  # fmt: skip
    client = TestClient(create_app(Settings(database_url=url, now=CLOCKS[-1])))
    login = client.get("/login")
    token = login.text.split('name="csrf_token" value="')[1].split('"')[0]
    client.post("/login", data={"username": "op_dash", "password": "pw-op-dash-1",
                                "csrf_token": token})  # fmt: skip
    page = client.get("/operator")
    assert page.status_code == 200 and "运营概览" in page.text
    [(cases,)] = sql(seeded, "SELECT COUNT(*) FROM relief_case")
    assert f'<td id="sum-cases">{cases}</td>' in page.text
    [(overdue,)] = sql(
        seeded,
        "SELECT COUNT(*) FROM review_task WHERE status = 'open' "
        "AND due_on < :t AND paused_on IS NULL",
        t=TODAY.isoformat(),
    )
    assert f'<td id="sum-overdue">{overdue}</td>' in page.text
    for name in ("cases", "money-by-measure", "money-by-month", "tasks-open", "tasks-overdue"):
        chart = client.get(f"/operator/charts/{name}.svg")
        assert chart.status_code == 200 and chart.content.startswith(b"<?xml"), name
        assert b"<script" not in chart.content
    for hostile in ("../../etc/passwd", "cases.svg%00", "<script>", "x" * 500):
        assert client.get(f"/operator/charts/{hostile}.svg").status_code in (400, 404), hostile
