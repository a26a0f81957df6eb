"""引擎的拒绝 — the refusals every door turns into an answer (zh for people, en for logs)."""

from __future__ import annotations

from typing import Any


class EngineError(Exception):
    """A refusal with a Chinese message for people and an English one for logs."""

    code = "engine_error"

    def __init__(self, message_zh: str, message_en: str, *, reasons: list[str] | None = None):
        self.message_zh = message_zh
        self.message_en = message_en
        self.reasons = reasons or []
        super().__init__(message_en)

    def as_dict(self) -> dict[str, Any]:
        return {
            "error": self.code,
            "message_zh": self.message_zh,
            "message_en": self.message_en,
            "reasons": self.reasons,
        }


class CaseNotFound(EngineError):
    """No such case, task or account — or one the actor may not see: the answer is the same."""

    code = "not_found"


class ConflictError(EngineError):
    """Someone else changed the case first; reload and try again."""

    code = "conflict"


class NotPermitted(EngineError):
    """The actor may see the case but may not take this step (role, task, separation of duties)."""

    code = "forbidden"


class TransitionRefused(EngineError):
    """The trigger's guards do not hold (a business rule says no)."""

    code = "refused"


class WrongState(TransitionRefused):
    """The trigger is not allowed in the case's current state (it moved on, or never could)."""

    code = "wrong_state"


class StorageFull(EngineError):
    """The database's disk is full: the transaction was rolled back, nothing of it written."""

    code = "storage_full"


def storage_full(detail: object) -> StorageFull:
    return StorageFull(
        "存储空间已满，本次操作未保存，请联系运维人员",
        f"the database's storage is full; nothing of this operation was saved ({detail})",
    )


class DatabaseUnavailable(EngineError):
    """The database could not be reached, or the connection died in the transaction: it was
    rolled back (if the connection died during the commit, it may have committed: `in_doubt`).
    Nothing needs repairing; the same request, with the same request key, is safe to retry."""

    code = "database_unavailable"

    def __init__(self, message_zh: str, message_en: str, *, in_doubt: bool = False):
        super().__init__(message_zh, message_en)
        self.in_doubt = in_doubt

    def as_dict(self) -> dict[str, Any]:
        return {**super().as_dict(), "in_doubt": self.in_doubt}


# SQLSTATE class 08 (connection exception); 57P01 admin shutdown, 57P02 crash shutdown, 57P03
# cannot connect now (starting up, shutting down, in recovery)
_SHUTDOWN_STATES = frozenset({"57P01", "57P02", "57P03"})


def connection_lost(exc: BaseException) -> bool:
    """The error is the database being out of reach, not a statement it refused.

    SQLAlchemy marks a dead connection `connection_invalidated`; PostgreSQL names a lost or
    refused session by its SQLSTATE; and psycopg reports a connection it could not open (server
    down, "the database system is starting up") as an OperationalError without a SQLSTATE.
    """
    from sqlalchemy.exc import DBAPIError, OperationalError

    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    orig = exc.orig
    state = getattr(orig, "sqlstate", "")  # psycopg's errors carry it; sqlite3's do not
    if state is None:
        return isinstance(exc, OperationalError)
    return state.startswith("08") or state in _SHUTDOWN_STATES


def database_unavailable(detail: object, *, in_doubt: bool = False) -> DatabaseUnavailable:
    words = str(detail).strip().splitlines()[0] if str(detail).strip() else "no detail"
    if in_doubt:
        return DatabaseUnavailable(
            "数据库连接在保存时中断，本次操作可能已保存，请稍后查询或重试",
            "the database connection was lost during the commit; the operation may have been "
            f"saved: retry with the same request key to find out ({words})",
            in_doubt=True,
        )
    return DatabaseUnavailable(
        "数据库暂时不可用，本次操作未保存，请稍后重试",
        f"the database is unavailable; nothing of this operation was saved ({words})",
    )


def no_such_case() -> CaseNotFound:
    """The one answer for a missing case and for a case the actor may not see."""
    return CaseNotFound("案件不存在", "no such case")


def no_such_task() -> CaseNotFound:
    """The one answer for a missing task and for another section's task."""
    return CaseNotFound("任务不存在", "no such task")
