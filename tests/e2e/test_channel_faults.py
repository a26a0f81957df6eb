"""Channels that misbehave (issue 18): real aiosmtpd servers and a real HTTP webhook that
answer slowly, a byte at a time, drop the connection after DATA, refuse for a while or for
good (tests/faulty_receivers.py). Whatever they do, no notice is lost — each is delivered or
is an open incident, its text readable — and a notice reaches a receiver twice only with the
same key, which lets the receiver drop the repeat (Message-ID for mail, Idempotency-Key for
the webhook).

The channel timeout is RELIEF_CHANNEL_TIMEOUT_SECONDS = 1 here, so the slow cases cost about
a second each. Most cases run the outbox's own delivery task (`deliver_chunk.fn`) on SQLite;
the dropped connection and the attempts running out run the outbox flow itself (real Prefect
flow runs) on SQLite and PostgreSQL.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, get_args

import pytest
import scenarios as S
import staff
from conftest import FIXED_NOW
from drive import submit
from faulty_receivers import (
    DROP_AFTER_DATA,
    OK,
    FaultySink,
    FaultyWebhook,
    HookFault,
    free_port,
    refuse,
    slow,
    smtp_server,
)
from sqlmodel import Session, col, select

from api.security import create_account
from flows.common import case_engine
from flows.outbox import OutboxSummary, deliver_chunk, outbox_flow
from models.applications import Channel
from models.settings import Settings, get_settings
from models.tables import Incident, Notice, NoticeDelivery
from notifications.channels import message_id
from notifications.delivery import CLAIM_SECONDS, due_notices
from notifications.incident_retry import retry_now
from states.engine import CaseEngine

TIMEOUT = 1.0  # RELIEF_CHANNEL_TIMEOUT_SECONDS in these tests
ATTEMPTS = 3  # RELIEF_NOTICE_MAX_ATTEMPTS in these tests
MAIL = "owner@example.com"


@dataclass
class Wired:
    """Where this test's receivers are: the SMTP port (each test starts its server) and the
    webhook (running; a test sets its faults)."""

    smtp_port: int
    hook: FaultyWebhook


def wire(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> Iterator[Wired]:
    wired = Wired(smtp_port=free_port(), hook=FaultyWebhook())
    env = env | {
        "RELIEF_SMTP_HOST": "127.0.0.1",
        "RELIEF_SMTP_PORT": str(wired.smtp_port),
        "RELIEF_SMS_WEBHOOK_URL": wired.hook.url,
        "RELIEF_CHANNEL_TIMEOUT_SECONDS": str(TIMEOUT),
        "RELIEF_NOTICE_MAX_ATTEMPTS": str(ATTEMPTS),
        "RELIEF_NOTICE_RETRY_SECONDS": "0",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield wired
    wired.hook.stop()
    get_settings.cache_clear()


@pytest.fixture
def wired(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Wired]:
    """SQLite, the receivers' addresses in the environment, no Prefect."""
    yield from wire(
        monkeypatch, {"RELIEF_DATABASE_URL": sqlite_url, "RELIEF_NOW": FIXED_NOW.isoformat()}
    )


@pytest.fixture
def wired_db(db_url: str, prefect_harness: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Wired]:
    """The same on SQLite and on PostgreSQL, with a Prefect server: these tests run the outbox
    flow itself (its lock, its chunks, its task), as `relief serve` schedules it."""
    yield from wire(
        monkeypatch, {"RELIEF_DATABASE_URL": db_url, "RELIEF_NOW": FIXED_NOW.isoformat()}
    )


def outbox_pass() -> OutboxSummary:
    """One outbox run: the flow's own task (`deliver_chunk`, through `.fn`) over every notice
    due. The flow adds the lock and the chunking (tests/e2e/test_notices.py runs it against
    SMTP down then up); without it this file needs no Prefect server (~15 s to start)."""
    engine = case_engine()
    ids = due_notices(engine.db, engine.clock.now(), engine.settings)
    return deliver_chunk.fn(ids, None).model_copy(update={"due": len(ids)})


