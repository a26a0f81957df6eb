"""The tasklist in a real chromium: more than a page of a section's tasks (some overdue on the
fixed clock), filtered by overdue and by USCC, paged through, sorted, a task claimed (the row
says it is mine), then the section head reassigns it; a hostile search string and a hostile
applicant name are shown as text. Screenshots: test-output/screenshots/tasklist-*.png.

(Named test_tasklist_page.py: tests/e2e/test_tasklist.py has the basename test_tasklist, and
pytest's default import mode refuses two test modules of one basename in one run.)
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
import scenarios as S
import staff
from conftest import FIXED_NOW, SHOTS, Accounts, LiveServer, make_case_engine

from api.main import create_app
from api.pages.tasklist import PAGE_SIZE
from api.security import create_account
from base.civil_dates import SHANGHAI
from models.settings import Settings

EARLY = datetime(2022, 11, 1, 9, 0, tzinfo=SHANGHAI)  # due long before FIXED_NOW (12-30)
OVERDUE, CURRENT = 6, 20  # cases filed early and filed today: two pages of tasks
HOSTILE_NAME = "北京<script>window.__pwned='name'</script>有限公司"
HOSTILE_SEARCH = "<img src=x onerror=\"window.__pwned='q'\">"


def credit(n: int, name: str) -> dict[str, Any]:
    data = copy.deepcopy(S.application("CRED-01"))
    data["applicant"].update(uscc=staff.uscc_for(n), name=name)
    return data


@pytest.fixture
def site(api_db: Accounts) -> Iterator[dict[str, Any]]:
    """26 credit cases of samr.credit: 6 filed on 11-01 (overdue), 20 filed today (one under a
    hostile name); head_credit is the section's head."""
    create_account(
        make_case_engine(api_db.url).db, username="head_credit", role="reviewer",
        bureau="samr", section="credit", password="pw-head_credit", now=FIXED_NOW,
        display_name="科长", section_head=True,
    )  # fmt: skip
    early = make_case_engine(api_db.url, EARLY)
    today = make_case_engine(api_db.url)
    nos: dict[int, str] = {}
    for n in range(OVERDUE + CURRENT):
        engine = early if n < OVERDUE else today
        name = HOSTILE_NAME if n == OVERDUE else f"北京信用{n:02d}号有限公司"
        data = credit(n, name)
        [r] = engine.submit(data, actor=staff.applicant_for(engine, data))
        nos[n] = r.case_no
    SHOTS.mkdir(parents=True, exist_ok=True)
    settings = Settings(database_url=api_db.url, now=FIXED_NOW)
    with LiveServer(create_app(settings)) as server:
        yield {"url": server.url, "nos": nos}


def watch(page: Any) -> list[str]:
    seen: list[str] = []
    page.on("dialog", lambda d: (seen.append(d.message), d.dismiss()))
    return seen


def sign_in(browser: Any, url: str, who: str) -> Any:
    page = browser.new_context(locale="zh-CN").new_page()
    page.goto(f"{url}/login")
    page.fill("input[name=username]", who)
    page.fill("input[name=password]", f"pw-{who}")
    page.click("button[type=submit]")
    page.wait_for_url("**/bureau/tasks")
    return page


def rows(page: Any) -> Any:
    return page.locator("#tasks tbody tr")


def pager(page: Any) -> str:
    return str(page.locator("#pager-text").inner_text())


