"""申请人注册 — an enterprise registers with its USCC and an e-mail or phone, confirmed by a
one-time code sent through the real notice channels; a forgotten password is reset the same way.

The account is the enterprise's (its login name is the USCC); until the code is confirmed it is
inactive and cannot sign in, and a pending registration that is never confirmed is replaced by
the next one for the same USCC (so no one can hold a USCC by registering it first and walking
away). Codes are six digits, stored hashed, valid RELIEF_CODE_MINUTES, five tries each; sends
and wrong codes are limited in api/throttle.py. Knowing a USCC and a mailbox is all this
proves: where 统一身份认证 (the city's identity federation) is available it replaces this
module (docs/security.md, "Applicant accounts").
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, update
from sqlmodel import Session, col, select

from api.security import new_token, password_hash, token_hash
from base.identifiers import validate_uscc
from models.db import insert_if_absent
from models.settings import Settings
from models.tables import Account, Applicant, ApplicantEvent, Notice, OneTimeCode
from notifications.channels import DeliveryError, Target, configured, send

CODE_TRIES = 5
PASSWORD_MIN = 8


class RegistrationRefused(Exception):
    """A registration step refused: `field` names the form field, `message_zh` says why."""

    def __init__(self, field: str, message_zh: str) -> None:
        super().__init__(message_zh)
        self.field = field
        self.message_zh = message_zh


@dataclass(frozen=True)
class Registration:
    uscc: str
    name: str
    email: str | None
    phone: str | None
    password: str


def check_form(
    uscc: str, name: str, email: str, phone: str, password: str, again: str
) -> Registration:
    """The form's fields, each checked with its own Chinese message."""
    uscc = uscc.strip().upper()
    problem = validate_uscc(uscc)
    if problem:
        raise RegistrationRefused("uscc", problem.zh)
    name = name.strip()
    if not name:
        raise RegistrationRefused("name", "请填写单位名称")
    email, phone = email.strip() or None, phone.replace(" ", "").strip() or None
    if not email and not phone:
        raise RegistrationRefused("email", "请填写邮箱或手机号，用于接收验证码和通知书")
    if email and ("@" not in email or "." not in email.rsplit("@", 1)[-1] or " " in email):
        raise RegistrationRefused("email", "邮箱地址格式不正确")
    if phone and not (phone.lstrip("+").isdigit() and 7 <= len(phone.lstrip("+")) <= 15):
        raise RegistrationRefused("phone", "手机号应为7至15位数字")
    check_password(password, again)
    return Registration(uscc, name[:200], email, phone, password)


def _code_hash(code: str, secret: str) -> str:
    return hmac.new(secret.encode(), code.encode(), hashlib.sha256).hexdigest()


def start(db: Engine, reg: Registration, now: datetime) -> int:
    """A pending account for the USCC (a stale pending one is replaced); its id."""
    with Session(db) as s, s.begin():
        account = s.exec(select(Account).where(col(Account.username) == reg.uscc)).first()
        if account is not None and (account.active or not _pending(s, account)):
            raise RegistrationRefused(
                "uscc", "该统一社会信用代码已注册，请直接登录；忘记密码可通过“找回密码”重置"
            )
        if account is None:
            account = Account(
                username=reg.uscc,
                display_name=reg.name,
                role="applicant",
                uscc=reg.uscc,
                token_hash=token_hash(new_token()),
                active=False,
                created_at=now,
            )
        account.display_name = reg.name
        account.password_hash = password_hash(reg.password)
        s.add(account)
        s.flush()
        assert account.id is not None
        # the old pending codes of this USCC are void: only the newest registration counts
        s.execute(
            update(OneTimeCode)
            .where(col(OneTimeCode.account_id) == account.id, col(OneTimeCode.used_at).is_(None))
            .values(used_at=now)
        )
        return account.id


def _pending(s: Session, account: Account) -> bool:
    """An inactive account that registered and never confirmed (one an operator made or
    disabled has no registration code, or was confirmed once)."""
    codes = s.exec(select(OneTimeCode.purpose).where(col(OneTimeCode.account_id) == account.id))
    confirmed = s.exec(
        select(ApplicantEvent.id).where(
            col(ApplicantEvent.account_id) == account.id,
            col(ApplicantEvent.trigger) == "registered",
        )
    ).first()
    return "register" in set(codes.all()) and confirmed is None


