"""Injection strings in every field an applicant controls, and in every query parameter, shown
on every page a reviewer, an operator and an applicant sees, in a real chromium: nothing runs
(no dialog, no marker set), nothing is injected (no element the markup asked for), and the
text appears literally. Screenshots in test-output/screenshots/.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
import scenarios as S
from conftest import FIXED_NOW, SHOTS, Accounts, LiveServer, make_case_engine
from drive import tasks
from sqlmodel import Session

from api.main import create_app
from base.query_codes import display
from models.settings import Settings
from models.tables import Case

CORPUS = [
    "<script>window.__pwned='script'</script>",
    '"><img src=x onerror="window.__pwned=\'img\'">',
    "'><svg onload=window.__pwned='svg'>",
    "javascript:window.__pwned='js'",
    '<a href="javascript:window.__pwned=1">东城区点我领取补贴</a>',
    "东城区</textarea></pre></td><script>window.__pwned='break'</script>测试有限公司",
    '" autofocus onfocus="window.__pwned=\'attr\'" x="',
    "<iframe src=\"javascript:parent.__pwned='frame'\"></iframe>",
    "{{7*7}}${7*7}<%= 7*7 %>",
]
# the one SVG a page may hold is the case page's state diagram, drawn by relief itself
INJECTED = (
    "script:not([src]), img[src='x'], svg:not(#state-diagram > svg.state-diagram), iframe,"
    " [onerror], [onload], [onfocus], [onmouseover], a[href^='javascript:'], [autofocus]"
)


@pytest.fixture
def hostile_site(api_db: Accounts) -> Iterator[dict[str, Any]]:
    """One credit case per injection string: the string is the applicant's name (with Chinese
    round it) and their account of the causation; the reviewer's request for more material and
    the refusal's reason quote it back; a sign-in with it as the user name gets locked."""
    engine = make_case_engine(api_db.url)
    rev = engine.actor("rev_credit")
    decider = engine.actor("rev_credit2")
    owner = engine.actor("applicant_a")
    cases = []
    for n, bad in enumerate(CORPUS):
        data = copy.deepcopy(S.application("CRED-01"))
        data["applicant"]["name"] = f"北京{bad}有限公司"
        data["penalty"]["causation_evidence"] = bad
        [r] = engine.submit(data, actor=owner)
        engine.fire(r.case_id, "request_info", actor=rev, payload={"items": [bad, "说明材料"]})
        engine.fire(r.case_id, "supply_info", actor=owner)
        if n % 2:
            [task] = tasks(engine, r.case_id, kind="review")
            assert task.id is not None
            engine.decide_task(task.id, decision="fail", actor=rev, reason=bad)
            engine.fire(r.case_id, "reject", actor=decider, payload={"reason": f"理由：{bad}"})
        cases.append(r)
    with Session(engine.db) as s:
        codes = {r.case_no: s.get(Case, r.case_id).query_code for r in cases}  # type: ignore[union-attr]
    # the clock is fixed, so a back-off would never end: here only the account lock counts
    settings = Settings(
        database_url=api_db.url, now=FIXED_NOW, login_lock_after=2, login_backoff_after=100,
        status_backoff_after=100, address_lock_after=1000,
    )  # fmt: skip
    with LiveServer(create_app(settings)) as server:
        yield {"url": server.url, "cases": cases, "codes": codes, "engine": engine}


def watch(page: Any) -> list[str]:
    """Every dialog a page opens (there must be none)."""
    seen: list[str] = []

    def on_dialog(dialog: Any) -> None:
        seen.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    return seen


def assert_inert(page: Any, dialogs: list[str], where: str) -> None:
    page.wait_for_load_state("load")
    assert dialogs == [], (where, dialogs)
    assert page.evaluate("() => window.__pwned === undefined"), (where, "a payload ran")
    assert page.evaluate("() => parent.__pwned === undefined"), where
    injected = page.evaluate(f"() => document.querySelectorAll({INJECTED!r}).length")
    assert injected == 0, (where, page.evaluate(
        f"() => [...document.querySelectorAll({INJECTED!r})].map(e => e.outerHTML)"
    ))  # fmt: skip


def sign_in(page: Any, url: str, who: str) -> None:
    page.goto(f"{url}/login")
    page.fill("input[name=username]", who)
    page.fill("input[name=password]", f"pw-{who}")
    page.click("button[type=submit]")
    page.wait_for_load_state("load")


