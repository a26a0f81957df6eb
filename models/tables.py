"""数据表 — the tables of DESIGN.md ("Data"), plus the cap ledger, the 7号 register and the
effect registers. Only states.engine writes case state, events, tasks, outbox and payouts.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlalchemy.orm import defer
from sqlmodel import Field, SQLModel

from models.types import AwareDateTime, MoneyType

ZERO = Decimal("0.00")


class Applicant(SQLModel, table=True):
    """申请人 — one enterprise or individual business."""

    __tablename__ = "applicant"

    id: int | None = Field(default=None, primary_key=True)
    identity: str = Field(max_length=40, unique=True, description="USCC, or REG:<注册号>")
    uscc: str | None = Field(default=None, max_length=18)
    registration_no: str | None = Field(default=None, max_length=15)
    name: str = Field(default="", max_length=200)
    kind: str = Field(max_length=30)
    size: str | None = Field(default=None, max_length=10)
    email: str | None = Field(default=None, max_length=200)
    phone: str | None = Field(default=None, max_length=40)
    notify: list[str] = Field(
        default_factory=list,
        sa_column=Column(JSON, nullable=False, server_default="[]"),
        description="channels the applicant chose: email, sms, wecom, dingtalk, feishu",
    )
    im_url: str | None = Field(default=None, max_length=500, description="bot/webhook URL")
    created_at: datetime = Field(sa_type=AwareDateTime)


class Case(SQLModel, table=True):
    """案件 — one application by one applicant for one benefit (one store is one case)."""

    __tablename__ = "relief_case"
    __table_args__ = (
        Index("ix_case_type_state", "case_type", "state"),
        Index("ix_case_applicant", "applicant_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    case_no: str | None = Field(default=None, max_length=30, unique=True)
    case_type: str = Field(max_length=40)
    state: str = Field(max_length=40, index=True)
    version: int = Field(default=1, description="bumped by every change; stale writes fail")
    applicant_id: int = Field(foreign_key="applicant.id")
    subject_key: str = Field(default="", max_length=200)
    facts: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    assessment: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    decision: str = Field(max_length=40, description="the rules' decision")
    edition_id: str = Field(max_length=60, description="the policy edition that judged the case")
    filed_on: date = Field(description="受理日期: the day relief received it (Asia/Shanghai)")
    received_at: datetime | None = Field(
        default=None,
        sa_type=AwareDateTime,
        description="收件时间: the server's clock, or a paper receipt an intake officer recorded",
    )
    amount_ceiling: Decimal = Field(default=ZERO, sa_type=MoneyType)
    amount_granted: Decimal | None = Field(default=None, sa_type=MoneyType)
    manual_review: bool = False
    query_code: str = Field(max_length=12, description="printed on the acceptance notice")
    submission_key: str | None = Field(default=None, max_length=120)
    created_at: datetime = Field(sa_type=AwareDateTime)
    updated_at: datetime = Field(sa_type=AwareDateTime)


#: Reads that list cases (a queue page, an applicant's cases) leave the facts and the assessment
#: unread: parsing those JSON documents for fifty rows was a fifth of a busy API process's time
#: (bench/load.py). Touching one on such a row raises rather than querying once per row.
CASE_LISTING = (
    defer(Case.facts, raiseload=True),  # type: ignore[arg-type]
    defer(Case.assessment, raiseload=True),  # type: ignore[arg-type]
)


class ReviewTask(SQLModel, table=True):
    """办理任务 — a user task for one bureau section: review, confirm or decide."""

    __tablename__ = "review_task"
    __table_args__ = (
        # a section's queue in its order: overdue first, then by due date, ties by id
        Index("ix_task_queue", "bureau_code", "section_code", "status", "due_on", "id"),
        Index("ix_task_case", "case_id"),
        Index("ix_task_decided", "decided_at"),  # the dashboard's tasks over time
    )

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="relief_case.id")
    kind: str = Field(max_length=20)
    bureau_code: str = Field(max_length=40)
    section_code: str = Field(default="", max_length=40)
    unit: str = Field(default="", max_length=120)
    status: str = Field(default="open", max_length=20)
    decision: str | None = Field(default=None, max_length=20)
    reason: str | None = None
    assignee: str | None = Field(default=None, max_length=120)
    due_on: date | None = None
    created_at: datetime = Field(sa_type=AwareDateTime)
    decided_at: datetime | None = Field(default=None, sa_type=AwareDateTime)
    decided_by: str | None = Field(default=None, max_length=120)
    paused_on: date | None = Field(
        default=None, description="the clock stopped this day (waiting on the applicant)"
    )
    reminded_on: date | None = None
    escalated_on: date | None = None


class CaseEvent(SQLModel, table=True):
    """审计事件 — append-only: who moved a case from where to where, when and why."""

    __tablename__ = "case_event"
    __table_args__ = (
        UniqueConstraint("case_id", "seq"),
        Index("ix_event_case", "case_id"),
        Index("ix_event_at", "at"),  # the report reads events by month
    )

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="relief_case.id")
    seq: int
    from_state: str | None = Field(default=None, max_length=40)
    to_state: str = Field(max_length=40)
    trigger: str = Field(max_length=40)
    actor: str = Field(max_length=120, description="the account's login name")
    account_id: int | None = Field(
        default=None, foreign_key="account.id", description="the account that acted"
    )
    at: datetime = Field(sa_type=AwareDateTime)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    request_key: str | None = Field(default=None, max_length=120, unique=True)


class Notice(SQLModel, table=True):
    """通知书 (outbox) — written with the state change that owes it; delivered later."""

    __tablename__ = "notice"
    __table_args__ = (Index("ix_notice_status", "status"), Index("ix_notice_case", "case_id"))

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="relief_case.id")
    kind: str = Field(max_length=40)
    audience: str = Field(default="applicant", max_length=20)
    event_seq: int
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    status: str = Field(
        default="pending",
        max_length=20,
        description="pending, delivered, no_channel, awaiting_channel, failed",
    )
    idempotency_key: str = Field(max_length=160, unique=True)
    attempts: int = 0
    created_at: datetime = Field(sa_type=AwareDateTime)
    doc_number: str | None = Field(default=None, max_length=60, description="东X〔2022〕12号")
    issuer: str = Field(default="", max_length=120)
    recipient: str = Field(default="", max_length=200, description="who it is addressed to")
    title: str = Field(default="", max_length=120)
    body_text: str = Field(default="", description="rendered once, never re-rendered")
    body_html: str = ""
    content_hash: str = Field(default="", max_length=64, description="sha256 of title + text")
    next_attempt_at: datetime | None = Field(default=None, sa_type=AwareDateTime)
    delivered_at: datetime | None = Field(default=None, sa_type=AwareDateTime)


class Payout(SQLModel, table=True):
    """拨付指令 — one per approved subsidy case; the key makes a retry harmless."""

    __tablename__ = "payout"
    __table_args__ = (Index("ix_payout_created", "created_at"),)  # the report's money ordered

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="relief_case.id", unique=True)
    amount: Decimal = Field(sa_type=MoneyType)
    payer_bureau: str = Field(max_length=40)
    idempotency_key: str = Field(max_length=120, unique=True)
    status: str = Field(default="ordered", max_length=20, description="ordered, sent, paid, failed")
    external_ref: str | None = Field(default=None, max_length=120)
    attempts: int = 0
    batch_ref: str | None = Field(default=None, max_length=60)
    created_at: datetime = Field(sa_type=AwareDateTime)
    updated_at: datetime = Field(sa_type=AwareDateTime)


class CapAccount(SQLModel, table=True):
    """封顶账户 — what a cross-case cap allows and what has been granted against it."""

    __tablename__ = "cap_account"

    key: str = Field(primary_key=True, max_length=200)
    cap_limit: Decimal = Field(sa_type=MoneyType)
    opening: Decimal = Field(
        default=ZERO,
        sa_type=MoneyType,
        description="granted before this system, as declared with the first case",
    )
    granted: Decimal = Field(default=ZERO, sa_type=MoneyType)
    updated_at: datetime = Field(sa_type=AwareDateTime)


class CapGrant(SQLModel, table=True):
    """One case's grant against a cap."""

    __tablename__ = "cap_grant"
    __table_args__ = (UniqueConstraint("cap_key", "case_id"),)

    id: int | None = Field(default=None, primary_key=True)
    cap_key: str = Field(foreign_key="cap_account.key", max_length=200)
    case_id: int = Field(foreign_key="relief_case.id")
    amount: Decimal = Field(sa_type=MoneyType)
    at: datetime = Field(sa_type=AwareDateTime)


