"""运行设置 — the one settings class: database, clock, task deadlines (env prefix RELIEF_).

Policy parameters are not settings: they live in the policy edition (states/editions/).
"""

from __future__ import annotations

import functools
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RELIEF_", extra="ignore")

    database_url: str = Field(
        default="sqlite:///relief.db",
        description="Application database: a SQLite file by default, or postgresql+psycopg://…",
    )
    now: datetime | None = Field(
        default=None,
        description="Fix the system clock (ISO 8601 with offset) for demos and tests; "
        "unset means the real time in Asia/Shanghai.",
    )
    intake_review: bool = Field(
        default=False,
        description="false: the rules accept or refuse an application at once (即申即享); true: an "
        "intake officer accepts, accepts with deferred materials (容缺), requests a correction "
        "(补正) or refuses, on an intake task.",
    )
    applicant_reply_working_days: int = Field(
        default=10,
        ge=1,
        description="Deadline printed on 补正 / 容缺 / 补充材料 notices when the officer gives "
        "none. The document sets none; 10 working days is our default (a PROPOSAL).",
    )
    intake_due_working_days: int = Field(
        default=5,
        ge=1,
        description="Working days for an intake task: 行政许可法第三十二条 (补正 on the spot or "
        "within five days).",
    )
    review_due_working_days: int = Field(
        default=20,
        ge=1,
        description="Working days a bureau has for a review task. Default: the 20 days of "
        "行政许可法第四十二条 (the policy document sets none).",
    )
    confirm_due_working_days: int = Field(
        default=20, ge=1, description="Working days for a confirmation (经确认) task; as above."
    )
    decide_due_working_days: int = Field(
        default=20, ge=1, description="Working days for the decision task; as above."
    )

    chunk_size: int = Field(
        default=200, ge=1, description="Cases per Prefect task: Prefect's cost is paid per chunk."
    )
    sla_remind_working_days: int = Field(
        default=3, ge=0, description="Remind a section this many working days before a due date."
    )
    applicant_remind_working_days: int = Field(
        default=2,
        ge=0,
        description="Remind an applicant this many working days before a 补正 / 容缺 / 补充 "
        "deadline (the document sets none; a PROPOSAL). The sweep ends the case the day after "
        "the deadline passes unanswered.",
    )
    document_store: str = Field(
        default="relief-documents",
        description="Directory of uploaded documents, stored by sha256 (models/document_store.py).",
    )
    notice_form_confirmed: bool = Field(
        default=False,
        description="true once every issuing bureau has confirmed its document-number prefix "
        "(the edition's doc_prefix, a PROPOSAL) and its seal: until then each notice says that "
        "its number and seal are unconfirmed (the demo and tests run so).",
    )
    notice_seal_line: str = Field(
        default="（印章）",
        max_length=60,
        description="printed under the issue date once the form is confirmed: where the seal "
        "(or the e-seal of the signing system) stands (行政许可法第三十二条、第三十八条).",
    )
    editions_dir: Path | None = Field(
        default=None,
        description="A directory of the district's own policy editions (YAML and source text), "
        "loaded beside the shipped ones (states/editions/); docs/editions.md says how to write "
        "one. Read at start: restart the service after adding a file.",
    )
    document_max_mb: int = Field(
        default=10, ge=1, le=200, description="Largest document an applicant may upload, in MB."
    )
    code_minutes: int = Field(
        default=15,
        ge=1,
        le=1440,
        description="Minutes a one-time code (registration, reset) holds.",
    )
    treasury_adapter: Literal["file", "http"] = Field(
        default="file",
        description="How payouts reach the treasury: a batch payment-instruction CSV file, "
        "or an HTTP endpoint.",
    )
    payment_dir: Path = Field(
        default=Path("payments"), description="Where the file adapter writes instruction files."
    )
    treasury_url: str | None = Field(
        default=None, description="Base URL of the treasury endpoint for the http adapter."
    )
    payout_max_attempts: int = Field(
        default=3, ge=1, description="Attempts per payment before it becomes an incident."
    )
    payout_retry_seconds: float = Field(
        default=2.0, ge=0, description="Backoff between payment attempts (doubles each time)."
    )
    smtp_host: str | None = Field(default=None, description="SMTP server for e-mail notices")
    smtp_port: int = Field(default=25, description="SMTP port")
    smtp_starttls: bool = Field(default=False, description="use STARTTLS")
    smtp_user: str | None = Field(default=None, description="SMTP login, if the server needs one")
    smtp_password: str | None = Field(default=None, description="SMTP password")
    mail_from: str = Field(default="relief@localhost", description="sender address of notices")
    sms_webhook_url: str | None = Field(
        default=None, description="the SMS gateway's JSON webhook (POST, Idempotency-Key header)"
    )
    bureau_emails: dict[str, str] = Field(
        default_factory=dict,
        description='where bureau notices go, JSON: {"samr.credit": "credit@…", '
        '"samr.credit#head": "head@…"}; a section without one sees them in its tasklist.',
    )
    notice_max_attempts: int = Field(
        default=5, ge=1, description="delivery attempts before a notice becomes an incident"
    )
    notice_retry_seconds: float = Field(
        default=60, ge=0, description="wait before the next attempt (doubles each time)"
    )
    channel_trip_after: int = Field(
        default=3,
        ge=1,
        description="An outbox run stops trying a channel (e-mail, the SMS webhook) after this "
        "many transient failures in a row: a server down or hanging would otherwise cost every "
        "notice the whole channel timeout. Its notices wait for the next run with no attempt "
        "counted; their other channels still go out. A success in between starts the count "
        "again.",
    )
    channel_timeout_seconds: float = Field(
        default=15,
        ge=0.1,
        le=50,
        description="The longest one send on one channel (e-mail, SMS webhook) may take in all, "
        "connect to receipt; a slower server counts as a transient failure and is tried again "
        "(the receiver drops the repeat by Message-ID / Idempotency-Key). At most 50: a "
        "delivery holds its notice for 300 s (notifications/delivery.py CLAIM_SECONDS), "
        "which must outlast a send on each of the five channels.",
    )
    schedule_outbox_minutes: float = Field(
        default=1,
        gt=0,
        description="`relief serve` / `relief deploy`: minutes between outbox deliveries.",
    )
    schedule_sla_minutes: float = Field(
        default=60,
        gt=0,
        description="`relief serve` / `relief deploy`: minutes between SLA sweeps.",
    )
    prefect_port: int = Field(
        default=4200,
        description="`relief serve` on embedded defaults: port of the local Prefect server "
        "it starts on 127.0.0.1 (ignored when PREFECT_API_URL is set).",
    )
    schedule_payout_minutes: float = Field(
        default=15,
        gt=0,
        description="`relief serve` / `relief deploy`: minutes between payout batches.",
    )
    db_pool_size: int = Field(
        default=10,
        ge=1,
        description="PostgreSQL connections each process keeps open (and as many more in a "
        "burst). Two API processes and the flows at the default stay well under PostgreSQL's "
        "default max_connections (100).",
    )
    api_threads: int = Field(
        default=10,
        ge=1,
        description="`relief serve`: requests one API process works on at once; more wait their "
        "turn. At most db_pool_size, so that a request never waits for a connection "
        "while holding a thread.",
    )
    http_keep_alive_seconds: int = Field(
        default=75,
        ge=1,
        le=3600,
        description="`relief serve`: seconds an idle keep-alive connection stays open. Longer "
        "than a client's own idle expiry (httpx 5 s), so that a client never sends a request on "
        "a connection the server is closing at that moment (uvicorn's 5 s, equal to httpx's, "
        "dropped connections under load). A proxy in front must keep its upstream "
        "connections idle for less than this.",
    )
    secret_key: str | None = Field(
        default=None,
        description="Key that signs CSRF tokens. Unset: a random key made on first use and "
        "kept in the database (table app_secret), so every API process shares it.",
    )
    trusted_proxies: str = Field(
        default="",
        description="`relief serve`: comma-separated addresses whose X-Forwarded-For is believed "
        "(the load balancer's). Empty: none, the connection's address counts. The guessing "
        "limits count per client address.",
    )
    cookie_secure: bool = Field(
        default=False,
        description="Mark the page session cookie Secure (set it when TLS terminates in front "
        "of relief; on plain HTTP the browser would not send it back).",
    )
    login_backoff_after: int = Field(
        default=3, ge=1, description="Failed sign-ins (or bad tokens) before each next try waits."
    )
    login_lock_after: int = Field(
        default=10,
        ge=1,
        description="Failed sign-ins that lock an account until an operator lifts the lock.",
    )
    address_lock_after: int = Field(
        default=30,
        ge=1,
        description="Failures from one client address (sign-ins, tokens, "
        "status lookups) that lock the address for address_lock_minutes.",
    )
    address_lock_minutes: int = Field(
        default=60, ge=1, description="How long a client address stays locked."
    )
    status_backoff_after: int = Field(
        default=5, ge=1, description="Wrong query codes for one case before each next try waits."
    )
    status_case_lock_after: int = Field(
        default=10, ge=1, description="Wrong query codes that lock one case's public lookup."
    )
    status_case_lock_minutes: int = Field(
        default=24 * 60, ge=1, description="How long a case's public lookup stays locked."
    )
    throttle_window_minutes: int = Field(
        default=60, ge=1, description="A key with no failure for this long starts a fresh count."
    )
    throttle_backoff_max_seconds: int = Field(
        default=30, ge=1, description="The longest wait between tries (1 s, doubling)."
    )
    work_pool: str = Field(
        default="relief",
        description="Several machines: the Prefect process work pool that `relief deploy` "
        "registers the deployments in and `relief worker` takes flow runs from.",
    )


@functools.cache
def get_settings() -> Settings:
    """The process's settings, read once from the environment."""
    return Settings()
