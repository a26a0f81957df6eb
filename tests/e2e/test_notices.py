"""Notices: golden texts for every kind, and delivery over a real SMTP server (aiosmtpd) and a
real HTTP webhook, exactly once, with the SMTP server down and then up again."""

from __future__ import annotations

import json
import os
import re
import socket
import threading
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import scenarios as S
import staff
from aiosmtpd.controller import Controller
from conftest import FIXED_NOW, make_case_engine
from drive import decide, pass_reviews, submit, tasks
from smtp_sink import Sink
from sqlmodel import Session, col, select

from base.civil_dates import SHANGHAI
from base.clock import Clock
from flows.outbox import OutboxParams, outbox_flow
from models.settings import Settings
from models.tables import ApplicantRequest, Incident, Notice, NoticeDelivery
from notifications.issuer import engine_with_notices
from states.engine import CaseEngine

GOLDEN = Path(__file__).parents[1] / "golden" / "notices"
UPDATE = os.environ.get("RELIEF_UPDATE_GOLDEN") == "1"


def notices_of(engine: CaseEngine, case_id: int) -> list[Notice]:
    with Session(engine.db) as s:
        return list(
            s.exec(
                select(Notice).where(col(Notice.case_id) == case_id).order_by(col(Notice.id))
            ).all()
        )


def open_requests(engine: CaseEngine, case_id: int) -> list[ApplicantRequest]:
    with Session(engine.db) as s:
        return list(
            s.exec(
                select(ApplicantRequest).where(
                    col(ApplicantRequest.case_id) == case_id,
                    col(ApplicantRequest.status) == "open",
                )
            ).all()
        )


def one(engine: CaseEngine, case_id: int, kind: str) -> Notice:
    [n] = [n for n in notices_of(engine, case_id) if n.kind == kind]
    return n


# ---------------------------------------------------------------- golden texts
@pytest.fixture(scope="module")
def every_kind(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Notice]:
    """One notice of each kind for fixed cases, on a fixed clock."""
    from models.db import migrate

    url = f"sqlite:///{tmp_path_factory.mktemp('golden')}/golden.db"
    migrate(url)
    auto = make_case_engine(url)
    out: dict[str, Notice] = {}
    [inc] = submit(auto, S.application("RENT-07"))
    decide(auto, inc.case_id, approve=True)
    auto.fire(
        inc.case_id,
        "record_payment",
        actor=staff.system(auto),
        payload={"external_ref": "GK000001"},
    )
    for kind in ("acceptance", "decision_partial", "payout"):
        out[kind] = one(auto, inc.case_id, kind)
    [loan] = submit(auto, S.application("LOAN-01"))
    auto.fire(
        loan.case_id,
        "request_info",
        actor=staff.holder(auto, loan.case_id, "review", n=1),
        payload={"items": ["2022年贷款利息支付凭证"], "deadline": "2023-01-13"},
    )
    [request] = open_requests(auto, loan.case_id)
    assert request.id is not None
    auto.note_request(request.id, actor=staff.system(auto))
    out["reply_reminder"] = one(auto, loan.case_id, "reply_reminder")
    auto.fire(loan.case_id, "supply_info", actor=staff.applicant_of_case(auto, loan.case_id))
    decide(auto, loan.case_id, approve=True)
    out["more_info"] = one(auto, loan.case_id, "more_info")
    out["decision_granted"] = one(auto, loan.case_id, "decision_granted")
    [rent] = submit(auto, S.application("RENT-01"))
    decide(auto, rent.case_id, approve=True)
    out["decision_granted_civil"] = one(auto, rent.case_id, "decision_granted")
    [refused] = submit(auto, S.application("CRED-02"))
    decide(auto, refused.case_id, approve=False)
    out["decision_refused"] = one(auto, refused.case_id, "decision_refused")
    [na] = submit(auto, S.application("LIC-03"))
    out["not_accepted"] = one(auto, na.case_id, "not_accepted")
    [lic] = submit(auto, S.application("LIC-02"))
    decide(auto, lic.case_id, approve=True)
    out["extension"] = one(auto, lic.case_id, "extension")
    [w] = submit(auto, S.application("CRED-01"))
    auto.fire(w.case_id, "withdraw", actor=staff.applicant_of_case(auto, w.case_id))
    out["withdrawn"] = one(auto, w.case_id, "withdrawn")
    [x] = submit(auto, S.application("CRED-01"))
    auto.fire(
        x.case_id, "expire", actor=staff.system(auto), payload={"reason": "申请人逾期未补充材料"}
    )
    out["expired"] = one(auto, x.case_id, "expired")
    [t] = submit(auto, S.application("LOAN-03"))
    [task] = [tk for tk in tasks(auto, t.case_id) if tk.bureau_code == "finance_office"]
    assert task.id is not None
    auto.note_task(task.id, kind="reminder", actor=staff.system(auto))
    auto.note_task(task.id, kind="escalation", actor=staff.system(auto))
    out["task_reminder"] = one(auto, t.case_id, "task_reminder")
    out["task_escalation"] = one(auto, t.case_id, "task_escalation")

    manual = engine_with_notices(
        auto.db, settings=Settings(database_url=url, intake_review=True), clock=Clock(FIXED_NOW)
    )
    [c] = submit(manual, S.application("CRED-01"))
    manual.fire(
        c.case_id,
        "request_correction",
        actor=staff.intake_holder(manual, c.case_id),
        payload={
            "items": ["行政处罚决定书复印件", "因疫情影响导致失信的说明及证明材料"],
            "deadline": "2023-01-13",
        },
    )
    out["correction"] = one(manual, c.case_id, "correction")
    [d] = submit(manual, S.application("RENT-01"))
    manual.fire(
        d.case_id,
        "accept_deferred",
        actor=staff.intake_holder(manual, d.case_id),
        payload={"items": ["在京纳税证明"]},
    )
    out["deferred_acceptance"] = one(manual, d.case_id, "deferred_acceptance")
    return out


