"""One applicant, end to end, in a real chromium against a real uvicorn and a real SMTP server
(aiosmtpd): register with the code from the mailbox → file a loan subsidy through the form
with two attachments (a field error shown and corrected on the way) → the 受理通知书 by e-mail
→ a reviewer asks for one more document → the applicant uploads it from 我的申请 → two
reviewers decide → the decision notice on the page and in the mailbox. A screenshot of every
page is kept under test-output/screenshots/applicant-*.png.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from email import message_from_bytes
from email.header import decode_header, make_header
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from conftest import FIXED_NOW, SHOTS, LiveServer, make_case_engine
from smtp_sink import Sink
from sqlmodel import Session, col, select

from api.main import create_app
from api.security import create_account
from models.settings import Settings
from models.tables import Notice
from notifications.delivery import deliver

UPLOADS = Path(__file__).parents[1] / "data" / "uploads"
USCC = "91110101MA00JR107G"
MAIL = "cfo@dongcheng-example.cn"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def mails(sink: Sink) -> list[dict[str, str]]:
    """Every message the sink accepted: recipient, subject and plain text."""
    out = []
    for envelope in sink.messages:
        msg = message_from_bytes(envelope.original_content)
        text = ""
        for part in msg.walk():
            if part.get_content_type() == "text/plain":
                payload = part.get_payload(decode=True)
                text = payload.decode("utf-8") if isinstance(payload, bytes) else str(payload)
        subject = str(make_header(decode_header(msg["Subject"] or "")))
        out.append({"to": ",".join(envelope.rcpt_tos), "subject": subject, "text": text})
    return out


@pytest.fixture
def world(sqlite_url: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    sink = Sink()
    port = free_port()
    smtp = Controller(sink, hostname="127.0.0.1", port=port)
    smtp.start()
    engine = make_case_engine(sqlite_url)
    for name, section in (("rev_loan_a", "fin_dev"), ("rev_loan_b", "fin_dev")):
        create_account(engine.db, username=name, role="reviewer", now=FIXED_NOW,
                       bureau="finance_office", section=section, password=f"pw-{name}",
                       display_name=name)  # fmt: skip
    settings = Settings(database_url=sqlite_url, now=FIXED_NOW, smtp_host="127.0.0.1",
                        smtp_port=port, document_store=str(tmp_path / "docs"))  # fmt: skip
    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        with LiveServer(create_app(settings)) as server:
            yield {"url": server.url, "sink": sink, "engine": engine, "settings": settings}
    finally:
        smtp.stop()


def deliver_outbox(world: dict[str, Any]) -> None:
    """What the outbox flow's task does for each pending notice (notifications/delivery.py)."""
    engine = world["engine"]
    with Session(engine.db) as s:
        pending = s.exec(select(Notice.id).where(col(Notice.status) == "pending")).all()
    for notice_id in pending:
        assert notice_id is not None
        deliver(engine.db, notice_id, world["settings"], FIXED_NOW)


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"applicant-{name}.png"), full_page=True)


def sign_in(page: Any, url: str, username: str, password: str) -> None:
    page.goto(f"{url}/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")