class Prior7Benefit(SQLModel, table=True):
    """东政办发〔2022〕7号已享受登记 — imported from CSV; the no-double-benefit rule reads it."""

    __tablename__ = "prior7_benefit"
    __table_args__ = (
        UniqueConstraint("subject", "family", "object_id", "period_from", "period_to"),
    )

    id: int | None = Field(default=None, primary_key=True)
    subject: str = Field(max_length=40, index=True)
    family: str = Field(max_length=40)
    object_id: str = Field(default="", max_length=200)
    period_from: date
    period_to: date
    note: str = ""
    imported_at: datetime = Field(sa_type=AwareDateTime)


class RentWaiverRecord(SQLModel, table=True):
    """租金减免登记 — the reduction a state-owned landlord is to give."""

    __tablename__ = "rent_waiver_record"

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="relief_case.id", unique=True)
    tenant: str = Field(max_length=40)
    object_id: str = Field(default="", max_length=200)
    months: int
    amount: Decimal = Field(sa_type=MoneyType)
    at: datetime = Field(sa_type=AwareDateTime)


class LicenceExtensionRecord(SQLModel, table=True):
    """许可证有效期顺延登记."""

    __tablename__ = "licence_extension_record"

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="relief_case.id", unique=True)
    licensee: str = Field(max_length=40)
    licence_no: str = Field(default="", max_length=60)
    original_expiry: date
    new_expiry: date
    at: datetime = Field(sa_type=AwareDateTime)