def normalise(text: str) -> str:
    return re.sub(r"查询码：[0-9A-Z]{5}-[0-9A-Z]{5}", "查询码：<查询码>", text)


KINDS = [
    "acceptance",
    "deferred_acceptance",
    "correction",
    "not_accepted",
    "more_info",
    "decision_granted",
    "decision_granted_civil",
    "decision_partial",
    "decision_refused",
    "payout",
    "extension",
    "withdrawn",
    "expired",
    "reply_reminder",
    "task_reminder",
    "task_escalation",
]


@pytest.mark.parametrize("kind", KINDS)
def test_golden_text(every_kind: dict[str, Notice], kind: str) -> None:
    notice = every_kind[kind]
    text = normalise(notice.body_text)
    path = GOLDEN / f"{kind}.txt"
    if UPDATE:
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")
    assert notice.content_hash and len(notice.content_hash) == 64
    assert notice.body_html.startswith("<!doctype html>")


def test_decision_notices_carry_what_the_law_requires(every_kind: dict[str, Notice]) -> None:
    for kind in ("decision_granted", "decision_partial", "decision_refused", "not_accepted"):
        text = every_kind[kind].body_text
        # decided in 2022: the 2017 law, which lets the applicant choose the 区政府 or the
        # bureau's 上一级主管部门 (the 2023 revision, from 2024-01-01, names only the 区政府)
        assert "六十日内向北京市东城区人民政府或者" in text, kind
        assert "六个月内依法向有管辖权的人民法院提起行政诉讼" in text, kind
        assert "东政发〔2022〕8号" in text and "联系人：" in text, kind
    assert (
        "如不服本机关不予受理的决定，可以自收到本通知书之日起"
        in every_kind["not_accepted"].body_text
    )
    assert "如不服本机关终止办理的决定，可以自收到本告知书之日起" in every_kind["expired"].body_text
    civil = every_kind["decision_granted_civil"].body_text
    assert "行政复议" not in civil and "决定" not in civil.replace("不是行政决定", "")
    assert "本告知书不是行政决定" in civil and "工作专班" in civil and "民事诉讼" in civil
    assert "柒万伍仟元整" in every_kind["payout"].body_text  # 人民币大写 by cn2an
    assert re.fullmatch(r"东[^〔]+〔2022〕[1-9]\d*号", every_kind["payout"].doc_number or "")
    assert every_kind["task_escalation"].audience == "bureau"


def test_document_numbers_are_serial_per_issuer_and_year(every_kind: dict[str, Notice]) -> None:
    numbers: dict[str, list[int]] = {}
    for n in every_kind.values():
        if n.doc_number:
            m = re.fullmatch(r"(.+)〔2022〕(\d+)号", n.doc_number)
            assert m, n.doc_number
            numbers.setdefault(m.group(1), []).append(int(m.group(2)))
    for prefix, serials in numbers.items():
        assert len(serials) == len(set(serials)), prefix  # never twice


