"""账户安全 — tokens and passwords, stored only as hashes."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from models.tables import Account

SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """API tokens and session ids are random: sha256 is enough to keep them from the DB."""
    return hashlib.sha256(token.encode()).hexdigest()


def password_hash(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, **SCRYPT)
    return f"scrypt${salt.hex()}${digest.hex()}"


_DUMMY = f"scrypt${'00' * 16}${'00' * 64}"


def dummy_hash() -> str:
    """A well-formed hash no password matches: checking against it takes a real check's time
    (an unknown user name, or an account without a password, must not answer faster)."""
    return _DUMMY


def password_ok(password: str, stored: str | None) -> bool:
    if not stored or not stored.startswith("scrypt$"):
        return False
    _, salt, digest = stored.split("$")
    mine = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), **SCRYPT)
    return hmac.compare_digest(mine.hex(), digest)


def create_account(
    db: Engine,
    *,
    username: str,
    role: str,
    now: datetime,
    display_name: str = "",
    bureau: str | None = None,
    section: str | None = None,
    uscc: str | None = None,
    password: str | None = None,
    section_head: bool = False,
) -> tuple[Account, str]:
    """Make an account; returns it with its API token (shown once, stored hashed). A reviewer
    or intake officer may be its section's head (科室负责人: reassigns the section's tasks)."""
    if role not in ("operator", "reviewer", "intake_officer", "applicant"):
        raise ValueError("role must be operator, reviewer, intake_officer or applicant")
    staff = role in ("reviewer", "intake_officer")
    if staff and not (bureau and section is not None):
        raise ValueError(f"a {role} is bound to a bureau and a section")
    if role == "applicant" and not uscc:
        raise ValueError("an applicant is bound to a USCC")
    if section_head and not staff:
        raise ValueError("only a reviewer or an intake officer can be a section head")
    token = new_token()
    with Session(db) as s, s.begin():
        if s.exec(select(Account).where(col(Account.username) == username)).first():
            raise ValueError(f"account {username!r} exists")
        account = Account(
            username=username,
            display_name=display_name or username,
            role=role,
            bureau_code=bureau if staff else None,
            section_code=section if staff else None,
            uscc=uscc if role == "applicant" else None,
            token_hash=token_hash(token),
            password_hash=password_hash(password) if password else None,
            section_head=section_head,
            created_at=now,
        )
        s.add(account)
        s.flush()
        s.expunge(account)
    return account, token