class CreditExemptionRecord(SQLModel, table=True):
    """信用豁免登记 — the penalty is kept out of the credit record."""

    __tablename__ = "credit_exemption_record"

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="relief_case.id", unique=True)
    subject: str = Field(max_length=40)
    penalty_ref: str = Field(max_length=120)
    at: datetime = Field(sa_type=AwareDateTime)


class MeasureEffectRecord(SQLModel, table=True):
    """措施效果登记 — what an approved configured type does instead of paying (a deferral, a
    referral to the deciding body, a service), for the unit that carries it out."""

    __tablename__ = "measure_effect_record"

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="relief_case.id", unique=True)
    case_type: str = Field(max_length=40, index=True)
    subject: str = Field(max_length=40)
    effect: str = Field(max_length=60)
    referred_to: str = Field(default="", max_length=200)
    statement: str = Field(max_length=2000)
    at: datetime = Field(sa_type=AwareDateTime)


class PayoutAttempt(SQLModel, table=True):
    """拨付台账 — one row per attempt to pay, written before the treasury is called."""

    __tablename__ = "payout_attempt"
    __table_args__ = (UniqueConstraint("payout_id", "attempt_no"),)

    id: int | None = Field(default=None, primary_key=True)
    payout_id: int = Field(foreign_key="payout.id")
    attempt_no: int
    adapter: str = Field(max_length=20)
    status: str = Field(max_length=20, description="sending, sent, paid, failed, found")
    detail: str = ""
    at: datetime = Field(sa_type=AwareDateTime)


class PaymentBatch(SQLModel, table=True):
    """支付指令批次 — a payment-instruction file; recorded before it is written."""

    __tablename__ = "payment_batch"

    id: int | None = Field(default=None, primary_key=True)
    batch_ref: str = Field(max_length=60, unique=True)
    status: str = Field(default="writing", max_length=20, description="writing, written")
    path: str = Field(max_length=500)
    payout_ids: list[int] = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(sa_type=AwareDateTime)


class Incident(SQLModel, table=True):
    """异常 — something an operator must look at (a payment or a notice that failed)."""

    __tablename__ = "incident"

    id: int | None = Field(default=None, primary_key=True)
    ref: str = Field(max_length=160, unique=True, description="what failed, e.g. payout:<key>")
    kind: str = Field(max_length=40)
    case_id: int | None = Field(default=None, foreign_key="relief_case.id")
    message: str
    status: str = Field(
        default="open",
        max_length=20,
        description="open, retrying (an operator's retry) or resolved",
    )
    created_at: datetime = Field(sa_type=AwareDateTime)
    retries: int = Field(default=0, description="retried now by an operator, so many times")
    resolved_at: datetime | None = Field(default=None, sa_type=AwareDateTime)
    resolved_by: str | None = Field(default=None, max_length=120)
    note: str = Field(default="", description="the operator's note on resolving it")