def test_html_escapes(every_kind: dict[str, Notice]) -> None:
    from notifications.render import render_notice

    n = every_kind["expired"]
    assert (
        "<script>"
        not in render_notice(
            "withdrawn",
            {
                "notice": {
                    "title": "t<script>",
                    "doc_number": None,
                    "issued_on": "",
                    "kind": "withdrawn",
                },
                "issuer": {"name": "<script>", "unit": ""},
                "recipient": "r",
                "remedy": {"kind": "none"},
                "contacts": "",
                "case": {"type_label": "x", "case_no": "1"},
                "form": {"seal_line": "<script>"},
            },
        ).html
    )
    assert n.body_text.startswith("北京市东城区市场监督管理局")


# ---------------------------------------------------------------- delivery
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Webhook:
    def __init__(self, code: int = 200) -> None:
        self.posts: list[dict[str, Any]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                hook.posts.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                body = b'{"message_id": "SMS-1"}'
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/sms"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def smtp_port(monkeypatch: pytest.MonkeyPatch, flow_db: str) -> int:
    from models.settings import get_settings

    port = free_port()
    monkeypatch.setenv("RELIEF_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("RELIEF_SMTP_PORT", str(port))
    monkeypatch.setenv("RELIEF_NOTICE_RETRY_SECONDS", "0")
    get_settings.cache_clear()
    return port


@pytest.fixture
def webhook(monkeypatch: pytest.MonkeyPatch, flow_db: str) -> Iterator[Webhook]:
    from models.settings import get_settings

    hook = Webhook()
    monkeypatch.setenv("RELIEF_SMS_WEBHOOK_URL", hook.url)
    monkeypatch.setenv("RELIEF_NOTICE_RETRY_SECONDS", "0")
    get_settings.cache_clear()
    yield hook
    hook.stop()


def with_contact(sid: str, **party: Any) -> dict[str, Any]:
    app = S.application(sid)
    app["applicant"].update(party)
    return app


def test_smtp_down_then_up_delivers_each_notice_once(flow_db: str, smtp_port: int) -> None:
    from flows.common import case_engine

    engine = case_engine()
    [r] = submit(engine, with_contact("RENT-07", email="incubator@example.com"))
    decide(engine, r.case_id, approve=True)
    [q] = submit(engine, with_contact("CRED-01", name="示例企业"))  # no channel
    first = outbox_flow(OutboxParams())
    assert first.retry_later == 2 and first.delivered == 0 and first.no_channel == 1
    with Session(engine.db) as s:
        failed = s.exec(select(NoticeDelivery)).all()
    assert {d.status for d in failed} == {"failed"} and all("SMTP" in d.receipt for d in failed)

    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    try:
        second = outbox_flow(OutboxParams())
        third = outbox_flow(OutboxParams())
    finally:
        controller.stop()
    with Session(engine.db) as s:
        receipts = [d.receipt for d in s.exec(select(NoticeDelivery)).all()]
    assert second.delivered == 2 and third.due == 0, receipts
    ids = [m.original_content.split(b"Message-ID: ")[1].split(b"\r\n")[0] for m in sink.messages]
    assert len(ids) == len(set(ids)) == 2  # exactly once each
    assert all(m.rcpt_tos == ["incubator@example.com"] for m in sink.messages)
    subjects = [m.original_content.decode(errors="replace") for m in sink.messages]
    assert any("=?utf-8?" in s or "受理通知书" in s for s in subjects)
    with Session(engine.db) as s:
        notices = s.exec(select(Notice).where(col(Notice.case_id) == r.case_id)).all()
        deliveries = s.exec(
            select(NoticeDelivery).where(col(NoticeDelivery.status) == "delivered")
        ).all()
        quiet = s.exec(select(Notice).where(col(Notice.case_id) == q.case_id)).one()
    assert {n.status for n in notices} == {"delivered"} and all(n.attempts == 2 for n in notices)
    assert all(d.receipt.startswith("250") for d in deliveries)
    assert quiet.status == "no_channel" and quiet.body_text  # still on the status page


def test_sms_webhook_delivery_and_permanent_failure(
    flow_db: str, webhook: Webhook, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.common import case_engine

    engine = case_engine()
    [r] = submit(engine, with_contact("LOAN-01", phone="13800000000", notify=["sms"]))
    assert outbox_flow(OutboxParams()).delivered == 1
    assert outbox_flow(OutboxParams()).due == 0
    [post] = webhook.posts
    assert post["to"] == "13800000000" and post["title"] == "受理通知书"
    assert post["idempotency_key"].startswith(f"notice:{r.case_id}:")
    with Session(engine.db) as s:
        receipt = s.exec(select(NoticeDelivery)).one().receipt
    assert receipt.startswith("200") and "SMS-1" in receipt

    broken = Webhook(code=400)
    monkeypatch.setenv("RELIEF_SMS_WEBHOOK_URL", broken.url)
    from models.settings import get_settings

    get_settings.cache_clear()
    try:
        engine = case_engine()
        submit(engine, with_contact("LOAN-03", phone="139", notify=["sms"]))
        assert outbox_flow(OutboxParams()).failed == 1
    finally:
        broken.stop()
    with Session(engine.db) as s:
        incident = s.exec(select(Incident)).one()
    assert incident.kind == "notice_undeliverable" and "400" in incident.message


def test_retries_run_out_then_incident(
    flow_db: str, smtp_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.common import case_engine
    from models.settings import get_settings

    monkeypatch.setenv("RELIEF_NOTICE_MAX_ATTEMPTS", "2")
    get_settings.cache_clear()
    engine = case_engine()
    submit(engine, with_contact("CRED-01", email="x@example.com"))
    outbox_flow(OutboxParams())
    assert outbox_flow(OutboxParams()).failed == 1
    with Session(engine.db) as s:
        assert s.exec(select(Incident)).one().ref.startswith("notice:")


def test_backoff_waits_before_the_next_attempt(
    flow_db: str, smtp_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.common import case_engine
    from models.settings import get_settings

    monkeypatch.setenv("RELIEF_NOTICE_RETRY_SECONDS", "600")
    get_settings.cache_clear()
    engine = case_engine()
    submit(engine, with_contact("CRED-01", email="x@example.com"))
    assert outbox_flow(OutboxParams()).retry_later == 1
    assert outbox_flow(OutboxParams()).due == 0  # not yet
    later = datetime(2022, 12, 30, 10, 11, tzinfo=SHANGHAI)
    assert outbox_flow(OutboxParams(now=later)).due == 1


def test_bureau_escalation_goes_to_the_section_head(
    flow_db: str, smtp_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.common import case_engine
    from models.settings import get_settings

    monkeypatch.setenv(
        "RELIEF_BUREAU_EMAILS",
        json.dumps({"samr.credit": "credit@samr", "samr.credit#head": "head@samr"}),
    )
    get_settings.cache_clear()
    engine = case_engine()
    [r] = submit(engine, S.application("CRED-01"))
    [task] = tasks(engine, r.case_id)
    assert task.id is not None
    engine.note_task(task.id, kind="escalation", actor=staff.system(engine))
    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    try:
        outbox_flow(OutboxParams())
    finally:
        controller.stop()
    assert [m.rcpt_tos for m in sink.messages] == [["head@samr"]]


def test_relief_notices_shows_history(flow_db: str, smtp_port: int) -> None:
    from typer.testing import CliRunner

    from cli.main import app
    from flows.common import case_engine

    engine = case_engine()
    [r] = submit(engine, with_contact("CRED-01", email="x@example.com"))
    outbox_flow(OutboxParams())
    out = CliRunner().invoke(app, ["notices", r.case_no], env={"COLUMNS": "250"})
    assert out.exit_code == 0
    assert "受理通知书" in out.stdout and "failed" in out.stdout and "email" in out.stdout
    shown = CliRunner().invoke(
        app, ["notices", r.case_no, "--show", str(notices_of(engine, r.case_id)[0].id)]
    )
    assert "本机关决定予以受理" in shown.stdout
    pass_reviews(engine, r.case_id)


def test_an_unconfigured_channel_waits_without_incident_then_delivers(
    flow_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Default settings configure no SMTP server and no SMS gateway: notices owed on them wait
    (`awaiting_channel`, no attempt, no incident, readable on the status page) and go out once
    the channel is configured, each exactly once."""
    import httpx
    from conftest import LiveServer

    from api.main import create_app
    from api.security import create_account
    from flows.common import case_engine
    from models.settings import get_settings
    from models.tables import Case

    for name in ("RELIEF_SMTP_HOST", "RELIEF_SMS_WEBHOOK_URL"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    engine = case_engine()
    [mail] = submit(engine, with_contact("CRED-01", email="credit@example.com"))
    [both] = submit(
        engine,
        with_contact(
            "LOAN-01", email="loan@example.com", phone="13800000000", notify=["email", "sms"]
        ),
    )
    first = outbox_flow(OutboxParams())
    assert first.awaiting_channel == first.due >= 2 and first.failed == first.retry_later == 0
    assert outbox_flow(OutboxParams()).due == 0  # nothing to try until a channel appears
    with Session(engine.db) as s:
        assert s.exec(select(Incident)).all() == [] and s.exec(select(NoticeDelivery)).all() == []
        code = s.get(Case, mail.case_id).query_code  # type: ignore[union-attr]
    waiting = notices_of(engine, mail.case_id)
    assert {n.status for n in waiting} == {"awaiting_channel"} and all(
        n.attempts == 0 for n in waiting
    )
    _, token = create_account(engine.db, username="ops", role="operator", now=FIXED_NOW)
    with LiveServer(create_app(get_settings())) as site:
        public = httpx.get(f"{site.url}/api/status/{mail.case_no}?code={code}", timeout=30).json()
        counts = httpx.get(
            f"{site.url}/api/operator/counts",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        ).json()
    assert counts["outbox_awaiting_channel"] == first.due and counts["incidents_open"] == 0
    assert {n["status"] for n in public["notices"]} == {"awaiting_channel"}
    assert all(n["text"] for n in public["notices"])

    port = free_port()
    monkeypatch.setenv("RELIEF_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("RELIEF_SMTP_PORT", str(port))
    get_settings.cache_clear()
    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        with_mail = outbox_flow(OutboxParams())
    finally:
        controller.stop()
    assert with_mail.delivered == len(waiting) and with_mail.awaiting_channel >= 1
    assert {n.status for n in notices_of(engine, mail.case_id)} == {"delivered"}
    assert {n.status for n in notices_of(engine, both.case_id)} == {"awaiting_channel"}  # SMS

    hook = Webhook()
    monkeypatch.setenv("RELIEF_SMS_WEBHOOK_URL", hook.url)
    get_settings.cache_clear()
    try:
        with_sms = outbox_flow(OutboxParams())
        assert outbox_flow(OutboxParams()).due == 0
    finally:
        hook.stop()
    owed = notices_of(engine, both.case_id)
    assert with_sms.delivered == len(owed) and {n.status for n in owed} == {"delivered"}
    assert len(hook.posts) == len(owed) and all(p["to"] == "13800000000" for p in hook.posts)
    assert all(n == 1 for n in sink.message_ids().values())
    assert len(sink.messages) == len(waiting) + len(owed)  # each e-mail once
    with Session(engine.db) as s:
        assert s.exec(select(Incident)).all() == []
        attempts = s.exec(select(NoticeDelivery)).all()
    assert {d.status for d in attempts} == {"delivered"}


def test_the_remedy_follows_the_deciding_authority(engine: CaseEngine) -> None:
    """区政府 decides the park and building subsidies: a reconsideration of its act goes to
    北京市人民政府 and a suit to 北京市第四中级人民法院, never to 区政府 itself; a bureau's act
    (区金融办) goes to 北京市东城区人民政府."""
    [park] = submit(engine, S.application("RENT-08"))
    decide(engine, park.case_id, approve=True)
    [loan] = submit(engine, S.application("LOAN-01"))
    decide(engine, loan.case_id, approve=True)
    park_text = one(engine, park.case_id, "decision_partial").body_text
    loan_text = one(engine, loan.case_id, "decision_granted").body_text
    assert "六十日内向北京市人民政府申请行政复议" in park_text
    assert "依法向北京市第四中级人民法院提起行政诉讼" in park_text
    assert "北京市东城区人民政府申请行政复议" not in park_text
    assert park_text.splitlines()[0] == "北京市东城区人民政府"  # issued in its full name
    # decided in 2022: the 2017 law lets the applicant choose the 区政府 or the 上一级主管部门
    assert "六十日内向北京市东城区人民政府或者北京市地方金融监督管理局申请行政复议" in loan_text
    assert "北京市第四中级人民法院" not in loan_text


def test_a_decision_from_2024_follows_the_2023_law(db_url: str) -> None:
    """The remedy follows the law in force on the day of the decision, not of the filing."""
    filed = make_case_engine(db_url)
    [loan] = submit(filed, S.application("LOAN-01"))
    [park] = submit(filed, S.application("RENT-08"))
    later = make_case_engine(db_url, now=datetime(2024, 3, 4, 10, tzinfo=SHANGHAI))
    decide(later, loan.case_id, approve=True)
    decide(later, park.case_id, approve=True)
    loan_text = one(later, loan.case_id, "decision_granted").body_text
    park_text = one(later, park.case_id, "decision_partial").body_text
    assert "六十日内向北京市东城区人民政府申请行政复议" in loan_text  # the 2023 law: 区政府 only
    assert "上一级主管部门" not in loan_text and "金融监督管理局申请" not in loan_text
    assert "六十日内向北京市人民政府申请行政复议" in park_text
    assert "2024年3月4日" in loan_text
