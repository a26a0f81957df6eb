"""通知书请求 — what the engine asks of whoever writes its notices (states/ does not render).

A step that owes a notice records a NoticeRequest with everything the notice may state, as the
case stood at that step. When the unit of work is written, it numbers the requests (each
issuer's serial row locked once, in prefix order, so that concurrent units never deadlock and
numbers have no gaps) and has the issuer render them; the rows go to the outbox in the same
transaction. The issuer is notifications.issuer.NoticeWriter; the engine receives it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol

from states.lifecycle import NoticeKind
from states.rules import Assessment


@dataclass(frozen=True)
class NoticeRequest:
    kind: NoticeKind
    case_id: int
    case_no: str
    case_type: str
    query_code: str
    filed_on: date
    edition_id: str
    state: str  # the case's state after the step that owes the notice
    facts: dict[str, Any]
    assessment: Assessment
    granted: Decimal | None
    event_seq: int
    issued_on: date
    created_at: datetime
    items: tuple[str, ...] = ()
    reason: str | None = None
    deadline: date | None = None
    reference: str | None = None
    task: dict[str, Any] = field(default_factory=dict)  # a bureau notice's task
    decision_ref: str | None = None  # a payout notice: the number of the decision it carries out


class NoticeIssuer(Protocol):
    def doc_prefix(self, request: NoticeRequest) -> str | None:
        """The issuer's document-number prefix (东市监), or None for a bureau's internal notice."""
        ...

    def render(self, request: NoticeRequest, doc_number: str | None) -> dict[str, Any]:
        """The notice's outbox row (column values), rendered once and hashed."""
        ...

    def number(self, prefix: str, year: int, serial: int) -> str:
        """The document number for a serial (东市监〔2022〕12号)."""
        ...