def test_an_applicant_files_answers_and_is_told_by_mail(
    browser: Any, world: dict[str, Any]
) -> None:
    url, sink = world["url"], world["sink"]
    page = browser.new_page(locale="zh-CN")

    # 1. register, with the code from the mailbox
    page.goto(f"{url}/register")
    page.fill("#r-uscc", USCC[:-1] + "A")  # a wrong check character first
    page.fill("#r-name", "东城示例科技有限公司")
    page.fill("#r-email", MAIL)
    page.fill("#r-password", "correct-horse-1")
    page.fill("#r-password_again", "correct-horse-1")
    page.click("#register")
    assert "校验" in page.locator(".field.invalid .error").inner_text()
    shot(page, "01-register-error")
    page.fill("#r-uscc", USCC)
    page.fill("#r-password", "correct-horse-1")
    page.fill("#r-password_again", "correct-horse-1")
    page.click("#register")
    page.wait_for_url("**/register/confirm?t=*")
    shot(page, "02-register-code")
    [welcome] = mails(sink)
    assert welcome["to"] == MAIL and "注册验证码" in welcome["subject"]
    code = re.search(r"(\d{6})", welcome["text"]).group(1)  # type: ignore[union-attr]
    page.fill("#code", "000000" if code != "000000" else "111111")
    page.click("#confirm-code")
    assert "验证码不正确" in page.locator("#code-error").inner_text()
    page.fill("#code", code)
    page.click("#confirm-code")
    page.wait_for_url("**/my")
    assert "注册成功" in page.content()
    shot(page, "03-my-empty")

    # 2. file a loan subsidy through the form: a field error, corrected; two attachments
    page.click("#new-application")
    page.click("text=贷款贴息和担保费补贴")
    page.wait_for_url("**/apply/loan_subsidy")
    page.select_option("#f-applicant\\.size", "small")
    page.select_option("#f-loans\\.0\\.lender_in_district", "true")
    page.fill("#f-loans\\.0\\.drawdown", "2022-03-15")
    page.fill("#f-loans\\.0\\.principal", "1200万")  # not a number
    page.click("text=添加一项")
    page.select_option("#f-loans\\.1\\.lender_in_district", "true")
    page.fill("#f-loans\\.1\\.drawdown", "2022-09-01")
    page.fill("#f-loans\\.1\\.principal", "8000000")
    page.fill("#f-eligible_interest", "480000")
    page.set_input_files("#file-loan_contracts", str(UPLOADS / "loan-contract.pdf"))
    page.set_input_files("#file-interest_vouchers", str(UPLOADS / "voucher.png"))
    shot(page, "04-form-filled")
    page.click("#preview")
    error = page.locator(".field.invalid .error").first.inner_text()
    assert "数" in error  # a Chinese message by the field
    assert page.locator("#f-loans\\.0\\.principal").input_value() == "1200万"  # kept
    assert page.locator(".uploaded").count() == 2  # the files survive the round trip
    shot(page, "05-form-error")
    page.fill("#f-loans\\.0\\.principal", "12000000")
    page.click("#preview")
    page.wait_for_selector("#confirm")
    assert page.locator("#estimate-decision-1").inner_text() == "准予"
    shot(page, "06-preview")
    page.click("#confirm")
    page.wait_for_url("**/my/receipt/*")
    receipt = page.locator("#receipt").inner_text()
    case_no = re.search(r"DC-2022-\d{6}", receipt).group(0)  # type: ignore[union-attr]
    assert re.search(r"[0-9A-Z]{5}-[0-9A-Z]{5}", receipt)
    shot(page, "07-receipt")

    # 3. the 受理通知书 by e-mail
    deliver_outbox(world)
    accepted = [m for m in mails(sink) if "受理通知书" in m["subject"]]
    assert len(accepted) == 1 and accepted[0]["to"] == MAIL and case_no in accepted[0]["text"]

    # 4. a reviewer asks for one more document
    reviewer = browser.new_page(locale="zh-CN")
    sign_in(reviewer, url, "rev_loan_a", "pw-rev_loan_a")
    reviewer.wait_for_url("**/bureau/tasks")
    reviewer.click(f"text={case_no}")
    assert reviewer.locator("#documents tbody tr").count() == 2
    backed = reviewer.locator("td.backing").all_inner_texts()
    assert any("贷款合同：loan-contract.pdf" in x for x in backed)  # the check it backs shows it
    assert reviewer.locator("#documents").inner_text().count("PDF") == 0  # labels, not codes
    with reviewer.expect_popup() as popup:
        reviewer.click("#documents a >> nth=0")
    assert popup.value.url.endswith("/documents/1")
    popup.value.close()
    reviewer.check("input[name=slots][value=loan_contracts]")
    reviewer.fill("textarea[name=items]", "第二笔贷款（2022年9月1日放款）的贷款合同")
    reviewer.click("button[name=request-info]")
    assert "待补充材料" in reviewer.locator("#case-state").inner_text()
    shot(reviewer, "08-reviewer-asks")
    deliver_outbox(world)
    asked = [m for m in mails(sink) if "补充材料通知书" in m["subject"]]
    assert len(asked) == 1 and "贷款合同" in asked[0]["text"]

    # 5. the applicant uploads it from 我的申请
    page.goto(f"{url}/my")
    assert "补充材料" in page.locator("#my-cases").inner_text()
    shot(page, "09-my-asked")
    page.click(f"text={case_no}")
    page.set_input_files("#answer-loan_contracts", str(UPLOADS / "guarantee.jpg"))
    shot(page, "10-answer")
    page.click("section.ask form > button[type=submit]")
    assert "已办理" in page.content() and page.locator("section.ask").count() == 0
    assert page.locator("#documents tbody tr").count() == 3
    shot(page, "11-answered")

    # 6. two reviewers decide: A reviews, B confirms and approves (not the one who reviewed)
    reviewer.reload()
    reviewer.click("button[name=review-pass]")
    assert "待确认" in reviewer.locator("#case-state").inner_text()
    other = browser.new_page(locale="zh-CN")
    sign_in(other, url, "rev_loan_b", "pw-rev_loan_b")
    other.goto(f"{url}/bureau/cases/{case_no}")
    other.click("button[name=confirm]")
    assert "已确认" in other.locator("#case-state").inner_text()
    other.click("button[name=approve]")
    other.wait_for_load_state()
    assert "准予决定书" in other.content()
    shot(other, "12-approved")

    # 7. the decision notice on the applicant's page and in the mailbox
    page.goto(f"{url}/my/cases/{case_no}")
    assert "准予决定书" in page.locator("details.notice").last.inner_text()
    shot(page, "13-decision")
    deliver_outbox(world)
    decided = [m for m in mails(sink) if "准予决定书" in m["subject"]]
    assert len(decided) == 1 and decided[0]["to"] == MAIL and case_no in decided[0]["text"]
    for p in (page, reviewer, other):
        p.close()