def test_a_reviewer_works_the_list_and_the_head_reassigns(
    browser: Any, site: dict[str, Any]
) -> None:
    url, nos = site["url"], site["nos"]
    total = OVERDUE + CURRENT
    page = sign_in(browser, url, "rev_credit")
    dialogs = watch(page)
    assert pager(page) == f"第 1 / 2 页 · 共 {total} 项"
    assert rows(page).count() == PAGE_SIZE
    assert page.locator("#tasks tbody tr.overdue").count() == OVERDUE  # due first: on page 1
    assert "区市场监管局信用科" in page.inner_text("h1")  # the section's name, not its code
    assert "samr" not in page.inner_text("h1")
    page.screenshot(path=str(SHOTS / "tasklist-01-first-page.png"), full_page=True)

    page.click("a[rel=next]")
    assert pager(page) == f"第 2 / 2 页 · 共 {total} 项"
    assert rows(page).count() == total - PAGE_SIZE
    assert page.locator("a[rel=next]").count() == 0  # the last page
    page.screenshot(path=str(SHOTS / "tasklist-02-second-page.png"), full_page=True)
    page.click("a[rel=prev]")
    assert pager(page).startswith("第 1 / 2 页")

    # only the overdue ones
    page.check("input[name=overdue]")
    page.click("button[name=filter]")
    assert pager(page) == f"第 1 / 1 页 · 共 {OVERDUE} 项"
    assert page.locator("#tasks tbody tr.overdue").count() == rows(page).count() == OVERDUE
    assert all("已逾期" in t for t in rows(page).all_inner_texts())
    page.screenshot(path=str(SHOTS / "tasklist-03-overdue.png"), full_page=True)
    page.uncheck("input[name=overdue]")

    # by USCC, typed in lower case and only in part
    wanted = staff.uscc_for(OVERDUE + 3)
    page.fill("input[name=q]", wanted[8:].lower())
    page.click("button[name=filter]")
    assert pager(page) == "第 1 / 1 页 · 共 1 项"
    assert nos[OVERDUE + 3] in rows(page).inner_text() and wanted in rows(page).inner_text()
    page.screenshot(path=str(SHOTS / "tasklist-04-uscc.png"), full_page=True)

    # a hostile search is kept as text: found nothing, nothing ran, the field shows it
    page.fill("input[name=q]", HOSTILE_SEARCH)
    page.click("button[name=filter]")
    assert "没有符合条件的任务" in page.inner_text("main")
    assert page.input_value("input[name=q]") == HOSTILE_SEARCH
    # the hostile applicant name, found by a part of it, shown literally
    page.fill("input[name=q]", "<script>")
    page.click("button[name=filter]")
    assert rows(page).count() == 1 and HOSTILE_NAME in rows(page).inner_text()
    assert page.evaluate("() => window.__pwned === undefined") and dialogs == []
    assert page.evaluate("() => document.querySelectorAll('main script, img[src=x]').length") == 0
    page.screenshot(path=str(SHOTS / "tasklist-05-hostile.png"), full_page=True)

    # sorted by applicant, both ways, by the column header
    page.click("a:has-text('清除条件')")
    page.click("th a:has-text('申请人')")
    names = [
        t.split("\n")[0] for t in page.locator("#tasks tbody td:nth-child(3)").all_inner_texts()
    ]
    assert names == sorted(names) and len(names) == PAGE_SIZE
    page.click("th a:has-text('申请人')")
    down = [
        t.split("\n")[0] for t in page.locator("#tasks tbody td:nth-child(3)").all_inner_texts()
    ]
    assert down == sorted(down, reverse=True) and "▼" in page.inner_text("thead")

    # claim one from the 未认领 tab; the list comes back with its tab, and the row is mine
    page.click("nav.tabs a:has-text('未认领')")
    first = rows(page).first
    case_no = first.locator("td a").inner_text()
    first.locator("button[name=claim]").click()
    page.wait_for_load_state()
    assert f"已认领：{case_no}" in page.locator(".msg").inner_text()
    assert "tab=unassigned" in page.url and case_no not in page.inner_text("#tasks")
    page.click("nav.tabs a:has-text('我的任务')")
    mine = page.locator("#tasks tbody tr.mine")
    assert mine.count() == 1 and case_no in mine.inner_text() and "我" in mine.inner_text()
    assert mine.locator("button[name=release]").count() == 1
    page.screenshot(path=str(SHOTS / "tasklist-06-claimed.png"), full_page=True)

    # the section head gives it to rev_credit2
    head = sign_in(browser, url, "head_credit")
    assert "科室负责人" in head.inner_text("h1")
    head.fill("input[name=case_no]", case_no)
    head.click("button[name=filter]")
    row = head.locator("#tasks tbody tr", has_text=case_no)
    assert "rev_credit" in row.locator("td.assignee").inner_text()
    row.locator("select[name=to]").select_option("rev_credit2")
    row.locator("button[name=reassign]").click()
    head.wait_for_load_state()
    assert f"已改派：{case_no} 交由 rev_credit2 办理" in head.locator(".msg").inner_text()
    row = head.locator("#tasks tbody tr", has_text=case_no)
    assert row.locator("td.assignee").inner_text() == "rev_credit2"
    head.screenshot(path=str(SHOTS / "tasklist-07-reassigned.png"), full_page=True)

    # rev_credit's own list no longer holds it
    page.reload()
    assert page.locator("#tasks tbody tr.mine").count() == 0
    assert "没有符合条件的任务" in page.inner_text("main")
    # a bad value in the address is named on the page, not an error page
    page.goto(f"{url}/bureau/tasks?kind=<b>nap</b>&page=-3&sort=1;DROP")
    assert "“环节”的取值无效" in page.inner_text("main") and "“页码”的取值无效" in page.inner_text(
        "main"
    )
    assert pager(page) == f"第 1 / 2 页 · 共 {total} 项"
    page.screenshot(path=str(SHOTS / "tasklist-08-bad-filters.png"), full_page=True)
    assert dialogs == []
