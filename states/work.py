"""办理请求与结果 — what the engine is asked to do for a set of cases, and what it answers.

Every operation takes a set of items (an API call is a set of one) and answers per item, in
input order: the result, or the refusal the engine gave that item alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from models.input_errors import InvalidApplication
from models.receipts import PaperReceipt
from states.actors import Actor
from states.errors import EngineError
from states.labels import state_zh

R = TypeVar("R")


@dataclass(frozen=True)
class IntakeRow:
    """The intake batch row an item comes from: its record is written with its cases."""

    batch_id: str
    row_no: int
    raw: dict[str, Any]


@dataclass(frozen=True)
class SubmitItem:
    """An application (raw JSON-like data) to file."""

    data: Any
    actor: Actor
    request_key: str | None = None
    receipt: PaperReceipt | None = None  # 补录: a paper application's earlier receipt
    intake: IntakeRow | None = None
    documents: tuple[dict[str, Any], ...] = ()  # stored files to attach: {slot, sha256, filename}


@dataclass(frozen=True)
class FireItem:
    """A trigger to fire on a case."""

    case_id: int
    trigger: str
    actor: Actor
    payload: dict[str, Any] | None = None
    expected_version: int | None = None
    request_key: str | None = None


@dataclass(frozen=True)
class ReviewItem:
    """A bureau's review decision on its task: 'pass' or 'fail' (with a reason)."""

    task_id: int
    decision: str
    actor: Actor
    reason: str | None = None
    request_key: str | None = None


@dataclass(frozen=True)
class Step:
    from_state: str | None
    to_state: str
    trigger: str


@dataclass(frozen=True)
class FireResult:
    case_id: int
    case_no: str
    state: str
    version: int
    steps: tuple[Step, ...]
    replayed: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "case_id": self.case_id,
            "case_no": self.case_no,
            "state": self.state,
            "state_zh": state_zh(self.state),
            "version": self.version,
            "steps": [
                {"from": s.from_state, "to": s.to_state, "trigger": s.trigger} for s in self.steps
            ],
            "replayed": self.replayed,
        }


Refusal = EngineError | InvalidApplication


@dataclass
class Outcome(Generic[R]):
    """Per item index (input order): its result, or why the engine refused it."""

    done: dict[int, R] = field(default_factory=dict)
    refused: dict[int, Refusal] = field(default_factory=dict)
    units: int = 0  # transactions committed
    retried: int = 0  # units rolled back on a conflict and run again item by item

    def results(self) -> list[R]:
        return [self.done[i] for i in sorted(self.done)]

    def one(self) -> R:
        """The result of a set of one, or its refusal raised."""
        if self.refused:
            raise self.refused[min(self.refused)]
        return self.done[min(self.done)]
