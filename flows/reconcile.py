"""对账 — the treasury's reconciliation file marks payments paid or failed.

A paid line settles its case through the engine (request key `paid:<key>`, so a file read twice
changes nothing). A failed line sends the payout back for the next batch until its attempts run
out; then it becomes an incident for an operator.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task
from pydantic import BaseModel, Field
from sqlmodel import Session, col, select

from flows.common import case_engine
from flows.payout import give_up, settle
from flows.treasury import FileTreasury
from models.tables import Payout, PayoutAttempt


class ReconcileParams(BaseModel):
    file: Path = Field(description="CSV: idempotency_key,status,reference")


class ReconcileSummary(BaseModel):
    lines: int
    paid: int = 0
    already_paid: int = 0
    retry: int = 0
    incidents: int = 0
    unknown: list[str] = Field(default_factory=list)


@task(retries=2, retry_delay_seconds=2)
def reconcile_lines(rows: list[dict[str, str]]) -> ReconcileSummary:
    engine = case_engine()
    out = ReconcileSummary(lines=len(rows))
    for row in rows:
        key = row["idempotency_key"].strip()
        with Session(engine.db) as s:
            payout = s.exec(select(Payout).where(col(Payout.idempotency_key) == key)).first()
        if payout is None or payout.id is None:
            out.unknown.append(key)
            continue
        if payout.status == "paid":
            out.already_paid += 1
            continue
        if row["status"].strip() == "paid":
            settle(engine, payout, row.get("reference", "").strip())
            out.paid += 1
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
                sent.status, sent.detail = "failed", row.get("reference", "")
                s.add(sent)
            exhausted = p.attempts >= engine.settings.payout_max_attempts
            if not exhausted:  # back into the next instruction file
                p.status, p.batch_ref = "ordered", None
            s.add(p)
        if exhausted:
            out.incidents += int(give_up(engine, payout, f"国库退回：{row.get('reference', '')}"))
        else:
            out.retry += 1
    return out


@flow(name="reconcile", log_prints=False)
def reconcile_flow(params: ReconcileParams) -> ReconcileSummary:
    """Read a reconciliation file from the treasury."""
    rows = FileTreasury.read_reconciliation(params.file)
    return reconcile_lines(rows)
