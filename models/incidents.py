"""异常记录 — open an incident once per failing thing, reopen it when a retry fails again,
and close it when a retry succeeds.

An incident's `ref` names what failed (`notice:<key>`, `payout:<key>`, `request:<id>`). An
operator's retry (CaseEngine.act_on_incident) marks it `retrying`; the delivery or payment
that follows either settles it (`resolved`, by the system) or reopens it with the new reason.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, select, update

from models.tables import Incident

SYSTEM = "system"


def raise_incident(
    s: Session, *, ref: str, kind: str, case_id: int | None, message: str, now: datetime
) -> bool:
    """Open the incident for `ref`, or reopen it after a failed retry; False when it is open
    already (one incident per failing thing, however often it fails)."""
    row = s.exec(select(Incident).where(col(Incident.ref) == ref)).first()
    if row is None:
        s.add(Incident(ref=ref, kind=kind, case_id=case_id, message=message, created_at=now))
        return True
    if row.status == "open":
        return False
    row.status, row.message = "open", message
    row.resolved_at, row.resolved_by = None, None
    s.add(row)
    return True


def settle_retried(s: Session, ref: str, now: datetime, note: str) -> None:
    """A retried notice was delivered, or a retried payout paid: its incident is resolved."""
    s.exec(
        update(Incident)
        .where(col(Incident.ref) == ref, col(Incident.status) == "retrying")
        .values(status="resolved", resolved_at=now, resolved_by=SYSTEM, note=note)
    )


def settle_retried_payout(s: Session, case_id: int, now: datetime) -> None:
    """The case's retried payout is paid (written in the payment's own transaction)."""
    s.exec(
        update(Incident)
        .where(
            col(Incident.case_id) == case_id,
            col(Incident.kind) == "payout_failed",
            col(Incident.status) == "retrying",
        )
        .values(status="resolved", resolved_at=now, resolved_by=SYSTEM, note="重试后已拨付")
    )


def attempt_budget(s: Session, ref: str, per_round: int) -> int:
    """How many attempts `ref` may have made in all: `per_round` for the first run, and each
    retry an operator asks for raises the ceiling by `per_round` again (a notice that failed
    for good at its first attempt may so be tried a few more times after a retry)."""
    retries = s.exec(select(Incident.retries).where(col(Incident.ref) == ref)).first() or 0
    return per_round * (1 + retries)


def reopen_retried(s: Session, ref: str, message: str) -> None:
    """A retried notice still cannot go out (no channel, or one not configured): the incident
    is open again, saying why (an incident never opened is not opened here)."""
    s.exec(
        update(Incident)
        .where(col(Incident.ref) == ref, col(Incident.status) == "retrying")
        .values(status="open", message=message)
    )
