"""对账 — the treasury's reconciliation file marks payments paid or failed.

A paid line settles its case through the engine (request key `paid:<key>`, so a file read twice
changes nothing). A failed line sends the payout back for the next batch until its attempts run
out; then it becomes an incident for an operator.

The file is read in chunks of RELIEF_CHUNK_SIZE lines, one Prefect task each. A chunk's paid
lines are settled as one set through the engine, one transaction for the chunk; a conflict in
it is retried line by line, so one bad line never holds up the others.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task
from pydantic import BaseModel, Field
from sqlmodel import Session, col, select

from flows.common import case_engine, chunked, run_chunks
from flows.payout import give_up, settle
from flows.treasury import FileTreasury
from models.incidents import attempt_budget
from models.settings import get_settings
from models.statuses import ATTEMPT_MOVES, PAYOUT_MOVES, AttemptStatus, PayoutStatus, check
from models.tables import Payout, PayoutAttempt
from states.actors import SYSTEM_ACCOUNT, Actor
from states.engine import CaseEngine
from states.errors import ConflictError
from states.work import FireItem


class ReconcileParams(BaseModel):
    file: Path = Field(description="CSV: idempotency_key,status,reference")
    account: str = Field(
        default=SYSTEM_ACCOUNT,
        description="the account the flow acts as (an operator's, or system)",
    )


class ReconcileSummary(BaseModel):
    lines: int
    paid: int = 0
    already_paid: int = 0
    retry: int = 0
    incidents: int = 0
    unknown: list[str] = Field(default_factory=list)


@task(retries=2, retry_delay_seconds=2)
def reconcile_lines(rows: list[dict[str, str]], account: str) -> ReconcileSummary:
    engine = case_engine()
    actor = engine.actor(account)
    out = ReconcileSummary(lines=len(rows))
    keys = [row["idempotency_key"].strip() for row in rows]
    with Session(engine.db) as s:
        payouts = {
            p.idempotency_key: p
            for p in s.exec(select(Payout).where(col(Payout.idempotency_key).in_(keys))).all()
        }
    paid: list[tuple[Payout, str]] = []
    queued: set[str] = set()
    for key, row in zip(keys, rows, strict=True):
        payout = payouts.get(key)
        if payout is None or payout.id is None:
            out.unknown.append(key)
            continue
        if payout.status == PayoutStatus.PAID or key in queued:
            out.already_paid += 1
            continue
        if row["status"].strip() == "paid":
            paid.append((payout, row.get("reference", "").strip()))
            queued.add(key)
            continue
        with Session(engine.db) as s, s.begin():
            p = s.get(Payout, payout.id)
            assert p is not None
            sent = s.exec(
                select(PayoutAttempt).where(
                    col(PayoutAttempt.payout_id) == payout.id,
                    col(PayoutAttempt.attempt_no) == p.attempts,
                )
            ).first()
            if sent is not None:  # the attempt the instruction file made has failed
                check(ATTEMPT_MOVES, sent.status, AttemptStatus.FAILED)
                sent.status, sent.detail = AttemptStatus.FAILED, row.get("reference", "")
                s.add(sent)
            budget = attempt_budget(
                s, f"payout:{p.idempotency_key}", engine.settings.payout_max_attempts
            )
            exhausted = p.attempts >= budget
            if not exhausted:  # back into the next instruction file
                check(PAYOUT_MOVES, p.status, PayoutStatus.ORDERED)
                p.status, p.batch_ref = PayoutStatus.ORDERED, None
            s.add(p)
        if exhausted:
            out.incidents += int(give_up(engine, payout, f"国库退回：{row.get('reference', '')}"))
        else:
            out.retry += 1
    settle_many(engine, paid, actor)
    out.paid += len(paid)
    return out


def settle_many(engine: CaseEngine, paid: list[tuple[Payout, str]], actor: Actor) -> None:
    """Settle a chunk's paid lines as one set (the engine retries a conflict item by item)."""
    items = [
        FireItem(
            p.case_id,
            "record_payment",
            actor=actor,
            payload={"external_ref": reference},
            request_key=f"paid:{p.idempotency_key}",
        )
        for p, reference in paid
    ]
    outcome = engine.fire_many(items, unit_size=max(1, len(items)))
    for index, exc in sorted(outcome.refused.items()):
        if not isinstance(exc, ConflictError):
            raise exc  # as a single settle would: the task fails and is retried
        payout, reference = paid[index]
        settle(engine, payout, reference, actor)


@flow(name="reconcile", log_prints=False)
def reconcile_flow(params: ReconcileParams) -> ReconcileSummary:
    """Read a reconciliation file from the treasury."""
    rows = FileTreasury.read_reconciliation(params.file)
    summary = ReconcileSummary(lines=len(rows))
    chunks = chunked(rows, get_settings().chunk_size)
    for part in run_chunks(reconcile_lines, chunks, params.account):
        summary.paid += part.paid
        summary.already_paid += part.already_paid
        summary.retry += part.retry
        summary.incidents += part.incidents
        summary.unknown += part.unknown
    return summary
