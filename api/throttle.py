"""猜测限制 — failed sign-ins, bad tokens and wrong query codes slow down, then lock.

Counted per account (or case) and per client address, in the database, so that every API
process applies one limit (a count alternating between two processes locks at the same
number). After `backoff_after` failures each further attempt must wait (1 s, doubling, at most
`backoff_max_seconds`); an attempt made during the wait is refused without being checked and
counts as a failure. At `lock_after` failures the key is locked: an account until an operator
lifts it, an address or a case for `lock_minutes`. A quiet `window_minutes` starts a fresh
count. Locks are visible to operators (`relief lock list`, /operator) and can be lifted.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, update
from sqlmodel import Session, col, select

from models.db import insert_if_absent
from models.settings import Settings
from models.tables import AuthThrottle

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limit:
    scope: str
    backoff_after: int
    lock_after: int
    lock_minutes: int | None  # None: until an operator lifts it
    window_minutes: int
    backoff_max_seconds: int


def limits(settings: Settings) -> dict[str, Limit]:
    """The limits of each scope, from the settings (docs/security.md gives the reasons)."""
    s = settings
    window, cap = s.throttle_window_minutes, s.throttle_backoff_max_seconds
    return {
        "login_account": Limit("login_account", s.login_backoff_after, s.login_lock_after,
                               None, window, cap),
        "login_address": Limit("login_address", s.login_backoff_after, s.address_lock_after,
                               s.address_lock_minutes, window, cap),
        "token_address": Limit("token_address", s.login_backoff_after, s.address_lock_after,
                               s.address_lock_minutes, window, cap),
        # a case's count only starts afresh after a quiet day: at most lock_after - 1 wrong
        # codes a day, whatever the number of addresses (docs/security.md has the arithmetic)
        "status_case": Limit("status_case", s.status_backoff_after, s.status_case_lock_after,
                             s.status_case_lock_minutes, s.status_case_lock_minutes, cap),
        "status_address": Limit("status_address", s.status_backoff_after,
                                s.address_lock_after, s.address_lock_minutes, window, cap),
        # one-time codes: sends per address slow down and lock (no mailbox flooding), wrong
        # codes per account lock the account's codes for a while
        "code_send": Limit("code_send", 5, s.address_lock_after, s.address_lock_minutes,
                           window, cap),
        "code_account": Limit("code_account", 3, 5, s.address_lock_minutes, window, cap),
    }  # fmt: skip


SCOPE_ZH = {
    "login_account": "账户登录",
    "login_address": "登录（来源地址）",
    "token_address": "访问令牌（来源地址）",
    "status_case": "进度查询（案件）",
    "status_address": "进度查询（来源地址）",
    "code_send": "发送验证码（来源地址）",
    "code_account": "验证码（账户）",
}


class Throttled(Exception):
    """Too many failures: refused without looking at what was sent."""

    def __init__(self, message_zh: str, message_en: str, retry_after: int | None) -> None:
        self.message_zh = message_zh
        self.message_en = message_en
        self.retry_after = retry_after
        super().__init__(message_en)


def _locked(row: AuthThrottle, now: datetime) -> bool:
    return row.locked_at is not None and (row.locked_until is None or row.locked_until > now)


def _wait(row: AuthThrottle, limit: Limit) -> timedelta:
    over = row.failures - limit.backoff_after
    if over < 0:
        return timedelta(0)
    return timedelta(seconds=min(2**over, limit.backoff_max_seconds))


def check(s: Session, limit: Limit, key: str, now: datetime) -> None:
    """Raise Throttled while `key` is locked or must still wait; otherwise do nothing. Reads in
    the caller's session (a token's check and its account are one read)."""
    row = s.get(AuthThrottle, (limit.scope, key))
    if row is None:
        return
    if _locked(row, now):
        raise _lock_refusal(row, limit, now)
    ready = row.last_failure_at + _wait(row, limit)
    if (row.locked_at is None and now - row.last_failure_at > _window(limit)) or ready <= now:
        return
    seconds = int((ready - now).total_seconds()) + 1
    raise Throttled(
        f"尝试过于频繁，请{seconds}秒后再试", f"{limit.scope}: retry in {seconds} s", seconds
    )


def _window(limit: Limit) -> timedelta:
    return timedelta(minutes=limit.window_minutes)


def _locked_row(s: Session, limit: Limit, key: str, now: datetime) -> AuthThrottle:
    """The key's row, made on first use and locked for this transaction; a quiet window or an
    expired lock starts the count afresh."""
    insert_if_absent(
        s,
        AuthThrottle,
        {"scope": limit.scope, "key": key, "failures": 0, "first_failure_at": now,
         "last_failure_at": now},
    )  # fmt: skip
    row = s.exec(
        select(AuthThrottle)
        .where(col(AuthThrottle.scope) == limit.scope, col(AuthThrottle.key) == key)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    expired = row.locked_at is not None and not _locked(row, now)
    stale = row.locked_at is None and now - row.last_failure_at > _window(limit)
    if expired or (stale and row.failures > 0):
        row.failures, row.first_failure_at, row.locked_at, row.locked_until = 0, now, None, None
    return row


def _lock(row: AuthThrottle, limit: Limit, now: datetime) -> None:
    if row.failures >= limit.lock_after and row.locked_at is None:
        row.locked_at = now
        row.locked_until = (
            now + timedelta(minutes=limit.lock_minutes) if limit.lock_minutes else None
        )
        log.warning("%s %r locked after %d failures", limit.scope, row.key, row.failures)


def reserve(db: Engine, limit: Limit, key: str, now: datetime) -> None:
    """Count this attempt before it is checked (its own committed transaction, the row locked),
    so that attempts made at the same moment — on any API process — are counted one after
    another and cannot all slip through. Raise Throttled while the key is locked or must wait
    (a try during the wait counts too). The caller calls `succeed` when it succeeds (an
    account's count starts afresh) and `confirm_failure` when it fails. For what is counted per
    send (codes sent) and per account (one-time codes); a check that should count only its
    failures uses `attempt`."""
    with Session(db) as s, s.begin():
        refused = _count_attempt(s, limit, key, now)
    if refused is not None:
        raise refused


@dataclass
class Attempt:
    """What the guarded block found: `failed()` when what was sent is wrong."""

    wrong: bool = False

    def failed(self) -> None:
        self.wrong = True


@contextmanager
def attempt(db: Engine, keys: Sequence[tuple[Limit, str]], now: datetime) -> Iterator[Attempt]:
    """One attempt, checked while the keys' rows are locked (in order): attempts made at the
    same moment, on any API process, are checked one after another, each seeing the failures
    before it, so a burst of guesses cannot slip past the limit. Raises Throttled, without
    running the block, while a key is locked or must wait (a try during the wait counts as a
    failure). A wrong attempt (`failed()`) counts one failure on every key, locking at the
    limit; a right one counts nothing — unlike `reserve`, whose attempts in flight count, so that
    lookups and sign-ins at once from one busy address (a service counter, a proxy) were
    refused as guesses (bench/load.py: 981 of 988 lookups answered 429)."""
    refused: Throttled | None = None
    with Session(db) as s, s.begin():
        rows = [(limit, _locked_row(s, limit, key, now)) for limit, key in keys]
        for limit, row in rows:
            refused = _refusal(row, limit, now)
            if refused is not None:
                s.add(row)
                break
        if refused is None:
            outcome = Attempt()
            yield outcome
            if outcome.wrong:
                for limit, row in rows:
                    row.failures += 1
                    row.last_failure_at = now
                    _lock(row, limit, now)
                    s.add(row)
    if refused is not None:
        raise refused


def _refusal(row: AuthThrottle, limit: Limit, now: datetime) -> Throttled | None:
    """Why an attempt on this (locked) row is refused unchecked, counting a try made during
    the wait; None if it may be checked."""
    if not _locked(row, now) and row.failures >= limit.lock_after:
        _lock(row, limit, now)
    if _locked(row, now):
        return _lock_refusal(row, limit, now)
    ready = row.last_failure_at + _wait(row, limit)
    if row.failures < limit.backoff_after or ready <= now:
        return None
    row.failures += 1
    row.last_failure_at = now
    _lock(row, limit, now)
    seconds = int((ready - now).total_seconds()) + 1
    return Throttled(
        f"尝试过于频繁，请{seconds}秒后再试", f"{limit.scope}: retry in {seconds} s", seconds
    )


def _count_attempt(s: Session, limit: Limit, key: str, now: datetime) -> Throttled | None:
    row = _locked_row(s, limit, key, now)
    refused: Throttled | None = None
    if not _locked(row, now) and row.failures >= limit.lock_after:
        _lock(row, limit, now)  # as many attempts as the limit are out: no more
    if _locked(row, now):
        refused = _lock_refusal(row, limit, now)  # locked: counted no further
    else:
        ready = row.last_failure_at + _wait(row, limit)
        waiting = row.failures >= limit.backoff_after and ready > now
        row.failures += 1
        row.last_failure_at = now
        if waiting:
            seconds = int((ready - now).total_seconds()) + 1
            refused = Throttled(
                f"尝试过于频繁，请{seconds}秒后再试",
                f"{limit.scope}: retry in {seconds} s",
                seconds,
            )
            _lock(row, limit, now)
    s.add(row)
    return refused


def confirm_failure(db: Engine, limit: Limit, key: str, now: datetime) -> None:
    """The reserved attempt failed: at the limit, the key locks now."""
    with Session(db) as s, s.begin():
        row = _locked_row(s, limit, key, now)
        _lock(row, limit, now)
        s.add(row)


def _lock_refusal(row: AuthThrottle, limit: Limit, now: datetime) -> Throttled:
    until = row.locked_until
    return Throttled(
        "失败次数过多，已暂时锁定"
        + (f"，请于{until:%Y-%m-%d %H:%M}后再试" if until else "，请联系运营人员解锁"),
        f"{limit.scope} locked" + (f" until {until.isoformat()}" if until else ""),
        int((until - now).total_seconds()) + 1 if until else None,
    )


def fail(db: Engine, limit: Limit, key: str, now: datetime) -> int:
    """Count one failure after the fact (bad API tokens: random 256-bit values, so a burst
    that slips past `check` learns nothing); returns the count, locking at the limit."""
    with Session(db) as s, s.begin():
        row = _locked_row(s, limit, key, now)
        row.failures += 1
        row.last_failure_at = now
        _lock(row, limit, now)
        s.add(row)
        return row.failures


def succeed(db: Engine, limit: Limit, key: str) -> None:
    """A success clears the count of an unlocked key (an account's, not an address's)."""
    with Session(db) as s, s.begin():
        s.execute(
            update(AuthThrottle)
            .where(
                col(AuthThrottle.scope) == limit.scope,
                col(AuthThrottle.key) == key,
                col(AuthThrottle.locked_at).is_(None),
            )
            .values(failures=0)
        )


def current_locks(db: Engine, now: datetime) -> list[AuthThrottle]:
    """Every key locked now, newest first (what operators see and may lift)."""
    with Session(db) as s:
        rows = s.exec(
            select(AuthThrottle)
            .where(col(AuthThrottle.locked_at).is_not(None))
            .order_by(col(AuthThrottle.locked_at).desc())
        ).all()
    return [r for r in rows if _locked(r, now)]


def lift(db: Engine, scope: str, key: str, *, by: str, now: datetime) -> bool:
    """An operator lifts a lock: the count starts afresh. False if nothing was locked."""
    with Session(db) as s, s.begin():
        done = s.execute(
            update(AuthThrottle)
            .where(
                col(AuthThrottle.scope) == scope,
                col(AuthThrottle.key) == key,
                col(AuthThrottle.locked_at).is_not(None),
            )
            .values(failures=0, locked_at=None, locked_until=None, lifted_by=by, lifted_at=now)
        )
    if done.rowcount:
        log.warning("%s %r unlocked by %s", scope, key, by)
    return bool(done.rowcount)
