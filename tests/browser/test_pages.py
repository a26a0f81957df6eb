"""Real browser tests: Debian's chromium driven by Playwright against a real uvicorn server.

Screenshots are written under test-output/screenshots/.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
import scenarios as S
from conftest import SHOTS, Accounts, LiveServer, make_case_engine
from drive import submit
from sqlmodel import Session, col, select

from api.main import create_app
from base.civil_dates import SHANGHAI
from models.settings import Settings
from models.tables import Case, ReviewTask

FILED = datetime(2022, 12, 1, 9, 0, tzinfo=SHANGHAI)
LATER = datetime(2022, 12, 30, 10, 0, tzinfo=SHANGHAI)  # the decide task is overdue by then


@pytest.fixture
def site(api_db: Accounts) -> Iterator[dict[str, Any]]:
    """A credit case filed on 12-01 and reviewed by rev_credit2 the same day; the site's clock is
    12-30, so rev_credit finds the decision task overdue."""
    early = make_case_engine(api_db.url, FILED)
    early.settings.decide_due_working_days = 5
    [r] = submit(early, S.application("CRED-01"))
    with Session(early.db) as s:
        review = s.exec(select(ReviewTask).where(col(ReviewTask.case_id) == r.case_id)).one()
    assert review.id is not None
    early.decide_task(review.id, decision="pass", actor=early.actor("rev_credit2"))
    with Session(early.db) as s:
        code = s.get(Case, r.case_id).query_code  # type: ignore[union-attr]
    SHOTS.mkdir(parents=True, exist_ok=True)
    with LiveServer(create_app(Settings(database_url=api_db.url, now=LATER))) as server:
        yield {"url": server.url, "case_no": r.case_no, "code": code}


def test_reviewer_approves_an_overdue_task(browser: Any, site: dict[str, Any]) -> None:
    page = browser.new_page(locale="zh-CN")
    page.goto(f"{site['url']}/login")
    page.fill("input[name=username]", "rev_credit")
    page.fill("input[name=password]", "pw-rev_credit")
    page.click("button[type=submit]")
    page.wait_for_url("**/bureau/tasks")
    row = page.locator("tr.overdue", has_text=site["case_no"])
    assert row.count() == 1
    assert "已逾期" in row.inner_text()
    page.screenshot(path=str(SHOTS / "01-tasklist-overdue.png"), full_page=True)
    row.locator("a").click()
    page.wait_for_url(f"**/bureau/cases/{site['case_no']}")
    assert page.locator("#case-state").inner_text() == "审核中"
    page.screenshot(path=str(SHOTS / "02-case-before.png"), full_page=True)
    page.click("button[name=approve]")
    page.wait_for_load_state()
    assert "已办理" in page.locator(".msg").inner_text()
    assert page.locator("#case-state").inner_text() == "办结"
    assert "准予决定书" in page.content()
    page.screenshot(path=str(SHOTS / "03-case-approved.png"), full_page=True)
    page.goto(f"{site['url']}/bureau/tasks")
    assert page.locator("tr", has_text=site["case_no"]).count() == 0  # the case moved on
    page.close()


def test_status_page_lookup(browser: Any, site: dict[str, Any]) -> None:
    page = browser.new_page(locale="zh-CN")
    page.goto(f"{site['url']}/status")
    page.fill("input[name=case_no]", site["case_no"])
    page.fill("input[name=code]", "000000")
    page.click("button[type=submit]")
    assert "未找到该案件" in page.locator("[role=alert]").inner_text()
    page.fill("input[name=case_no]", site["case_no"])
    page.fill("input[name=code]", site["code"])
    page.click("button[type=submit]")
    page.wait_for_selector("#public-status")
    assert page.locator("#public-status").inner_text() == "正在审核"
    page.click("summary:has-text('受理通知书')")
    assert "本机关决定予以受理" in page.locator("pre.notice").first.inner_text()
    page.screenshot(path=str(SHOTS / "04-status-page.png"), full_page=True)
    page.close()