def file_one(engine: CaseEngine, **contact: Any) -> Notice:
    """A credit case filed with `contact`: its acceptance notice, the one notice owed."""
    app = S.application("CRED-01")
    app["applicant"].update(contact)
    [case] = submit(engine, app)
    with Session(engine.db) as s:
        return s.exec(select(Notice).where(col(Notice.case_id) == case.case_id)).one()


def now_of(engine: CaseEngine, notice_id: int | None) -> Notice:
    with Session(engine.db) as s:
        row = s.get(Notice, notice_id)
        assert row is not None
        return row


def ledger(engine: CaseEngine, notice_id: int | None, *statuses: str, channel: str) -> list[str]:
    """The notice's attempts (notice_delivery rows) are `statuses`, numbered 1, 2, … on
    `channel`; returns their receipts."""
    with Session(engine.db) as s:
        rows = s.exec(
            select(NoticeDelivery)
            .where(col(NoticeDelivery.notice_id) == notice_id)
            .order_by(col(NoticeDelivery.attempt_no))
        ).all()
    assert [(d.attempt_no, d.channel, d.status) for d in rows] == [
        (n, channel, status) for n, status in enumerate(statuses, 1)
    ]
    return [d.receipt for d in rows]


def incidents(engine: CaseEngine) -> list[Incident]:
    with Session(engine.db) as s:
        return list(s.exec(select(Incident).order_by(col(Incident.id))).all())


def nothing_lost(engine: CaseEngine) -> None:
    """Every notice is delivered (one delivered attempt on each channel) or failed with an
    open incident naming it; no attempt is left `sending`; every text is readable."""
    with Session(engine.db) as s:
        notices = s.exec(select(Notice)).all()
        ledger = s.exec(select(NoticeDelivery)).all()
        open_refs = {i.ref for i in s.exec(select(Incident)).all() if i.status == "open"}
    assert notices and all(d.status != "sending" for d in ledger)
    for n in notices:
        assert n.body_text, n.id
        done = Counter(d.channel for d in ledger if d.notice_id == n.id and d.status == "delivered")
        if n.status == "delivered":
            assert done and set(done.values()) == {1}, (n.id, done)
        else:
            assert n.status == "failed" and f"notice:{n.idempotency_key}" in open_refs, n.status


# ---------------------------------------------------------------- SMTP
def test_a_server_slower_than_the_timeout_fails_then_delivers(wired: Wired) -> None:
    """It keeps the message but answers DATA after the timeout: the attempt is cut at the
    timeout (transient), the next one delivers; the receiver holds two copies, one
    Message-ID."""
    engine = case_engine()
    notice = file_one(engine, email=MAIL)
    sink = FaultySink(slow(TIMEOUT + 2))
    with smtp_server(sink, wired.smtp_port):
        started = time.monotonic()
        first = outbox_pass()
        waited = time.monotonic() - started
        second = outbox_pass()
        third = outbox_pass()
    assert (first.retry_later, second.delivered, third.due) == (1, 1, 0)
    assert TIMEOUT <= waited < TIMEOUT + 1.0  # cut at our timeout, not at the server's pace
    cut, receipt = ledger(engine, notice.id, "failed", "delivered", channel="email")
    assert cut == "SMTP: no receipt within 1 s" and receipt.startswith("250 2.0.0")
    assert sink.message_ids() == Counter({message_id(notice): 2})  # droppable by Message-ID
    after = now_of(engine, notice.id)
    assert (after.status, after.attempts, incidents(engine)) == ("delivered", 2, [])
    nothing_lost(engine)


def test_a_server_slow_within_the_timeout_delivers_once(wired: Wired) -> None:
    engine = case_engine()
    notice = file_one(engine, email=MAIL)
    sink = FaultySink(slow(TIMEOUT * 0.3))
    with smtp_server(sink, wired.smtp_port):
        first = outbox_pass()
        again = outbox_pass()
    assert (first.delivered, again.due) == (1, 0)
    [receipt] = ledger(engine, notice.id, "delivered", channel="email")
    assert receipt.startswith("250") and sink.message_ids() == Counter({message_id(notice): 1})
    assert now_of(engine, notice.id).status == "delivered" and incidents(engine) == []
    nothing_lost(engine)