def test_injection_strings_stay_text_on_every_page(
    browser: Any, hostile_site: dict[str, Any]
) -> None:
    url = hostile_site["url"]
    SHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(locale="zh-CN")
    page = context.new_page()
    dialogs = watch(page)

    # query parameters a page might echo, before anyone signs in
    for bad in CORPUS:
        for path in ("/login?msg=", "/status?case_no=", "/status?code=", "/?next="):
            page.goto(url + path + quote(bad))
            assert_inert(page, dialogs, path)
            assert bad not in page.inner_text("body")  # not echoed at all
    # a sign-in with markup for a user name: failed, counted, locked (shown to operators)
    for bad in CORPUS[:3]:
        for _ in range(2):
            page.goto(f"{url}/login")
            page.fill("input[name=username]", bad[:80])
            page.fill("input[name=password]", "guess")
            page.click("button[type=submit]")
            assert_inert(page, dialogs, "failed login")

    # the reviewer: tasklist and every case page (facts, notices, history)
    sign_in(page, url, "rev_credit")
    for path in ("/bureau/tasks", *(f"/bureau/tasks?msg={quote(b)}" for b in CORPUS)):
        page.goto(url + path)
        assert_inert(page, dialogs, path)
    page.screenshot(path=str(SHOTS / "10-hostile-tasklist.png"), full_page=True)
    for n, (r, bad) in enumerate(zip(hostile_site["cases"], CORPUS, strict=True)):
        page.goto(f"{url}/bureau/cases/{r.case_no}?msg={quote(bad)}")
        assert_inert(page, dialogs, r.case_no)
        facts = page.inner_text("#facts")
        assert f"北京{bad}有限公司" in facts and bad in facts, (bad, facts)
        for summary in page.locator("details summary").all():
            summary.click()
        notices = "\n".join(page.locator("pre.notice").all_inner_texts())
        assert bad in notices, bad  # the requested item, quoted in the 补充材料通知书
        if n == 5:
            page.screenshot(path=str(SHOTS / "11-hostile-case.png"), full_page=True)
    context.close()

    # the operator: the dashboard with the locked user names
    context = browser.new_context(locale="zh-CN")
    page = context.new_page()
    dialogs = watch(page)
    sign_in(page, url, "operator")
    page.goto(f"{url}/operator?msg={quote(CORPUS[0])}")
    assert_inert(page, dialogs, "/operator")
    locks = page.inner_text("#locks")
    assert all(bad[:80] in locks for bad in CORPUS[:3]), locks
    page.screenshot(path=str(SHOTS / "12-hostile-operator.png"), full_page=True)
    context.close()

    # the applicant: the status page with every notice, and the lookup form echoing its input
    context = browser.new_context(locale="zh-CN")
    page = context.new_page()
    dialogs = watch(page)
    for r, bad in list(zip(hostile_site["cases"], CORPUS, strict=True))[:4]:
        page.goto(f"{url}/status")
        page.fill("input[name=case_no]", r.case_no)
        page.fill("input[name=code]", display(hostile_site["codes"][r.case_no]))
        page.click("button[type=submit]")
        assert_inert(page, dialogs, f"status {r.case_no}")
        for summary in page.locator("details summary").all():
            summary.click()
        assert bad in "\n".join(page.locator("pre.notice").all_inner_texts())
    page.screenshot(path=str(SHOTS / "13-hostile-status.png"), full_page=True)
    for bad in CORPUS:
        page.goto(f"{url}/status")
        page.fill("input[name=case_no]", bad[:30])
        page.fill("input[name=code]", bad[:16])
        page.click("button[type=submit]")
        assert_inert(page, dialogs, "status lookup")
        assert page.input_value("input[name=case_no]") == bad[:30]  # echoed as a value
    context.close()


def test_api_docs_render_offline(browser: Any, hostile_site: dict[str, Any]) -> None:
    """Swagger UI and ReDoc from the app's own files (the browser here has no internet)."""
    page = browser.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{hostile_site['url']}/docs")
    page.wait_for_selector(".opblock", timeout=30_000)
    assert page.locator(".opblock").count() > 10
    assert not [e for e in errors if "Content Security Policy" in e], errors
    page.screenshot(path=str(SHOTS / "14-docs-offline.png"))
    page.goto(f"{hostile_site['url']}/redoc")
    page.wait_for_function("() => document.body.innerText.includes('applicants')", timeout=30_000)
    page.close()