def send_code(
    db: Engine,
    settings: Settings,
    account_id: int,
    *,
    key: str,
    purpose: str,
    email: str | None,
    phone: str | None,
    now: datetime,
) -> str:
    """Make a code and send it by e-mail (else SMS); returns where it went (masked)."""
    target = (
        Target("email", email)
        if email and configured("email", settings)
        else Target("sms", phone)
        if phone and configured("sms", settings)
        else None
    )
    if target is None:
        raise RegistrationRefused(
            "email",
            "本系统尚未配置可用的邮件或短信通道，无法发送验证码，请联系运营人员"
            if not (email or phone)
            or not (configured("email", settings) or configured("sms", settings))
            else "请填写可接收验证码的邮箱或手机号",
        )
    code = f"{secrets.randbelow(10**6):06d}"
    with Session(db) as s, s.begin():
        row = OneTimeCode(
            account_id=account_id,
            purpose=purpose,
            code_hash=_code_hash(code, key),
            channel=target.channel,
            address=target.address,
            expires_at=now + timedelta(minutes=settings.code_minutes),
            created_at=now,
            contact={"email": email, "phone": phone} if purpose == "register" else {},
        )
        s.add(row)
        s.flush()
        code_id = row.id
    title = {"register": "注册验证码", "reset": "重置密码验证码"}[purpose]
    text = (
        f"您的{title}是：{code}\n{settings.code_minutes}分钟内有效。"
        "如非本人操作，请忽略本邮件。\n\n东城区助企纾困政策办理系统"
    )
    message = Notice(  # not stored: a code is not a notice on a case
        case_id=0,
        kind=f"code_{purpose}",
        event_seq=0,
        idempotency_key=f"code:{code_id}",
        created_at=now,
        title=title,
        body_text=text,
    )
    try:
        send(target, message, settings)
    except DeliveryError:
        raise RegistrationRefused(
            (target.channel == "email" and "email") or "phone",
            "验证码发送失败，请稍后重试或更换邮箱、手机号",
        ) from None
    return mask(target.address)


def mask(address: str) -> str:
    if "@" in address:
        local, domain = address.split("@", 1)
        return f"{local[:1]}***@{domain}"
    return f"{address[:3]}****{address[-2:]}"


def check_code(
    db: Engine, key: str, account_id: int, purpose: str, code: str, now: datetime
) -> bool:
    """Whether `code` is this account's newest live code of `purpose`; a right one is used up,
    a wrong one counts against the code (five tries)."""
    with Session(db) as s, s.begin():
        row = s.exec(
            select(OneTimeCode)
            .where(
                col(OneTimeCode.account_id) == account_id,
                col(OneTimeCode.purpose) == purpose,
                col(OneTimeCode.used_at).is_(None),
            )
            .order_by(col(OneTimeCode.id).desc())
            .with_for_update()
        ).first()
        if row is None or row.expires_at <= now or row.attempts >= CODE_TRIES:
            return False
        if not hmac.compare_digest(row.code_hash, _code_hash(code.strip(), key)):
            row.attempts += 1
            s.add(row)
            return False
        row.used_at = now
        s.add(row)
        return True


def confirm(db: Engine, account_id: int, email: str | None, phone: str | None,
            now: datetime) -> Account:  # fmt: skip
    """The code was right: the account can sign in, and the enterprise is on file with where
    its notices go (an applicant already on file keeps its row; its contact is updated)."""
    with Session(db) as s, s.begin():
        account = s.get(Account, account_id)
        assert account is not None and account.uscc is not None
        account.active = True
        s.add(account)
        notify = ["email"] if email else ["sms"]
        insert_if_absent(
            s,
            Applicant,
            {"identity": account.uscc, "uscc": account.uscc, "name": account.display_name,
             "kind": "enterprise", "email": email, "phone": phone, "notify": notify,
             "created_at": now},
        )  # fmt: skip
        applicant = s.exec(select(Applicant).where(col(Applicant.identity) == account.uscc)).one()
        before = {"email": applicant.email, "phone": applicant.phone, "notify": applicant.notify}
        applicant.email = email or applicant.email
        applicant.phone = phone or applicant.phone
        if not applicant.notify:
            applicant.notify = notify
        s.add(applicant)
        assert applicant.id is not None
        s.add(
            ApplicantEvent(
                applicant_id=applicant.id,
                trigger="registered",
                actor=account.username,
                account_id=account.id,
                at=now,
                payload={"before": before,
                         "after": {"email": applicant.email, "phone": applicant.phone,
                                   "notify": applicant.notify}},
            )
        )  # fmt: skip
        s.flush()
        s.refresh(account)
        s.expunge(account)
        return account


def contact_of(db: Engine, uscc: str) -> tuple[int, str | None, str | None] | None:
    """(account id, e-mail, phone) of an active applicant account, for a password reset."""
    with Session(db) as s:
        account = s.exec(
            select(Account).where(
                col(Account.username) == uscc.strip().upper(),
                col(Account.role) == "applicant",
                col(Account.active).is_(True),
            )
        ).first()
        if account is None or account.id is None:
            return None
        applicant = s.exec(select(Applicant).where(col(Applicant.identity) == account.uscc)).first()
        if applicant is None or not (applicant.email or applicant.phone):
            return None
        return account.id, applicant.email, applicant.phone


def check_password(password: str, again: str) -> None:
    if len(password) < PASSWORD_MIN:
        raise RegistrationRefused("password", f"密码至少{PASSWORD_MIN}位")
    if password != again:
        raise RegistrationRefused("password_again", "两次输入的密码不一致")


def pending_contact(db: Engine, account_id: int) -> tuple[str | None, str | None]:
    """The e-mail and phone the confirmed registration gave (its newest code keeps them)."""
    with Session(db) as s:
        row = s.exec(
            select(OneTimeCode)
            .where(
                col(OneTimeCode.account_id) == account_id, col(OneTimeCode.purpose) == "register"
            )
            .order_by(col(OneTimeCode.id).desc())
        ).first()
    contact = row.contact if row else {}
    return contact.get("email"), contact.get("phone")


def set_password(db: Engine, account_id: int, password: str, again: str) -> None:
    check_password(password, again)
    with Session(db) as s, s.begin():
        account = s.get(Account, account_id)
        assert account is not None
        account.password_hash = password_hash(password)
        s.add(account)