def test_a_server_answering_a_byte_at_a_time_is_cut_at_the_timeout(wired: Wired) -> None:
    """Each byte comes well within the timeout, so a timeout per read never fires; the whole
    conversation would take ~15 s. It is cut at the timeout, the notice's claim is safe, and
    the next attempt (the server answering normally again) delivers."""
    engine = case_engine()
    notice = file_one(engine, email=MAIL)
    sink = FaultySink(trickle=0.05)
    with smtp_server(sink, wired.smtp_port):
        started = time.monotonic()
        first = outbox_pass()
        waited = time.monotonic() - started
        sink.trickle = 0
        second = outbox_pass()
    assert (first.retry_later, second.delivered) == (1, 1)
    assert waited < TIMEOUT + 1.0
    cut, _ = ledger(engine, notice.id, "failed", "delivered", channel="email")
    assert cut == "SMTP: no receipt within 1 s"
    assert sink.message_ids() == Counter({message_id(notice): 1})
    nothing_lost(engine)


def test_a_connection_dropped_after_data_is_sent_again_with_the_same_message_id(
    wired_db: Wired,
) -> None:
    """The server keeps the message and hangs up instead of answering DATA: transient, sent
    again; the receiver holds two copies with one Message-ID, our ledger one delivery."""
    engine = case_engine()
    notice = file_one(engine, email=MAIL)
    sink = FaultySink(DROP_AFTER_DATA)
    with smtp_server(sink, wired_db.smtp_port):
        first = outbox_flow()
        second = outbox_flow()
        third = outbox_flow()
    assert (first.retry_later, second.delivered, third.due) == (1, 1, 0)
    dropped, receipt = ledger(engine, notice.id, "failed", "delivered", channel="email")
    assert dropped == "SMTP: Connection unexpectedly closed" and receipt.startswith("250")
    assert sink.message_ids() == Counter({message_id(notice): 2})
    assert [m.rcpt_tos for m in sink.messages] == [[MAIL], [MAIL]]
    after = now_of(engine, notice.id)
    assert (after.status, after.attempts, incidents(engine)) == ("delivered", 2, [])
    nothing_lost(engine)


@pytest.mark.parametrize("stage", ["RCPT", "DATA", "END"])
def test_a_4xx_then_250_delivers_one_copy(wired: Wired, stage: str) -> None:
    """451 at RCPT TO, at the DATA command or at the end of the message (greylisting, a full
    queue): transient; the next attempt is accepted, and the receiver has one copy."""
    engine = case_engine()
    notice = file_one(engine, email=MAIL)
    sink = FaultySink(refuse(stage, "451 4.3.0 Try again later"))
    with smtp_server(sink, wired.smtp_port):
        first = outbox_pass()
        second = outbox_pass()
    assert (first.retry_later, second.delivered) == (1, 1)
    refused, _ = ledger(engine, notice.id, "failed", "delivered", channel="email")
    assert "451" in refused and "Try again later" in refused
    assert sink.transactions == 2 and sink.message_ids() == Counter({message_id(notice): 1})
    assert now_of(engine, notice.id).status == "delivered" and incidents(engine) == []
    nothing_lost(engine)


@pytest.mark.parametrize(
    ("stage", "reply"),
    [
        ("RCPT", "550 5.1.1 No such mailbox"),
        ("DATA", "554 5.7.1 Service refused"),  # smtplib raises this one (SMTPDataError)
        ("END", "554 5.6.0 Message refused"),
    ],
)
def test_a_5xx_is_not_retried_and_becomes_an_incident(wired: Wired, stage: str, reply: str) -> None:
    engine = case_engine()
    notice = file_one(engine, email=MAIL)
    sink = FaultySink(then=refuse(stage, reply))
    with smtp_server(sink, wired.smtp_port):
        first = outbox_pass()
        again = outbox_pass()
    assert (first.failed, again.due) == (1, 0)
    [refused] = ledger(engine, notice.id, "failed", channel="email")
    assert reply[:3] in refused
    assert sink.transactions == 1 and sink.messages == []
    [incident] = incidents(engine)
    assert (incident.ref, incident.status) == (f"notice:{notice.idempotency_key}", "open")
    assert incident.kind == "notice_undeliverable" and reply[:3] in incident.message
    assert now_of(engine, notice.id).status == "failed"
    nothing_lost(engine)


