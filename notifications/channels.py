"""送达渠道 — how a notice reaches a person: e-mail, an SMS gateway's JSON webhook, IM bots.

E-mail and the webhook are written here on smtplib and httpx rather than through apprise,
because a delivery must keep the receiving server's receipt (the SMTP reply to DATA, the HTTP
response) and carry the notice's idempotency key (as Message-ID / Idempotency-Key) so that a
receiver can drop a duplicate; apprise reports only success or failure. WeCom, DingTalk and
Feishu bots go through apprise, with the bot URL the applicant gave (wecombot://, dingtalk://,
feishu://).
"""

from __future__ import annotations

import asyncio
import email.policy
import hashlib
import smtplib
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

import httpx

from models.settings import Settings
from models.tables import Applicant, Notice


class DeliveryError(Exception):
    """Not delivered; `transient` says whether a later attempt may succeed."""

    def __init__(self, message: str, *, transient: bool = True) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass(frozen=True)
class Target:
    channel: str  # email | sms | wecom | dingtalk | feishu
    address: str


def targets_for(notice: Notice, applicant: Applicant | None, settings: Settings) -> list[Target]:
    """Where a notice goes: the applicant's chosen channels, or the bureau section's address."""
    if notice.audience == "bureau":
        key = f"{notice.payload.get('bureau')}.{notice.payload.get('section')}"
        if notice.kind == "task_escalation":
            key += "#head"
        address = settings.bureau_emails.get(key) or settings.bureau_emails.get(key.split("#")[0])
        return [Target("email", address)] if address else []
    if applicant is None:
        return []
    out: list[Target] = []
    for channel in applicant.notify:
        if channel == "email" and applicant.email:
            out.append(Target("email", applicant.email))
        elif channel == "sms" and applicant.phone:
            out.append(Target("sms", applicant.phone))
        elif channel in ("wecom", "dingtalk", "feishu") and applicant.im_url:
            out.append(Target(channel, applicant.im_url))
    return out


def configured(channel: str, settings: Settings) -> bool:
    """Whether this installation can send on a channel at all. A notice owed on a channel that
    is not configured waits for it (`awaiting_channel`) instead of failing: an unset
    RELIEF_SMTP_HOST is a missing setting, not an undeliverable notice."""
    if channel == "email":
        return bool(settings.smtp_host)
    if channel == "sms":
        return bool(settings.sms_webhook_url)
    return True  # IM bots: the applicant's bot URL is the whole configuration


def any_configured(settings: Settings) -> bool:
    """Whether a notice waiting for a channel may now find one (bots never wait)."""
    return configured("email", settings) or configured("sms", settings)


def message_id(notice: Notice) -> str:
    digest = hashlib.sha256(notice.idempotency_key.encode()).hexdigest()[:32]
    return f"<{digest}@relief>"


def permanent(code: int) -> bool:
    """RFC 5321 §4.2.1: a 5yz reply refuses for good; any other refusal (4yz, or a reply that
    cannot be read) may pass on a later attempt."""
    return 500 <= code < 600


def send_email(notice: Notice, to: str, settings: Settings) -> str:
    """Send over SMTP within RELIEF_CHANNEL_TIMEOUT_SECONDS; returns the reply to DATA.

    Once the server has answered 250 to DATA the notice is delivered, whatever QUIT does after.
    A connection lost before that answer is transient even though the server may have kept the
    message: the next attempt sends it again with the same Message-ID, by which the receiver
    drops the repeat."""
    if not settings.smtp_host:
        raise DeliveryError("no SMTP server configured (RELIEF_SMTP_HOST)", transient=False)
    wide = not (to.isascii() and settings.mail_from.isascii())  # needs SMTPUTF8 (RFC 6531)
    msg = EmailMessage()
    msg["Subject"] = f"{notice.title} {notice.doc_number or ''}".strip()
    msg["From"] = settings.mail_from
    msg["To"] = to
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = message_id(notice)
    msg.set_content(notice.body_text, cte="base64")  # long Chinese lines: never raw 8bit
    if notice.body_html:
        msg.add_alternative(notice.body_html, subtype="html", cte="base64")
    seconds = settings.channel_timeout_seconds
    smtp = smtplib.SMTP(timeout=seconds)
    with _cut_after(seconds, smtp) as expired:
        try:
            smtp.connect(settings.smtp_host, settings.smtp_port)
            smtp.ehlo_or_helo_if_needed()
            if settings.smtp_starttls:
                smtp.starttls()
                smtp.ehlo()
            if settings.smtp_user:
                smtp.login(settings.smtp_user, settings.smtp_password or "")
            if wide and not smtp.has_extn("smtputf8"):
                raise DeliveryError(
                    f"the SMTP server does not take non-ASCII addresses (SMTPUTF8): {to}",
                    transient=False,
                )
            code, reply = smtp.mail(settings.mail_from, ["SMTPUTF8"] if wide else [])
            if code != 250:
                raise DeliveryError(
                    f"MAIL FROM refused: {code} {reply!r}", transient=not permanent(code)
                )
            code, reply = smtp.rcpt(to)
            if code not in (250, 251):
                raise DeliveryError(
                    f"RCPT TO refused: {code} {reply!r}", transient=not permanent(code)
                )
            policy = email.policy.SMTPUTF8 if wide else email.policy.SMTP
            code, reply = smtp.data(msg.as_bytes(policy=policy))
            if code != 250:
                raise DeliveryError(
                    f"DATA refused: {code} {reply!r}", transient=not permanent(code)
                )
        except DeliveryError:
            smtp.close()
            raise
        except smtplib.SMTPResponseException as exc:  # a reply smtplib raises on (DATA, AUTH…)
            smtp.close()
            raise DeliveryError(
                f"SMTP: {exc.smtp_code} {exc.smtp_error!r}", transient=not permanent(exc.smtp_code)
            ) from None
        except (OSError, smtplib.SMTPException) as exc:  # refused, reset, timed out, cut
            smtp.close()
            # smtplib reports a read that timed out as SMTPServerDisconnected (its context)
            timed_out = TimeoutError in (type(exc), type(exc.__context__))
            if expired.is_set() or timed_out:
                raise DeliveryError(f"SMTP: no receipt within {seconds:g} s") from None
            raise DeliveryError(f"SMTP: {exc}") from None
        with suppress(OSError, smtplib.SMTPException):
            smtp.quit()  # delivered: a slow or rude QUIT changes nothing
        smtp.close()
    return f"{code} {reply.decode(errors='replace')}"


