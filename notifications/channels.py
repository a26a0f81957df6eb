"""送达渠道 — how a notice reaches a person: e-mail, an SMS gateway's JSON webhook, IM bots.

E-mail and the webhook are written here on smtplib and httpx rather than through apprise,
because a delivery must keep the receiving server's receipt (the SMTP reply to DATA, the HTTP
response) and carry the notice's idempotency key (as Message-ID / Idempotency-Key) so that a
receiver can drop a duplicate; apprise reports only success or failure. WeCom, DingTalk and
Feishu bots go through apprise, with the bot URL the applicant gave (wecombot://, dingtalk://,
feishu://).
"""

from __future__ import annotations

import email.policy
import hashlib
import smtplib
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate

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


def send_email(notice: Notice, to: str, settings: Settings) -> str:
    """Send over SMTP; returns the server's reply to DATA as the receipt."""
    if not settings.smtp_host:
        raise DeliveryError("no SMTP server configured (RELIEF_SMTP_HOST)", transient=False)
    msg = EmailMessage()
    msg["Subject"] = f"{notice.title} {notice.doc_number or ''}".strip()
    msg["From"] = settings.mail_from
    msg["To"] = to
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = message_id(notice)
    msg.set_content(notice.body_text, cte="base64")  # long Chinese lines: never raw 8bit
    if notice.body_html:
        msg.add_alternative(notice.body_html, subtype="html", cte="base64")
    try:
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=15) as smtp:
            smtp.ehlo_or_helo_if_needed()
            if settings.smtp_starttls:
                smtp.starttls()
                smtp.ehlo()
            if settings.smtp_user:
                smtp.login(settings.smtp_user, settings.smtp_password or "")
            code, reply = smtp.mail(settings.mail_from)
            if code != 250:
                raise DeliveryError(
                    f"MAIL FROM refused: {code} {reply!r}", transient=code >= 400 and code < 500
                )
            code, reply = smtp.rcpt(to)
            if code not in (250, 251):
                raise DeliveryError(f"RCPT TO refused: {code} {reply!r}", transient=code < 500)
            code, reply = smtp.data(msg.as_bytes(policy=email.policy.SMTP))
            if code != 250:
                raise DeliveryError(f"DATA refused: {code} {reply!r}", transient=code < 500)
            return f"{code} {reply.decode(errors='replace')}"
    except (TimeoutError, OSError, smtplib.SMTPException) as exc:
        if isinstance(exc, DeliveryError):
            raise
        raise DeliveryError(f"SMTP: {exc}") from None


def send_sms(notice: Notice, phone: str, settings: Settings) -> str:
    """POST the notice to the SMS gateway's JSON webhook; returns status and body."""
    if not settings.sms_webhook_url:
        raise DeliveryError("no SMS gateway configured (RELIEF_SMS_WEBHOOK_URL)", transient=False)
    body = {
        "to": phone,
        "title": notice.title,
        "doc_number": notice.doc_number,
        "text": notice.body_text,
        "idempotency_key": notice.idempotency_key,
    }
    try:
        r = httpx.post(
            settings.sms_webhook_url,
            json=body,
            headers={"Idempotency-Key": notice.idempotency_key},
            timeout=15,
        )
    except httpx.HTTPError as exc:
        raise DeliveryError(f"webhook: {exc}") from None
    if r.status_code >= 300:
        raise DeliveryError(f"webhook answered {r.status_code}", transient=r.status_code >= 500)
    return f"{r.status_code} {r.text[:200]}"


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
