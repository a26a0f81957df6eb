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


def no_such_case() -> CaseNotFound:
    """The one answer for a missing case and for a case the actor may not see."""
    return CaseNotFound("案件不存在", "no such case")


def no_such_task() -> CaseNotFound:
    """The one answer for a missing task and for another section's task."""
    return CaseNotFound("任务不存在", "no such task")
