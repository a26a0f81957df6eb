"""送达 — deliver one outbox notice on every channel it is owed, recording each attempt.

A notice is delivered on a channel at most once as far as this database knows: each attempt is
committed as `sending` before the channel is called and updated with the receipt after. An
attempt left `sending` by a crash is sent again (the Message-ID / Idempotency-Key lets the
receiver drop the duplicate). Each send is cut at RELIEF_CHANNEL_TIMEOUT_SECONDS; a timeout,
a lost connection, an SMTP 4xx or a webhook 5xx is transient and retried with backoff; an SMTP
5xx, a webhook 4xx or an error of our own is permanent. A notice that keeps failing
(RELIEF_NOTICE_MAX_ATTEMPTS) or fails for good becomes an incident for an operator; a notice
with no channel stays readable on the status page.

A channel this installation has not configured (no RELIEF_SMTP_HOST, no RELIEF_SMS_WEBHOOK_URL)
is not a failure: the notice waits as `awaiting_channel`, counts no attempt and raises no
incident, and is delivered by the first outbox run after the setting appears. Only a configured
channel that fails is retried and, after RELIEF_NOTICE_MAX_ATTEMPTS, becomes an incident.

An outbox run stops trying a channel that failed RELIEF_CHANNEL_TRIP_AFTER times in a row
(`ChannelBreaker`): a server down or hanging would otherwise cost every notice the whole
timeout. Its notices wait for the next run with no attempt counted, while their other channels
go out.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine
from sqlmodel import Session, col, select, update

from models.incidents import attempt_budget, raise_incident, reopen_retried, settle_retried
from models.ledger import record_attempt
from models.settings import Settings
from models.statuses import NOTICE_MOVES, OPEN_NOTICES, AttemptStatus, NoticeStatus, check
from models.tables import Applicant, Case, Notice, NoticeDelivery
from notifications.channels import (
    DeliveryError,
    Target,
    any_configured,
    configured,
    send,
    targets_for,
)

log = logging.getLogger(__name__)
NO_CHANNEL_YET = "重试时所需的送达渠道（邮件或短信）尚未配置"
# How long a delivery holds a notice it is sending. It must outlast the delivery: one send on
# each channel a notice can be owed on (models/applications.py Channel: five), each cut at
# RELIEF_CHANNEL_TIMEOUT_SECONDS, which models/settings.py bounds at 50 s (5 × 50 < 300;
# tests/e2e/test_channel_faults.py checks the relation).
CLAIM_SECONDS = 300


@dataclass
class ChannelBreaker:
    """One outbox run's memory of each channel: after `trip_after` transient failures in a row
    (a server down, or hanging until the timeout), the run sends nothing more on it. A success
    closes it again; a permanent failure (one address refused) says nothing about the channel.
    """

    trip_after: int
    failures_in_a_row: Counter[str] = field(default_factory=Counter)

    def is_open(self, channel: str) -> bool:
        return self.failures_in_a_row[channel] >= self.trip_after

    def saw(self, channel: str, error: DeliveryError | None) -> None:
        if error is None:
            self.failures_in_a_row[channel] = 0
        elif error.transient:
            self.failures_in_a_row[channel] += 1


def _record(
    db: Engine, notice_id: int, channel: str, attempt: int, status: str, receipt: str, now: datetime
) -> None:
    record_attempt(
        db, NoticeDelivery, {"notice_id": notice_id, "channel": channel, "attempt_no": attempt},
        status=status, at=now, receipt=receipt,
    )  # fmt: skip


def deliver(
    db: Engine,
    notice_id: int,
    settings: Settings,
    now: datetime,
    breaker: ChannelBreaker | None = None,
) -> str:
    """Try a pending notice once on each channel not yet done; returns its new status, or
    "held" when every channel it is owed on is one the run's `breaker` stopped trying (nothing
    sent, no attempt counted: the next run takes it again)."""
    with Session(db) as s:
        notice = s.get(Notice, notice_id)
        if notice is None or notice.status not in OPEN_NOTICES:
            return "skipped"
        case = s.get(Case, notice.case_id)
        applicant = s.get(Applicant, case.applicant_id) if case else None
        done = {
            d.channel
            for d in s.exec(
                select(NoticeDelivery).where(
                    col(NoticeDelivery.notice_id) == notice_id,
                    col(NoticeDelivery.status) == AttemptStatus.DELIVERED,
                )
            ).all()
        }
    targets = targets_for(notice, applicant, settings)
    if not targets:
        return _finish(db, notice_id, NoticeStatus.NO_CHANNEL, now)
    todo = [t for t in targets if t.channel not in done]
    ready = [t for t in todo if configured(t.channel, settings)]
    waiting = len(ready) < len(todo)
    if not ready:
        status = NoticeStatus.AWAITING_CHANNEL if waiting else NoticeStatus.DELIVERED
        return _finish(db, notice_id, status, now)
    held = [t for t in ready if breaker is not None and breaker.is_open(t.channel)]
    ready = [t for t in ready if t not in held]
    if not ready:
        return "held"
    attempt = notice.attempts + 1
    if not _claim(db, notice_id, notice.attempts, attempt, now):
        return "skipped"  # another delivery (an operator's retry, a second run) has it
    failures: list[str] = []
    permanent = False
    for target in ready:
        _record(db, notice_id, target.channel, attempt, AttemptStatus.SENDING, "", now)
        try:
            receipt = send(target, notice, settings)
        except Exception as exc:
            error = exc if isinstance(exc, DeliveryError) else _unexpected(exc, notice_id, target)
            _record(db, notice_id, target.channel, attempt, AttemptStatus.FAILED, str(error), now)
            failures.append(f"{target.channel}: {error}")
            permanent = permanent or not error.transient
            if breaker is not None:
                breaker.saw(target.channel, error)
            continue
        _record(db, notice_id, target.channel, attempt, AttemptStatus.DELIVERED, receipt, now)
        if breaker is not None:
            breaker.saw(target.channel, None)
    with Session(db) as s, s.begin():
        row = s.get(Notice, notice_id, with_for_update=True)
        assert row is not None
        if row.attempts != attempt:
            # our claim ran out and a later delivery took the notice: its outcome stands
            # (our receipts stay in the ledger)
            return "skipped"
        before = row.status
        if not failures and held:  # the rest is owed on a channel this run stopped trying
            row.status, row.next_attempt_at = NoticeStatus.PENDING, None
        elif not failures and waiting:
            row.status, row.next_attempt_at = NoticeStatus.AWAITING_CHANNEL, None
            reopen_retried(s, f"notice:{row.idempotency_key}", NO_CHANNEL_YET)
        elif not failures:
            row.status, row.delivered_at, row.next_attempt_at = NoticeStatus.DELIVERED, now, None
            settle_retried(s, f"notice:{row.idempotency_key}", now, "重试后已送达")
        elif permanent or attempt >= attempt_budget(
            s, f"notice:{row.idempotency_key}", settings.notice_max_attempts
        ):
            row.status, row.next_attempt_at = NoticeStatus.FAILED, None
            raise_incident(
                s,
                ref=f"notice:{row.idempotency_key}",
                kind="notice_undeliverable",
                case_id=row.case_id,
                message=f"{row.title}{row.doc_number or ''}送达失败"
                f"（{attempt}次）：" + "；".join(failures),
                now=now,
            )
        else:
            wait = settings.notice_retry_seconds * 2 ** (attempt - 1)
            row.status, row.next_attempt_at = NoticeStatus.PENDING, now + timedelta(seconds=wait)
        check(NOTICE_MOVES, before, row.status)
        s.add(row)
        return row.status


def _unexpected(exc: Exception, notice_id: int, target: Target) -> DeliveryError:
    """A send that failed with something other than a channel's answer: our own fault or the
    data's, which a retry cannot mend. Left to escape, it would leave the attempt `sending`
    and the notice taken again after every claim, never becoming an incident."""
    log.exception("notice %s on %s: unexpected error", notice_id, target.channel)
    return DeliveryError(f"{type(exc).__name__}: {exc}", transient=False)


def _claim(db: Engine, notice_id: int, before: int, attempt: int, now: datetime) -> bool:
    """Take attempt number `attempt` of a notice for CLAIM_SECONDS, or learn that another
    delivery has it: two deliveries of one notice at once (an operator's retry while the outbox
    runs) must not both send. The claim is the attempt count and a lease on `next_attempt_at`;
    a delivery that crashes after its claim is tried again when the lease runs out (the
    receiver drops the repeat by Message-ID or Idempotency-Key)."""
    with Session(db) as s, s.begin():
        taken = s.exec(
            update(Notice)
            .where(
                col(Notice.id) == notice_id,
                col(Notice.attempts) == before,
                col(Notice.status).in_(OPEN_NOTICES),
                col(Notice.next_attempt_at).is_(None) | (col(Notice.next_attempt_at) <= now),
            )
            .values(attempts=attempt, next_attempt_at=now + timedelta(seconds=CLAIM_SECONDS))
        )
        return taken.rowcount == 1


def _finish(db: Engine, notice_id: int, status: str, now: datetime) -> str:
    with Session(db) as s, s.begin():
        row = s.get(Notice, notice_id)
        assert row is not None
        if row.status != status:
            check(NOTICE_MOVES, row.status, status)
            row.status = status
            ref = f"notice:{row.idempotency_key}"
            if status == NoticeStatus.DELIVERED:
                row.delivered_at = now
                settle_retried(s, ref, now, "重试后已送达")
            elif status == NoticeStatus.NO_CHANNEL:
                reopen_retried(s, ref, "重试时申请人已无可用的送达渠道，通知书可在查询页查看")
            elif status == NoticeStatus.AWAITING_CHANNEL:
                reopen_retried(s, ref, NO_CHANNEL_YET)
            s.add(row)
    return status


def due_notices(db: Engine, now: datetime, settings: Settings | None = None) -> list[int]:
    """Pending notices whose next attempt is due, oldest first; with `settings` that configure
    a channel, also the notices awaiting one (they may now be deliverable)."""
    statuses = [NoticeStatus.PENDING]
    if settings is not None and any_configured(settings):
        statuses.append(NoticeStatus.AWAITING_CHANNEL)
    with Session(db) as s:
        rows = s.exec(
            select(Notice.id, Notice.next_attempt_at)
            .where(col(Notice.status).in_(statuses))
            .order_by(col(Notice.id))
        ).all()
    return [i for i, at in rows if i is not None and (at is None or at <= now)]
