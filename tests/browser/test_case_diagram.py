"""The bureau's case page shows the type's diagram with the case's current state and the path
it took marked (a real chromium against a real server; the marks are CSS, so this also proves
the Content-Security-Policy lets the page's own stylesheet colour an inlined SVG)."""

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
from models.tables import ReviewTask

FILED = datetime(2022, 12, 1, 9, 0, tzinfo=SHANGHAI)
LATER = datetime(2022, 12, 5, 10, 0, tzinfo=SHANGHAI)
HIGHLIGHT = "rgb(139, 26, 26)"  # #8b1a1a in api/static/relief.css


@pytest.fixture
def site(api_db: Accounts) -> Iterator[dict[str, Any]]:
    """A credit case reviewed by rev_credit2, its decision task waiting for rev_credit."""
    early = make_case_engine(api_db.url, FILED)
    [r] = submit(early, S.application("CRED-01"))
    with Session(early.db) as s:
        review = s.exec(select(ReviewTask).where(col(ReviewTask.case_id) == r.case_id)).one()
    assert review.id is not None
    early.decide_task(review.id, decision="pass", actor=early.actor("rev_credit2"))
    SHOTS.mkdir(parents=True, exist_ok=True)
    with LiveServer(create_app(Settings(database_url=api_db.url, now=LATER))) as server:
        yield {"url": server.url, "case_no": r.case_no}


def node(page: Any, state: str) -> Any:
    return page.locator(f"svg.state-diagram g#state-{state}")


def test_the_case_page_marks_the_current_state_and_the_path(browser: Any, site: dict) -> None:
    page = browser.new_page(locale="zh-CN")
    page.goto(f"{site['url']}/login")
    page.fill("input[name=username]", "rev_credit")
    page.fill("input[name=password]", "pw-rev_credit")
    page.click("button[type=submit]")
    page.wait_for_url("**/bureau/tasks")
    page.goto(f"{site['url']}/bureau/cases/{site['case_no']}")
    current = page.locator("svg.state-diagram g.node.current")
    assert current.count() == 1
    assert current.get_attribute("id") == "state-under_review"
    assert "审核中" in current.text_content()
    shape = current.locator("path, polygon").first
    assert shape.evaluate("e => getComputedStyle(e).fill") == HIGHLIGHT
    assert "visited" in (node(page, "accepted").get_attribute("class") or "")
    assert "visited" not in (node(page, "closed").get_attribute("class") or "")
    taken = page.locator("svg.state-diagram g.edge.taken")
    assert "edge-auto_accept-submitted-accepted" in taken.evaluate_all("es => es.map(e => e.id)")
    page.locator("#state-diagram").screenshot(path=str(SHOTS / "case-diagram-under-review.png"))
    page.click("button[name=approve]")
    page.wait_for_load_state()
    assert page.locator("#case-state").inner_text() == "办结"
    assert page.locator("svg.state-diagram g.node.current").get_attribute("id") == "state-closed"
    ids = page.locator("svg.state-diagram g.edge.taken").evaluate_all("es => es.map(e => e.id)")
    assert {"edge-approve-under_review-approved", "edge-close-effect_applied-closed"} <= set(ids)
    assert not [i for i in ids if "reject" in i or "withdraw" in i]  # a path not taken
    page.screenshot(path=str(SHOTS / "case-diagram-closed.png"), full_page=True)
    page.close()
