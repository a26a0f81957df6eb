"""The operator's dashboard in a real chromium: Chinese labels, times to the minute, charts
drawn as SVG by the server (no script, nothing from elsewhere), incidents that link to their
case and are retried or resolved with a note from the page — each an audit event.

Screenshots under test-output/screenshots/dashboard-*.png.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest
import scenarios as S
from conftest import SHOTS, Accounts, LiveServer, make_case_engine
from drive import decide, submit
from sqlmodel import Session, col, select

from api.main import create_app
from base.civil_dates import SHANGHAI
from models.settings import Settings
from models.tables import CaseEvent, Incident, Notice
from notifications.delivery import deliver

FILED = datetime(2022, 12, 1, 9, 0, tzinfo=SHANGHAI)
NOW = datetime(2022, 12, 30, 10, 0, tzinfo=SHANGHAI)
RAW_CODES = ("under_review", "payout_ordered", "closed", "samr", "finance_office",
             "notice:", "payout:", "notice_undeliverable", "credit_exemption")  # fmt: skip


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def site(api_db: Accounts) -> Iterator[dict[str, Any]]:
    """Cases of three types (one paid, one awaiting payment), and two notices that failed on
    an SMTP server that is down: two open incidents."""
    port = closed_port()
    settings = Settings(
        database_url=api_db.url, now=NOW, smtp_host="127.0.0.1", smtp_port=port,
        notice_max_attempts=1, notice_retry_seconds=0,
    )  # fmt: skip
    engine = make_case_engine(api_db.url, FILED)
    failing = []
    for sid in ("CRED-01", "LOAN-01"):
        app = S.application(sid)
        app["applicant"]["email"] = f"{sid.lower()}@example.com"
        [r] = submit(engine, app)
        failing.append(r)
    [rent] = submit(engine, S.application("RENT-07"))
    assert decide(engine, rent.case_id, approve=True).state == "payout_ordered"
    with Session(engine.db) as s:
        ids = s.exec(
            select(Notice.id).where(col(Notice.case_id).in_([r.case_id for r in failing]))
        ).all()
    for notice_id in ids:
        assert notice_id is not None
        deliver(engine.db, notice_id, settings, FILED)
    with Session(engine.db) as s:
        incidents = s.exec(select(Incident).order_by(col(Incident.id))).all()
    assert len(incidents) == 2
    SHOTS.mkdir(parents=True, exist_ok=True)
    with LiveServer(create_app(settings)) as server:
        yield {"url": server.url, "incidents": incidents, "engine": engine, "cases": failing}
    engine.db.dispose()


def sign_in(page: Any, url: str, who: str) -> None:
    page.goto(f"{url}/login")
    page.fill("input[name=username]", who)
    page.fill("input[name=password]", f"pw-{who}")
    page.click("button[type=submit]")


def test_the_dashboard_in_chinese_with_charts(browser: Any, site: dict[str, Any]) -> None:
    page = browser.new_page(locale="zh-CN", viewport={"width": 1280, "height": 900})
    sign_in(page, site["url"], "operator")
    page.wait_for_url("**/operator")
    text = page.locator("main").inner_text()
    for code in RAW_CODES:
        assert code not in text, code
    assert not re.search(r"\d{2}:\d{2}:\d{2}", text)  # times to the minute, no seconds
    assert "信用豁免" in text and "审核中" in text and "通知书送达失败" in text
    assert page.locator("#sum-incidents").inner_text() == "2"
    charts = page.locator("img.chart")
    assert charts.count() == 5
    for i in range(charts.count()):
        width = charts.nth(i).evaluate("img => img.complete ? img.naturalWidth : 0")
        assert width > 0, charts.nth(i).get_attribute("src")
    page.screenshot(path=str(SHOTS / "dashboard-overview.png"), full_page=True)
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    svg = httpx.get(f"{site['url']}/operator/charts/cases.svg", cookies=cookies)
    assert svg.headers["content-type"].startswith("image/svg+xml")
    assert b"<script" not in svg.content and "信用豁免".encode() in svg.content
    assert "default-src 'none'" in svg.headers["content-security-policy"]
    assert httpx.get(f"{site['url']}/operator/charts/cases.svg").status_code == 403  # no session
    assert httpx.get(f"{site['url']}/operator/charts/x.svg", cookies=cookies).status_code == 404
    page.close()


def test_incidents_are_retried_and_resolved_from_the_page(browser: Any, site: dict) -> None:
    first, second = site["incidents"]
    page = browser.new_page(locale="zh-CN", viewport={"width": 1280, "height": 900})
    sign_in(page, site["url"], "operator")
    page.wait_for_url("**/operator")
    row = page.locator(f"tr[data-incident='{first.id}']")
    link = row.locator("a")
    case_no = link.inner_text()
    link.click()
    page.wait_for_url(f"**/bureau/cases/{case_no}")  # the incident's case, read-only
    assert page.locator("#case-state").inner_text() == "审核中"
    assert page.locator("svg.state-diagram g.node.current").count() == 1
    page.go_back()
    page.locator(f"tr[data-incident='{first.id}'] button[name=retry]").click()
    page.wait_for_load_state()
    assert "本次仍未送达" in page.locator(".msg").inner_text()  # SMTP is still down
    hostile = "已电话通知申请人 <script>alert(1)</script> ' OR 1=1 --"
    resolve = page.locator(f"tr[data-incident='{second.id}']")
    resolve.locator("textarea[name=note]").fill(hostile)
    resolve.locator("button[name=resolve]").click()
    page.wait_for_load_state()
    assert "的异常已办结" in page.locator(".msg").inner_text()
    assert page.locator(f"tr[data-incident='{second.id}']").count() == 0
    page.screenshot(path=str(SHOTS / "dashboard-incidents.png"), full_page=True)
    with Session(site["engine"].db) as s:
        events = s.exec(
            select(CaseEvent.trigger, CaseEvent.payload).where(
                col(CaseEvent.trigger).in_(["retry_incident", "resolve_incident"])
            )
        ).all()
        resolved = s.get(Incident, second.id)
    assert sorted(t for t, _ in events) == ["resolve_incident", "retry_incident"]
    assert resolved is not None and resolved.note == hostile and resolved.status == "resolved"
    page.close()


def test_a_reviewer_and_a_forged_form_get_nothing(browser: Any, site: dict[str, Any]) -> None:
    first = site["incidents"][0]
    page = browser.new_page(locale="zh-CN")
    sign_in(page, site["url"], "rev_credit")
    page.wait_for_url("**/bureau/tasks")
    page.goto(f"{site['url']}/operator")
    assert "/login" in page.url or "/bureau/tasks" in page.url  # not the dashboard
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    forged = httpx.post(
        f"{site['url']}/operator/incidents/{first.id}/resolve",
        data={"note": "forged", "csrf_token": "x"},
        cookies=cookies,
    )
    assert forged.status_code == 403
    with Session(site["engine"].db) as s:
        assert s.get(Incident, first.id).status == "open"  # type: ignore[union-attr]
    page.close()
