"""页面会话 — a browser's session in the database: who is signed in, flash messages, CSRF.

Every browser that opens a form page gets a session cookie (before sign-in too), so the login
form carries a CSRF token and a failed attempt leaves its message in the session, never in the
URL. Before sign-in the session is only the cookie: a database row is made when there is a
message to keep (a failed sign-in, already limited by api/throttle.py), so pages fetched
without cookies store nothing. A CSRF token is the session's id signed with itsdangerous (a key
every API process shares), so it is bound to this session and expires with it; a forged
cross-site POST has none.
"""

from __future__ import annotations

import functools
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import Engine, delete, update
from sqlmodel import Session, col

from api.security import new_token, token_hash
from models.db import insert_if_absent
from models.tables import Account, AppSecret, WebSession

SESSION_COOKIE = "relief_session"
SESSION_HOURS = 12  # signed in: one working day
ANONYMOUS_MINUTES = 120  # before sign-in: long enough to fill a form
CSRF_FIELD = "csrf_token"


@dataclass
class PageSession:
    token_hash: str
    account: Account | None
    flash: list[dict[str, str]] = field(default_factory=list)
    cookie: str | None = None  # set when this request made the session: the cookie to send
    stored: bool = True  # False: an anonymous session that has no row yet
    now: datetime | None = None


def load(db: Engine, cookie: str | None, now: datetime) -> PageSession | None:
    """The browser's session: signed in (an active, non-system account), or anonymous."""
    if not cookie or len(cookie) > 200:
        return None
    digest = token_hash(cookie)
    with Session(db) as s:
        row = s.get(WebSession, digest)
        if row is None or row.expires_at <= now:
            return PageSession(digest, None, [], stored=False, now=now)
        account = s.get(Account, row.account_id) if row.account_id is not None else None
    if account is not None and (not account.active or account.role == "system"):
        account = None
    return PageSession(digest, account, list(row.flash or []), now=now)


def start(db: Engine, now: datetime, account: Account | None = None) -> PageSession:
    """A new session: signed in as `account` (a row), or anonymous (only a cookie, for now)."""
    token = new_token()
    if account is None:
        return PageSession(token_hash(token), None, [], cookie=token, stored=False, now=now)
    with Session(db) as s, s.begin():
        s.execute(delete(WebSession).where(col(WebSession.expires_at) <= now))
        s.add(
            WebSession(
                token_hash=token_hash(token),
                account_id=account.id,
                expires_at=now + timedelta(hours=SESSION_HOURS),
                created_at=now,
                flash=[],
            )
        )
    return PageSession(token_hash(token), account, [], cookie=token, now=now)


def end(db: Engine, session: PageSession) -> None:
    with Session(db) as s, s.begin():
        s.execute(delete(WebSession).where(col(WebSession.token_hash) == session.token_hash))


def push_flash(db: Engine, session: PageSession, text: str, level: str = "info") -> None:
    """A message for the next page this browser sees (an anonymous session gets its row now)."""
    session.flash.append({"level": level, "text": text})
    with Session(db) as s, s.begin():
        if not session.stored:
            now = session.now or datetime.now(UTC)
            s.execute(delete(WebSession).where(col(WebSession.expires_at) <= now))
            insert_if_absent(
                s,
                WebSession,
                {"token_hash": session.token_hash, "account_id": None, "created_at": now,
                 "expires_at": now + timedelta(minutes=ANONYMOUS_MINUTES), "flash": []},
            )  # fmt: skip
            session.stored = True
        s.execute(
            update(WebSession)
            .where(col(WebSession.token_hash) == session.token_hash)
            .values(flash=session.flash)
        )


def pop_flash(db: Engine, session: PageSession) -> list[dict[str, str]]:
    """The messages waiting for this page, cleared as they are shown."""
    messages, session.flash = session.flash, []
    if messages and session.stored:
        with Session(db) as s, s.begin():
            s.execute(
                update(WebSession)
                .where(col(WebSession.token_hash) == session.token_hash)
                .values(flash=[])
            )
    return messages


@functools.cache
def _shared_secret(db: Engine) -> str:
    """The signing key kept in the database (made once by whichever process asks first)."""
    with Session(db) as s, s.begin():
        insert_if_absent(
            s,
            AppSecret,
            {"name": "csrf", "value": secrets.token_urlsafe(48), "created_at": datetime.now(UTC)},
        )
        row = s.get(AppSecret, "csrf")
        assert row is not None
        return row.value


def signing_key(db: Engine, secret_key: str | None) -> str:
    """RELIEF_SECRET_KEY, or the key every process shares through the database."""
    return secret_key or _shared_secret(db)


def signer(db: Engine, secret_key: str | None, salt: str) -> URLSafeTimedSerializer:
    """itsdangerous with the shared key, one salt per purpose (a CSRF token signs nothing else)."""
    return URLSafeTimedSerializer(signing_key(db, secret_key), salt=salt)


def _signer(db: Engine, secret_key: str | None) -> URLSafeTimedSerializer:
    return signer(db, secret_key, "relief-csrf")


def csrf_token(db: Engine, session: PageSession, secret_key: str | None) -> str:
    return str(_signer(db, secret_key).dumps(session.token_hash))


def csrf_valid(db: Engine, session: PageSession | None, token: Any, secret_key: str | None) -> bool:
    """The token was made for this very session, within its lifetime."""
    if session is None or not isinstance(token, str) or not token or len(token) > 300:
        return False
    try:
        bound = _signer(db, secret_key).loads(token, max_age=SESSION_HOURS * 3600)
    except BadSignature:
        return False
    return bool(secrets.compare_digest(str(bound), session.token_hash))