class IntakeRecord(SQLModel, table=True):
    """收件记录 — every row of an imported batch, valid or not, so nothing is lost."""

    __tablename__ = "intake_record"
    __table_args__ = (UniqueConstraint("batch_id", "row_no"),)

    id: int | None = Field(default=None, primary_key=True)
    batch_id: str = Field(max_length=120)
    row_no: int
    status: str = Field(max_length=20, description="submitted or invalid")
    case_ids: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    errors: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    raw: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    at: datetime = Field(sa_type=AwareDateTime)


class DocSerial(SQLModel, table=True):
    """发文字号 — the last serial an issuer used in a year (locked while a notice is numbered)."""

    __tablename__ = "doc_serial"

    prefix: str = Field(primary_key=True, max_length=20)
    year: int = Field(primary_key=True)
    last: int = 0


class NoticeDelivery(SQLModel, table=True):
    """送达记录 — every attempt to deliver a notice on a channel, with the receipt."""

    __tablename__ = "notice_delivery"
    __table_args__ = (Index("ix_delivery_notice", "notice_id"),)

    id: int | None = Field(default=None, primary_key=True)
    notice_id: int = Field(foreign_key="notice.id")
    channel: str = Field(max_length=20)
    attempt_no: int
    status: str = Field(max_length=20, description="sending, delivered, failed")
    receipt: str = ""
    at: datetime = Field(sa_type=AwareDateTime)


class Account(SQLModel, table=True):
    """账户 — an operator, an intake officer or a reviewer bound to a bureau section, an applicant
    bound to a USCC, or the system account the scheduled flows act as.

    Secrets are stored hashed: the API token by sha256 (it is random), the page password by
    scrypt (people choose passwords).
    """

    __tablename__ = "account"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=80, unique=True)
    display_name: str = Field(default="", max_length=120)
    role: str = Field(
        max_length=20,
        description="applicant, intake_officer, reviewer, operator or system (states.actors.Role)",
    )
    bureau_code: str | None = Field(default=None, max_length=40)
    section_code: str | None = Field(default=None, max_length=40)
    uscc: str | None = Field(default=None, max_length=40, description="applicant identity")
    token_hash: str = Field(max_length=64, unique=True)
    password_hash: str | None = Field(default=None, max_length=200)
    active: bool = True
    section_head: bool = Field(
        default=False, description="科室负责人: may reassign the open tasks of its section"
    )
    created_at: datetime = Field(sa_type=AwareDateTime)


class WebSession(SQLModel, table=True):
    """登录会话 — a browser's session, kept in the database so any API process can serve it.

    A session exists before sign-in too (account_id empty), so that the login form has a
    CSRF token and a failed attempt a message; signing in replaces it with a new one.
    """

    __tablename__ = "web_session"
    __table_args__ = (Index("ix_web_session_expires", "expires_at"),)

    token_hash: str = Field(primary_key=True, max_length=64)
    account_id: int | None = Field(default=None, foreign_key="account.id")
    expires_at: datetime = Field(sa_type=AwareDateTime)
    created_at: datetime | None = Field(default=None, sa_type=AwareDateTime)
    flash: list[dict[str, str]] = Field(
        default_factory=list,
        sa_column=Column(JSON, nullable=False, server_default="[]"),
        description="messages for the next page this browser sees, then cleared",
    )


class AuthThrottle(SQLModel, table=True):
    """失败计数 — failed sign-ins, bad tokens and wrong query codes, per account, case or address.

    In the database, so that every API process counts the same failures and applies one limit.
    """

    __tablename__ = "auth_throttle"

    scope: str = Field(primary_key=True, max_length=30, description="login_account, …")
    key: str = Field(primary_key=True, max_length=200, description="account, case no or address")
    failures: int = 0
    first_failure_at: datetime = Field(sa_type=AwareDateTime)
    last_failure_at: datetime = Field(sa_type=AwareDateTime)
    locked_at: datetime | None = Field(default=None, sa_type=AwareDateTime)
    locked_until: datetime | None = Field(
        default=None, sa_type=AwareDateTime, description="empty while locked: until lifted"
    )
    lifted_by: str | None = Field(default=None, max_length=80)
    lifted_at: datetime | None = Field(default=None, sa_type=AwareDateTime)