def test_failures_that_never_end_become_an_incident_then_a_retry_delivers(
    wired_db: Wired,
) -> None:
    """Greylisted at every attempt: after RELIEF_NOTICE_MAX_ATTEMPTS the notice is an open
    incident, still readable, and no run tries it again; once the server takes mail, an
    operator's retry delivers it once and resolves the incident."""
    engine = case_engine()
    notice = file_one(engine, email=MAIL)
    sink = FaultySink(then=refuse("RCPT", "451 4.7.1 Greylisted, try again later"))
    with smtp_server(sink, wired_db.smtp_port):
        runs = [outbox_flow() for _ in range(ATTEMPTS)]
        after = outbox_flow()
        assert [r.retry_later for r in runs] == [1] * (ATTEMPTS - 1) + [0]
        assert (runs[-1].failed, after.due) == (1, 0)
        receipts = ledger(engine, notice.id, *["failed"] * ATTEMPTS, channel="email")
        assert all("451" in receipt for receipt in receipts)
        [incident] = incidents(engine)
        assert incident.status == "open" and f"（{ATTEMPTS}次）" in incident.message
        failed = now_of(engine, notice.id)
        assert failed.status == "failed" and failed.body_text
        assert sink.transactions == ATTEMPTS and sink.messages == []
        nothing_lost(engine)

        sink.then = OK  # the server takes mail again
        create_account(engine.db, username="ops", role="operator", now=FIXED_NOW)
        assert incident.id is not None
        done = retry_now(engine, incident.id, engine.actor("ops"))
    assert (done["outcome"], done["status"]) == ("delivered", "resolved")
    ledger(engine, notice.id, *["failed"] * ATTEMPTS, "delivered", channel="email")
    assert sink.message_ids() == Counter({message_id(notice): 1})
    assert now_of(engine, notice.id).status == "delivered"
    assert [i.status for i in incidents(engine)] == ["resolved"]
    nothing_lost(engine)


@pytest.mark.parametrize("smtputf8", [True, False])
def test_a_non_ascii_address_goes_by_smtputf8_or_becomes_an_incident(
    wired: Wired, smtputf8: bool
) -> None:
    """张三@例子.中国 passes the form's check; smtplib cannot put it in RCPT TO without SMTPUTF8
    (it raised UnicodeEncodeError, which escaped the delivery: the attempt stayed `sending`
    and the notice never became an incident)."""
    engine = case_engine()
    notice = file_one(engine, email="张三@例子.中国")
    sink = FaultySink()
    with smtp_server(sink, wired.smtp_port, smtputf8=smtputf8):
        first = outbox_pass()
    status = "delivered" if smtputf8 else "failed"
    [receipt] = ledger(engine, notice.id, status, channel="email")
    if smtputf8:
        assert first.delivered == 1 and receipt.startswith("250")
        assert [m.rcpt_tos for m in sink.messages] == [["张三@例子.中国"]]
        assert sink.message_ids() == Counter({message_id(notice): 1})
    else:
        assert first.failed == 1 and "SMTPUTF8" in receipt
        assert sink.transactions == 0 and [i.status for i in incidents(engine)] == ["open"]
    nothing_lost(engine)


# ---------------------------------------------------------------- webhook
@pytest.mark.parametrize(
    ("fault", "why"),
    [
        (HookFault(delay=TIMEOUT + 1), "webhook: no answer within 1 s"),
        (HookFault(drop=True), "webhook: RemoteProtocolError"),
        (HookFault(trickle=0.05), "webhook: no answer within 1 s"),
    ],
    ids=["answers-after-the-timeout", "hangs-up", "answers-a-byte-at-a-time"],
)
def test_a_webhook_answer_lost_after_processing_is_sent_again_with_the_same_key(
    wired: Wired, fault: HookFault, why: str
) -> None:
    """The gateway sends the SMS, then its answer never arrives in time: transient; the next
    attempt carries the same Idempotency-Key (header and body), and a gateway that drops
    repeats by key sends the SMS once."""
    engine = case_engine()
    notice = file_one(engine, phone="13800000000", notify=["sms"])
    wired.hook.faults[:] = [fault]
    started = time.monotonic()
    first = outbox_pass()
    waited = time.monotonic() - started
    second = outbox_pass()
    third = outbox_pass()
    assert (first.retry_later, second.delivered, third.due) == (1, 1, 0)
    assert waited < TIMEOUT + 1.0
    lost, receipt = ledger(engine, notice.id, "failed", "delivered", channel="sms")
    assert lost.startswith(why) and receipt.startswith("200") and '"repeat": true' in receipt
    key = notice.idempotency_key
    assert wired.hook.keys() == Counter({key: 2})
    assert all(body["idempotency_key"] == key for _, body in wired.hook.requests)
    assert wired.hook.sent == Counter({key: 1})  # processed once
    assert now_of(engine, notice.id).status == "delivered" and incidents(engine) == []
    nothing_lost(engine)