@contextmanager
def _cut_after(seconds: float, smtp: smtplib.SMTP) -> Iterator[threading.Event]:
    """Cut the SMTP connection `seconds` after it starts; yields the event set when it did.

    smtplib's timeout bounds each read, not the conversation: a server that answers every
    step just in time, or a byte at a time, would hold the delivery (and the notice's claim)
    for as long as it liked. Shutting the socket down wakes the blocked read."""
    done, expired, lock = threading.Event(), threading.Event(), threading.Lock()

    def watch() -> None:
        if done.wait(seconds):
            return
        expired.set()
        while not done.is_set():  # again while connecting: the socket may not exist yet
            with lock:
                sock = None if done.is_set() else smtp.sock
                if sock is not None:
                    with suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
            done.wait(0.05)

    threading.Thread(target=watch, name="smtp-deadline", daemon=True).start()
    try:
        yield expired
    finally:
        with lock:
            done.set()


def send_sms(notice: Notice, phone: str, settings: Settings) -> str:
    """POST the notice to the SMS gateway's JSON webhook; returns status and body.

    The request carries the notice's key twice (Idempotency-Key header, `idempotency_key`
    field): a gateway that processed a request whose answer we never saw (a timeout, a cut
    connection) is sent it again and drops it by that key."""
    if not settings.sms_webhook_url:
        raise DeliveryError("no SMS gateway configured (RELIEF_SMS_WEBHOOK_URL)", transient=False)
    body = {
        "to": phone,
        "title": notice.title,
        "doc_number": notice.doc_number,
        "text": notice.body_text,
        "idempotency_key": notice.idempotency_key,
    }
    headers = {"Idempotency-Key": notice.idempotency_key}
    seconds = settings.channel_timeout_seconds
    try:
        r = _post_within(seconds, settings.sms_webhook_url, body, headers)
    except (TimeoutError, httpx.TimeoutException):
        raise DeliveryError(f"webhook: no answer within {seconds:g} s") from None
    except httpx.UnsupportedProtocol as exc:  # the setting lacks http(s)://: no retry mends it
        raise DeliveryError(f"webhook: {exc} (RELIEF_SMS_WEBHOOK_URL)", transient=False) from None
    except httpx.HTTPError as exc:
        raise DeliveryError(f"webhook: {type(exc).__name__}: {exc}") from None
    if r.status_code >= 300:
        raise DeliveryError(f"webhook answered {r.status_code}", transient=r.status_code >= 500)
    return f"{r.status_code} {r.text[:200]}"


def _post_within(
    seconds: float, url: str, body: dict[str, Any], headers: dict[str, str]
) -> httpx.Response:
    """POST, giving up `seconds` after the start. httpx's timeouts bound each read and write,
    not the request, so the whole request is cancelled instead (asyncio.wait_for), on an event
    loop of its own in a thread of its own, whoever calls (a flow's task, an API handler)."""

    async def post() -> httpx.Response:
        async with httpx.AsyncClient(timeout=seconds) as client:
            return await client.post(url, json=body, headers=headers)

    async def bounded() -> httpx.Response:
        return await asyncio.wait_for(post(), seconds)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="webhook") as pool:
        return pool.submit(asyncio.run, bounded()).result()


def send_bot(notice: Notice, url: str) -> str:
    """WeCom / DingTalk / Feishu group bots through apprise."""
    import apprise

    sender = apprise.Apprise()
    if not sender.add(url):
        raise DeliveryError(f"not a bot URL apprise knows: {url}", transient=False)
    if not sender.notify(title=notice.title, body=notice.body_text):
        raise DeliveryError("the bot did not accept the message")
    return "accepted (apprise)"


def send(target: Target, notice: Notice, settings: Settings) -> str:
    if target.channel == "email":
        return send_email(notice, target.address, settings)
    if target.channel == "sms":
        return send_sms(notice, target.address, settings)
    return send_bot(notice, target.address)
