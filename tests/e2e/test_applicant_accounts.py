"""Applicant accounts and 我的申请 over real HTTP with a real SMTP server: registration by a
one-time code, password reset, contact details that reach the next notice's delivery, and what
a careless or hostile visitor sends (wrong codes, forged tickets, another's case, no mail)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from email import message_from_bytes
from pathlib import Path
from typing import Any

import httpx
import pytest
import scenarios as S
import staff
from aiosmtpd.controller import Controller
from conftest import FIXED_NOW, LiveServer, make_case_engine
from drive import submit
from smtp_sink import Sink
from sqlmodel import Session, col, select

from api.main import create_app
from models.settings import Settings
from models.tables import Account, ApplicantEvent, Case, CaseDocument, Notice, NoticeDelivery
from notifications.delivery import deliver

USCC = "91110101MA00JR107G"  # LOAN-01's applicant


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, html[:500]
    return found.group(1)


def last_code(sink: Sink) -> str:
    msg = message_from_bytes(sink.messages[-1].original_content)
    for part in msg.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            found = re.search(r"(\d{6})", payload.decode("utf-8"))
            assert found
            return found.group(1)
    raise AssertionError("no text part")


@pytest.fixture
def site(sqlite_url: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    sink, port = Sink(), free_port()
    smtp = Controller(sink, hostname="127.0.0.1", port=port)
    smtp.start()
    settings = Settings(database_url=sqlite_url, now=FIXED_NOW, smtp_host="127.0.0.1",
                        smtp_port=port, document_store=str(tmp_path / "docs"))  # fmt: skip
    try:
        with LiveServer(create_app(settings)) as server:
            yield {"url": server.url, "sink": sink, "settings": settings,
                   "engine": make_case_engine(sqlite_url)}  # fmt: skip
    finally:
        smtp.stop()


def browser_client(site: dict[str, Any]) -> httpx.Client:
    return httpx.Client(base_url=site["url"], follow_redirects=False)


def register(c: httpx.Client, **fields: str) -> httpx.Response:
    form = c.get("/register").text
    data = {"uscc": USCC, "name": "东城示例科技有限公司", "email": "cfo@example.com",
            "phone": "", "password": "long-enough-1", "password_again": "long-enough-1",
            **fields}  # fmt: skip
    return c.post("/register", data={"csrf_token": csrf_of(form), **data})


def confirm(c: httpx.Client, location: str, code: str) -> httpx.Response:
    page = c.get(location).text
    ticket = re.search(r'name="t" value="([^"]+)"', page)
    assert ticket
    data = {"csrf_token": csrf_of(page), "t": ticket.group(1), "code": code}
    return c.post("/register/confirm", data=data)


def test_registration_by_code_and_what_it_refuses(site: dict[str, Any]) -> None:
    sink = site["sink"]
    with browser_client(site) as c:
        bad = register(c, uscc="91110101MA00JR107A")
        assert bad.status_code == 422 and "校验" in bad.text
        assert register(c, email="", phone="").status_code == 422
        short = register(c, password="short", password_again="short")
        assert short.status_code == 422 and "至少8位" in short.text
        assert "两次输入的密码不一致" in register(c, password_again="other-one-1").text
        hostile = register(c, name="<script>alert(1)</script>", email="x@example.com\r\nBcc: y@z")
        assert "<script>alert(1)</script>" not in hostile.text and hostile.status_code == 422
        assert sink.messages == []  # nothing sent for a form with a problem

        first = register(c)
        assert first.status_code == 303, re.findall(r'role="alert">([^<]+)', first.text)
        first_code = last_code(sink)
        # walked away from; the real owner registers again: the first pending one is replaced
        second = register(c, email="owner@example.com")
        assert second.status_code == 303, re.findall(r"role=.alert.>([^<]+)", second.text)
        assert [m.rcpt_tos for m in sink.messages] == [["cfo@example.com"], ["owner@example.com"]]
        stale = confirm(c, first.headers["location"], first_code)
        assert stale.status_code == 422  # the first registration's code is void now
        forged = c.get("/register/confirm?t=" + "x" * 60, follow_redirects=False)
        assert forged.status_code == 303 and forged.headers["location"] == "/register"
        code = last_code(sink)
        wrong = "000000" if code != "000000" else "111111"
        assert confirm(c, second.headers["location"], wrong).status_code == 422
        ok = confirm(c, second.headers["location"], code)
        assert ok.status_code == 303 and ok.headers["location"] == "/my"
        assert c.get("/my").status_code == 200  # signed in
        again = register(c)
        assert again.status_code == 422 and "已注册" in again.text
    with Session(site["engine"].db) as s:
        account = s.exec(select(Account).where(col(Account.username) == USCC)).one()
        event = s.exec(select(ApplicantEvent)).one()
    assert account.active and account.role == "applicant" and account.uscc == USCC
    assert event.trigger == "registered" and event.payload["after"]["email"] == "owner@example.com"


def test_wrong_codes_lock_and_a_reset_tells_nothing_about_who_is_registered(
    site: dict[str, Any],
) -> None:
    sink = site["sink"]
    with browser_client(site) as c:
        r = register(c)
        for _ in range(5):
            confirm(c, r.headers["location"], "000000")
        locked = confirm(c, r.headers["location"], last_code(sink))
        assert locked.status_code == 422 and ("锁定" in locked.text or "频繁" in locked.text
                                              or "不正确" in locked.text)  # fmt: skip
    with Session(site["engine"].db) as s:
        assert not s.exec(select(Account).where(col(Account.username) == USCC)).one().active

    def forgot(c: httpx.Client, uscc: str) -> httpx.Response:
        page = c.get("/password/forgot").text
        return c.post("/password/forgot", data={"csrf_token": csrf_of(page), "uscc": uscc})

    with browser_client(site) as c:
        sent_before = len(sink.messages)
        unknown = forgot(c, "91110101MA00XY6089")
        pending = forgot(c, USCC)  # registered, never confirmed: not an account yet
        assert unknown.status_code == pending.status_code == 303
        assert c.get(unknown.headers["location"]).text.count("您登记的邮箱或手机") == 1
        assert len(sink.messages) == sent_before  # no mail to anyone

    # a confirmed account resets its password with the code from its mailbox
    other = "91110101MA00XY6089"
    with browser_client(site) as c:
        r = register(c, uscc=other, email="boss@example.com")
        assert confirm(c, r.headers["location"], last_code(sink)).status_code == 303
    with browser_client(site) as c:
        sent = forgot(c, other)
        assert sink.messages[-1].rcpt_tos == ["boss@example.com"]
        page = c.get(sent.headers["location"]).text
        ticket = re.search(r'name="t" value="([^"]+)"', page)
        assert ticket and "b***@example.com" in page
        data = {"csrf_token": csrf_of(page), "t": ticket.group(1), "code": last_code(sink),
                "password": "new-password-9", "password_again": "new-password-9"}  # fmt: skip
        short = c.post("/password/reset", data={**data, "password": "x", "password_again": "x"})
        assert short.status_code == 422 and "至少8位" in short.text
        done = c.post("/password/reset", data=data)
        assert done.status_code == 303 and done.headers["location"] == "/login"
        reused = c.post("/password/reset", data=data)  # a code works once
        assert reused.status_code == 422
        login = c.get("/login").text
        signed = c.post("/login", data={"csrf_token": csrf_of(login), "username": other,
                                        "password": "new-password-9"})  # fmt: skip
        assert signed.status_code == 303 and signed.headers["location"] == "/my"


def test_contact_details_changed_on_the_page_reach_the_next_notice(site: dict[str, Any]) -> None:
    engine, sink = site["engine"], site["sink"]
    with browser_client(site) as c:
        r = register(c)
        assert confirm(c, r.headers["location"], last_code(sink)).status_code == 303
        # the form of a LOAN-01 filing, through the engine as this applicant
        [made] = submit(engine, S.application("LOAN-01"))
        page = c.get("/my/contact").text
        assert 'value="cfo@example.com"' in page
        bad = c.post(
            "/my/contact",
            data={
                "csrf_token": csrf_of(page),
                "email": "",
                "notify": ["sms"],
                "was_email": "cfo@example.com",
            },
        )
        assert bad.status_code == 422 and "手机号" in bad.text
        stale = c.post(
            "/my/contact",
            data={
                "csrf_token": csrf_of(page),
                "email": "x@example.com",
                "notify": ["email"],
                "was_email": "old@example.com",
            },
        )
        assert stale.status_code == 303
        assert "已被修改" in c.get("/my/contact").text
        changed = c.post("/my/contact", data={"csrf_token": csrf_of(page),
                                              "email": "finance@example.com", "notify": ["email"],
                                              "was_email": "cfo@example.com"})  # fmt: skip
        assert changed.status_code == 303
        assert "联系方式已更新" in c.get("/my/contact").text
        forged = c.post("/my/contact", data={"csrf_token": "nope", "email": "evil@example.com"})
        assert forged.status_code == 403
        # another applicant's case does not exist for this one
        [theirs] = submit(engine, S.application("CRED-01"))
        assert c.get(f"/my/cases/{theirs.case_no}").status_code == 404
        # nor can it be answered, added to or withdrawn by this one
        with Session(engine.db) as s:
            version = s.exec(select(Case.version).where(col(Case.id) == theirs.case_id)).one()
        page = c.get(f"/my/cases/{made.case_no}").text
        pdf = (Path(__file__).parents[1] / "data" / "uploads" / "loan-contract.pdf").read_bytes()
        c.post(
            f"/my/cases/{theirs.case_no}/answer",
            data={"csrf_token": csrf_of(page)},
            files=[("file.penalty_decision", ("a.pdf", pdf, "application/pdf"))],
        )
        c.post(f"/my/cases/{theirs.case_no}/withdraw", data={"csrf_token": csrf_of(page)})
        with Session(engine.db) as s:
            foreign = s.exec(select(Case).where(col(Case.id) == theirs.case_id)).one()
            docs = s.exec(
                select(CaseDocument).where(col(CaseDocument.case_id) == theirs.case_id)
            ).all()
        assert foreign.state != "withdrawn" and foreign.version == version and docs == []
        assert (
            c.post(
                "/my/cases/DC-2022-999999/answer", data={"csrf_token": csrf_of(page)}
            ).status_code
            == 404
        )
        assert c.get(f"/my/cases/{made.case_no}").status_code == 200
        assert c.get("/my/cases/" + "%00" * 5).status_code in (400, 404)
    reviewer = staff.holder(engine, made.case_id, "review", n=1)
    engine.fire(made.case_id, "request_info", actor=reviewer, payload={"items": ["付息凭证"]})
    with Session(engine.db) as s:
        notices = s.exec(
            select(Notice).where(col(Notice.case_id) == made.case_id).order_by(col(Notice.id))
        ).all()
    before = len(sink.messages)
    for n in notices:
        assert n.id is not None
        deliver(engine.db, n.id, site["settings"], FIXED_NOW)
    tos = [m.rcpt_tos for m in sink.messages[before:]]
    assert tos == [["finance@example.com"]] * len(notices)
    with Session(engine.db) as s:
        receipts = s.exec(select(NoticeDelivery)).all()
    assert all(d.status == "delivered" for d in receipts)


def test_registration_without_a_mail_or_sms_channel_says_so(
    sqlite_url: str, tmp_path: Path
) -> None:
    settings = Settings(database_url=sqlite_url, now=FIXED_NOW, smtp_host=None,
                        document_store=str(tmp_path / "docs"))  # fmt: skip
    with LiveServer(create_app(settings)) as server:
        with httpx.Client(base_url=server.url, follow_redirects=False) as c:
            r = register(c)
    assert r.status_code == 422 and "尚未配置可用的邮件或短信通道" in r.text
    with Session(make_case_engine(sqlite_url).db) as s:
        account = s.exec(select(Account).where(col(Account.username) == USCC)).one()
    assert not account.active  # pending; the next registration for the USCC replaces it