def test_a_webhook_503_then_200_sends_once(wired: Wired) -> None:
    engine = case_engine()
    notice = file_one(engine, phone="13800000000", notify=["sms"])
    wired.hook.faults[:] = [HookFault(status=503)]
    first = outbox_pass()
    second = outbox_pass()
    assert (first.retry_later, second.delivered) == (1, 1)
    refused, receipt = ledger(engine, notice.id, "failed", "delivered", channel="sms")
    assert refused == "webhook answered 503" and receipt.startswith("200")
    assert '"repeat": false' in receipt
    key = notice.idempotency_key
    assert wired.hook.keys() == Counter({key: 2}) and wired.hook.sent == Counter({key: 1})
    assert now_of(engine, notice.id).status == "delivered" and incidents(engine) == []
    nothing_lost(engine)


def test_a_webhook_url_httpx_cannot_parse_becomes_an_incident(
    wired: Wired, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A template left in RELIEF_SMS_WEBHOOK_URL: httpx raises InvalidURL, not an HTTPError.
    It escaped the delivery (attempt left `sending`, no incident, the notice taken again
    after every claim); now it is a failed attempt and an incident at once."""
    monkeypatch.setenv("RELIEF_SMS_WEBHOOK_URL", "http://sms-gateway:port/hook")
    get_settings.cache_clear()
    engine = case_engine()
    notice = file_one(engine, phone="13800000000", notify=["sms"])
    assert outbox_pass().failed == 1
    [receipt] = ledger(engine, notice.id, "failed", channel="sms")
    assert receipt.startswith("InvalidURL")
    assert [i.status for i in incidents(engine)] == ["open"]
    nothing_lost(engine)


# ---------------------------------------------------------------- a channel that is down
TRIP_AFTER = 3  # RELIEF_CHANNEL_TRIP_AFTER's default


def file_as(engine: CaseEngine, n: int, **contact: Any) -> Notice:
    """`file_one` for applicant number `n` (each its own enterprise)."""
    return file_one(engine, uscc=staff.uscc_for(200 + n), **contact)


def attempts_of(engine: CaseEngine, notice_id: int | None) -> list[tuple[int, str, str]]:
    with Session(engine.db) as s:
        rows = s.exec(
            select(NoticeDelivery)
            .where(col(NoticeDelivery.notice_id) == notice_id)
            .order_by(col(NoticeDelivery.attempt_no), col(NoticeDelivery.channel))
        ).all()
    return [(d.attempt_no, d.channel, d.status) for d in rows]


def test_a_hanging_server_costs_a_run_three_timeouts_and_the_rest_wait_uncounted(
    wired: Wired,
) -> None:
    """A server that takes every message and never answers in time: the run gives up on
    e-mail after three timeouts in a row instead of spending one on each of eight notices;
    the five left are not tried and count no attempt, and the next run, the server well
    again, delivers all eight."""
    engine = case_engine()
    notices = [file_as(engine, n, email=MAIL) for n in range(8)]
    with smtp_server(FaultySink(then=slow(TIMEOUT + 2)), wired.smtp_port):
        started = time.monotonic()
        first = outbox_pass()
        waited = time.monotonic() - started
    assert (first.due, first.retry_later, first.held, first.delivered) == (8, 3, 5, 0)
    assert TRIP_AFTER * TIMEOUT <= waited < TRIP_AFTER * TIMEOUT + 2.0  # not 8 timeouts
    assert [now_of(engine, n.id).attempts for n in notices] == [1] * 3 + [0] * 5
    assert all(attempts_of(engine, n.id) == [] for n in notices[3:])
    assert all(now_of(engine, n.id).status == "pending" for n in notices)
    with smtp_server(FaultySink(), wired.smtp_port) as sink:
        second = outbox_pass()
    assert (second.due, second.delivered, second.held) == (8, 8, 0)
    for n in notices[:3]:
        ledger(engine, n.id, "failed", "delivered", channel="email")
    for n in notices[3:]:
        ledger(engine, n.id, "delivered", channel="email")
    assert set(sink.message_ids().values()) == {1} and len(sink.message_ids()) == 8
    assert incidents(engine) == []
    nothing_lost(engine)


def test_while_mail_is_held_the_same_notices_sms_goes_out(wired: Wired) -> None:
    """No SMTP server at all (connection refused, transient): after three refusals the run
    stops trying e-mail, but a notice owed on e-mail and SMS still goes by SMS now; its
    e-mail follows in the next run, and the SMS is not sent again."""
    engine = case_engine()
    mail_only = [file_as(engine, n, email=MAIL) for n in range(TRIP_AFTER)]
    both = file_as(engine, 9, email=MAIL, phone="13800000000", notify=["email", "sms"])
    first = outbox_pass()  # nothing listens on the SMTP port
    assert (first.retry_later, first.held, first.delivered) == (TRIP_AFTER + 1, 0, 0)
    assert attempts_of(engine, both.id) == [(1, "sms", "delivered")]  # e-mail not tried
    assert (now_of(engine, both.id).status, now_of(engine, both.id).attempts) == ("pending", 1)
    with smtp_server(FaultySink(), wired.smtp_port):
        second = outbox_pass()
    assert second.delivered == TRIP_AFTER + 1
    assert attempts_of(engine, both.id) == [(1, "sms", "delivered"), (2, "email", "delivered")]
    assert wired.hook.sent == Counter({both.idempotency_key: 1})
    assert all(len(attempts_of(engine, n.id)) == 2 for n in mail_only)
    assert incidents(engine) == []
    nothing_lost(engine)


def test_refusals_of_one_address_do_not_stop_the_channel(wired: Wired) -> None:
    """A 550 is about one address, not the server: every notice is still tried (each
    refused for good, an incident each), and a success between failures starts the count
    again."""
    engine = case_engine()
    notices = [file_as(engine, n, email=MAIL) for n in range(TRIP_AFTER + 2)]
    faults = [refuse("RCPT", "550 5.1.1 no such user")] * (TRIP_AFTER + 2)
    with smtp_server(FaultySink(*faults), wired.smtp_port):
        refused = outbox_pass()
    assert (refused.failed, refused.held) == (TRIP_AFTER + 2, 0)
    assert len(incidents(engine)) == TRIP_AFTER + 2
    later = [file_as(engine, 20 + n, email=MAIL) for n in range(2 * TRIP_AFTER)]
    flaky = [slow(TIMEOUT + 2)] * (TRIP_AFTER - 1) + [OK] + [slow(TIMEOUT + 2)] * TRIP_AFTER
    with smtp_server(FaultySink(*flaky), wired.smtp_port):
        mixed = outbox_pass()
    assert (mixed.retry_later, mixed.delivered, mixed.held) == (2 * TRIP_AFTER - 1, 1, 0)
    assert all(now_of(engine, n.id).attempts == 1 for n in later)  # every one was tried
    assert all(now_of(engine, n.id).status == "failed" for n in notices)


# ---------------------------------------------------------------- the claim
def test_the_claim_outlasts_a_send_on_every_channel() -> None:
    """A delivery holds its notice for CLAIM_SECONDS; it sends on at most one target per
    channel, each cut at the longest timeout the setting allows."""
    [bound] = [m.le for m in Settings.model_fields["channel_timeout_seconds"].metadata if
               getattr(m, "le", None) is not None]  # fmt: skip
    assert len(get_args(Channel)) * bound < CLAIM_SECONDS
    with pytest.raises(ValueError, match="channel_timeout_seconds"):
        Settings(channel_timeout_seconds=bound + 1)