class AppSecret(SQLModel, table=True):
    """签名密钥 — a secret every API process shares (CSRF tokens), made on first use."""

    __tablename__ = "app_secret"

    name: str = Field(primary_key=True, max_length=40)
    value: str = Field(max_length=200)
    created_at: datetime = Field(sa_type=AwareDateTime)


class RequestRecord(SQLModel, table=True):
    """请求记录 — a filing's request key (Idempotency-Key, a batch row), unique in the schema.

    Two filings racing with one key cannot both make cases: the second transaction fails on
    this key and is answered with the first one's cases.
    """

    __tablename__ = "request_record"

    key: str = Field(primary_key=True, max_length=160)
    case_ids: list[int] = Field(sa_column=Column(JSON, nullable=False))
    at: datetime = Field(sa_type=AwareDateTime)


class DocumentBlob(SQLModel, table=True):
    """存储的文件 — one stored file, by its sha256 (models/document_store.py holds the bytes)."""

    __tablename__ = "document_blob"

    sha256: str = Field(primary_key=True, max_length=64)
    size: int
    media_type: str = Field(max_length=40)
    stored_at: datetime = Field(sa_type=AwareDateTime)


class CaseDocument(SQLModel, table=True):
    """案件材料 — a document on a case, in the slot of the edition that asks for it.

    Written by the engine in the step that attaches it (filing, 补正, 补充), with that step's
    event; never updated or deleted. The same file in the same slot is kept once.
    """

    __tablename__ = "case_document"
    __table_args__ = (UniqueConstraint("case_id", "slot", "sha256"),)

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="relief_case.id", index=True)
    slot: str = Field(max_length=60)
    sha256: str = Field(foreign_key="document_blob.sha256", max_length=64)
    filename: str = Field(default="", max_length=200, description="as the applicant named it")
    media_type: str = Field(max_length=40)
    size: int
    event_seq: int = Field(description="the case event that attached it")
    uploaded_by: str = Field(max_length=120)
    at: datetime = Field(sa_type=AwareDateTime)


class ApplicantRequest(SQLModel, table=True):
    """补正 / 容缺 / 补充 — what a case asks of its applicant, and by when.

    Opened with the notice that asks (same step), answered by the applicant's reply, ended by
    the sweep when the deadline passes (states: open, answered, expired, cancelled).
    """

    __tablename__ = "applicant_request"

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="relief_case.id", index=True)
    kind: str = Field(max_length=30, description="correction, deferred_acceptance or more_info")
    items: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    slots: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    deadline: date
    status: str = Field(default="open", max_length=20, index=True)
    reminded_on: date | None = None
    opened_seq: int
    closed_seq: int | None = None
    created_at: datetime = Field(sa_type=AwareDateTime)
    closed_at: datetime | None = Field(default=None, sa_type=AwareDateTime)


class ApplicantEvent(SQLModel, table=True):
    """申请人信息变更 — the audit of an applicant's own record (registration, contact details)."""

    __tablename__ = "applicant_event"

    id: int | None = Field(default=None, primary_key=True)
    applicant_id: int = Field(foreign_key="applicant.id", index=True)
    trigger: str = Field(max_length=40)
    actor: str = Field(max_length=120)
    account_id: int | None = Field(default=None, foreign_key="account.id")
    at: datetime = Field(sa_type=AwareDateTime)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class OneTimeCode(SQLModel, table=True):
    """验证码 — a code sent to confirm a registration or reset a password (stored hashed)."""

    __tablename__ = "one_time_code"

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id", index=True)
    purpose: str = Field(max_length=20, description="register or reset")
    code_hash: str = Field(max_length=64)
    channel: str = Field(max_length=10)
    address: str = Field(max_length=200)
    contact: dict[str, Any] = Field(
        default_factory=dict,
        sa_column=Column(JSON, nullable=False),
        description="a registration's e-mail and phone, kept until it is confirmed",
    )
    attempts: int = 0
    expires_at: datetime = Field(sa_type=AwareDateTime)
    used_at: datetime | None = Field(default=None, sa_type=AwareDateTime)
    created_at: datetime = Field(sa_type=AwareDateTime)
