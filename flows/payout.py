"""资金拨付 — pay approved subsidies exactly once.

Exactly-once comes from our database, not from Prefect (PREFECT-NOTES.md: its retries and
caching paid twice in crash tests). Each payout has a unique idempotency key; an attempt row is
committed before the treasury is called; a run that finds an attempt whose outcome it never
learned asks the treasury first and pays only if the treasury has no such payment. Marking the
case paid (engine `record_payment`, request key `paid:<key>`) is one transaction with the payout
row. A payment that keeps failing becomes an incident, never silently dropped.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any, Literal

from prefect import flow, task
from pydantic import BaseModel, Field
from sqlalchemy import bindparam, insert, update
from sqlmodel import Session, col, select

from flows.common import case_engine, chunked, run_chunks
from flows.singleton import claimed, exclusive
from flows.treasury import FileTreasury, HttpTreasury, PaymentInstruction, TreasuryError
from models.db import engine_for
from models.incidents import attempt_budget, raise_incident
from models.ledger import record_attempt as record_attempt_row
from models.settings import get_settings
from models.statuses import (
    PAYOUT_MOVES,
    WAITING_PAYOUTS,
    AttemptStatus,
    BatchStatus,
    PayoutStatus,
    check,
)
from models.tables import Applicant, Case, Incident, PaymentBatch, Payout, PayoutAttempt
from states.actors import SYSTEM_ACCOUNT, Actor
from states.engine import CaseEngine

IN_LIST = 1000  # ids per IN (...) list: well inside SQLite's and PostgreSQL's limits


class PayoutParams(BaseModel):
    adapter: Literal["file", "http"] | None = Field(default=None, description="default: setting")
    endpoint: str | None = Field(default=None, description="http adapter: treasury base URL")
    out_dir: Path | None = Field(default=None, description="file adapter: instruction folder")
    account: str = Field(
        default=SYSTEM_ACCOUNT,
        description="the account the flow acts as (an operator's, or system)",
    )


class PayoutSummary(BaseModel):
    adapter: str
    considered: int = 0
    paid: int = 0
    sent_in_files: int = 0
    files: list[str] = Field(default_factory=list)
    failed: int = 0
    incidents: int = 0
    busy: bool = Field(default=False, description="another payout run held the lock; did nothing")


# ---------------------------------------------------------------- shared pieces
def instruction(s: Session, payout: Payout) -> PaymentInstruction:
    case = s.get(Case, payout.case_id)
    assert case is not None
    applicant = s.get(Applicant, case.applicant_id)
    assert applicant is not None
    return PaymentInstruction(
        idempotency_key=payout.idempotency_key,
        case_no=case.case_no or "",
        payee=applicant.identity,
        payee_name=applicant.name,
        amount=payout.amount,
        payer_bureau=payout.payer_bureau,
    )


def record_attempt(
    engine: CaseEngine, payout_id: int, attempt_no: int, adapter: str, status: str, detail: str = ""
) -> None:
    """One payment attempt in the ledger (models/ledger.py), committed at once; the payout
    counts its attempts."""
    now = engine.clock.now()
    record_attempt_row(
        engine.db, PayoutAttempt, {"payout_id": payout_id, "attempt_no": attempt_no},
        status=status, at=now, adapter=adapter, detail=detail,
    )  # fmt: skip
    with Session(engine.db) as s, s.begin():
        s.execute(
            update(Payout)
            .where(col(Payout.id) == payout_id, col(Payout.attempts) < attempt_no)
            .values(attempts=attempt_no)
        )


def settle(engine: CaseEngine, payout: Payout, reference: str, actor: Actor) -> None:
    """The case is paid: one engine transaction marks the payout and the case."""
    engine.fire(
        payout.case_id,
        "record_payment",
        actor=actor,
        payload={"external_ref": reference},
        request_key=f"paid:{payout.idempotency_key}",
    )


def give_up(engine: CaseEngine, payout: Payout, reason: str) -> bool:
    """Mark the payout failed and open an incident for an operator (once)."""
    with Session(engine.db) as s, s.begin():
        row = s.get(Payout, payout.id)
        assert row is not None
        check(PAYOUT_MOVES, row.status, PayoutStatus.FAILED)
        row.status = PayoutStatus.FAILED
        s.add(row)
        return raise_incident(
            s,
            ref=f"payout:{payout.idempotency_key}",
            kind="payout_failed",
            case_id=payout.case_id,
            message=f"拨付失败，已重试{row.attempts}次：{reason}",
            now=engine.clock.now(),
        )


def attempts_of(engine: CaseEngine, payout_id: int) -> list[PayoutAttempt]:
    with Session(engine.db) as s:
        return list(
            s.exec(
                select(PayoutAttempt)
                .where(col(PayoutAttempt.payout_id) == payout_id)
                .order_by(col(PayoutAttempt.attempt_no))
            ).all()
        )


# ---------------------------------------------------------------- http adapter
def pay_one(engine: CaseEngine, treasury: HttpTreasury, payout_id: int, actor: Actor) -> str:
    """Pay one payout at most once; returns paid | failed | skipped (paid, given up, or being
    paid by another run right now: a run whose lock was lost with its session goes on)."""
    with claimed(engine.db, f"payout:{payout_id}") as mine:
        return _pay_claimed(engine, treasury, payout_id, actor) if mine else "skipped"


def _pay_claimed(engine: CaseEngine, treasury: HttpTreasury, payout_id: int, actor: Actor) -> str:
    settings = engine.settings
    with Session(engine.db) as s:
        payout = s.get(Payout, payout_id)
        assert payout is not None and payout.id is not None
        if payout.status in (PayoutStatus.PAID, PayoutStatus.FAILED):
            return "skipped"
        instr = instruction(s, payout)
    attempts = attempts_of(engine, payout.id)
    last = attempts[-1] if attempts else None
    if last is not None and last.status in (AttemptStatus.PAID, AttemptStatus.FOUND):
        settle(engine, payout, last.detail, actor)  # crashed after the treasury answered
        return "paid"
    if (
        last is not None and last.status == AttemptStatus.SENDING
    ):  # outcome never learned: ask first
        reference = treasury.lookup(payout.idempotency_key)
        if reference is not None:
            record_attempt(
                engine, payout.id, last.attempt_no, "http", AttemptStatus.FOUND, reference
            )
            settle(engine, payout, reference, actor)
            return "paid"
        record_attempt(
            engine,
            payout.id,
            last.attempt_no,
            "http",
            "failed",
            "not received by the treasury (run interrupted)",
        )
    n = len(attempts)
    reason = "重试次数已用完"
    with Session(engine.db) as s:
        budget = attempt_budget(s, f"payout:{payout.idempotency_key}", settings.payout_max_attempts)
    while n < budget:
        n += 1
        record_attempt(engine, payout.id, n, "http", AttemptStatus.SENDING)
        try:
            reference = treasury.pay(instr)
        except TreasuryError as exc:
            record_attempt(engine, payout.id, n, "http", AttemptStatus.FAILED, str(exc))
            reason = str(exc)
            if not exc.transient:
                break
            if n < budget:
                time.sleep(settings.payout_retry_seconds * 2 ** (n - 1))
            continue
        record_attempt(engine, payout.id, n, "http", AttemptStatus.PAID, reference)
        settle(engine, payout, reference, actor)
        return "paid"
    give_up(engine, payout, reason)
    return "failed"


@task(retries=2, retry_delay_seconds=2)
def pay_chunk(payout_ids: list[int], endpoint: str, account: str) -> dict[str, int]:
    engine = case_engine()
    actor = engine.actor(account)
    treasury = HttpTreasury(endpoint)
    out = {"paid": 0, "failed": 0, "skipped": 0}
    for payout_id in payout_ids:
        out[pay_one(engine, treasury, payout_id, actor)] += 1
    return out


# ---------------------------------------------------------------- file adapter
@task(retries=2, retry_delay_seconds=2)
def write_payment_files(out_dir: str) -> dict[str, Any]:
    """Finish any batch a crash left half-written, then write one for the new orders."""
    engine = case_engine()
    treasury = FileTreasury(Path(out_dir))
    files: list[str] = []
    sent = 0
    with Session(engine.db) as s:
        unfinished = [
            b.id
            for b in s.exec(
                select(PaymentBatch).where(col(PaymentBatch.status) == BatchStatus.WRITING)
            ).all()
        ]
    for batch_id in unfinished:
        assert batch_id is not None
        files.append(str(_write_batch(engine, treasury, batch_id)))
    with Session(engine.db) as s, s.begin():
        new = list(
            s.exec(
                select(Payout)
                .where(col(Payout.status) == PayoutStatus.ORDERED, col(Payout.batch_ref).is_(None))
                .order_by(col(Payout.id))
            ).all()
        )
        if new:
            now = engine.clock.now()
            ref = f"PB-{now:%Y%m%d%H%M%S}-{uuid.uuid4().hex[:8]}"
            batch = PaymentBatch(
                batch_ref=ref,
                status=BatchStatus.WRITING,
                path=str(treasury.path_for(ref)),
                payout_ids=[p.id for p in new if p.id is not None],
                created_at=now,
            )
            s.add(batch)
            for p in new:
                p.batch_ref = ref
                s.add(p)
            s.flush()
            new_batch_id = batch.id
    if new:
        assert new_batch_id is not None
        files.append(str(_write_batch(engine, treasury, new_batch_id)))
        sent = len(new)
    return {"files": files, "sent": sent}


def _write_batch(engine: CaseEngine, treasury: FileTreasury, batch_id: int) -> Path:
    """Write (or rewrite, identically) a recorded batch, then mark it and its payouts sent.

    Set-wise: the batch's payouts are read with their cases and payees a slice at a time and
    marked sent with executemany, not a query per payout (a 10,000-payout batch made 50,000
    round trips before; bench/prefect_cost.py).
    """
    with Session(engine.db) as s:
        batch = s.get(PaymentBatch, batch_id)
        assert batch is not None
        instructions: list[PaymentInstruction] = []
        for ids in chunked(batch.payout_ids, IN_LIST):
            rows = s.exec(
                select(Payout, Case.case_no, Applicant.identity, Applicant.name)
                .join(Case, col(Case.id) == col(Payout.case_id))
                .join(Applicant, col(Applicant.id) == col(Case.applicant_id))
                .where(col(Payout.id).in_(ids))
            ).all()
            found = {p.id: (p, no, payee, name) for p, no, payee, name in rows}
            instructions.extend(
                PaymentInstruction(
                    idempotency_key=p.idempotency_key,
                    case_no=no or "",
                    payee=payee,
                    payee_name=name,
                    amount=p.amount,
                    payer_bureau=p.payer_bureau,
                )
                for p, no, payee, name in (found[i] for i in ids if i in found)
            )
    path = treasury.write_batch(batch.batch_ref, instructions)
    now = engine.clock.now()
    with Session(engine.db) as s, s.begin():
        s.exec(
            update(PaymentBatch)
            .where(col(PaymentBatch.id) == batch_id)
            .values(status=BatchStatus.WRITTEN)
        )
        for ids in chunked(batch.payout_ids, IN_LIST):
            ordered = s.exec(
                select(Payout.id, Payout.attempts)
                .where(col(Payout.id).in_(ids), col(Payout.status) == PayoutStatus.ORDERED)
                .with_for_update()
            ).all()
            if not ordered:
                continue
            s.connection().execute(
                update(Payout.__table__)  # type: ignore[attr-defined]
                .where(Payout.__table__.c.id == bindparam("pid"))  # type: ignore[attr-defined]
                .values(status=PayoutStatus.SENT, attempts=bindparam("attempt_no")),
                [{"pid": pid, "attempt_no": n + 1} for pid, n in ordered],
            )
            s.connection().execute(
                insert(PayoutAttempt.__table__),  # type: ignore[attr-defined]
                [
                    dict(
                        payout_id=pid, attempt_no=n + 1, adapter="file", status=AttemptStatus.SENT,
                        detail=batch.batch_ref, at=now,
                    )
                    for pid, n in ordered
                ],
            )  # fmt: skip
    return path


# ---------------------------------------------------------------- the flow
@flow(name="payout", log_prints=False)
def payout_flow(params: PayoutParams | None = None) -> PayoutSummary:
    """Pay every ordered payout: by instruction file, or through the treasury's HTTP API.

    One payout run at a time across all workers (flows/singleton.py): a second run that starts
    while one is paying returns at once with `busy`, and the next scheduled run carries on.
    """
    params = params or PayoutParams()
    settings = get_settings()
    adapter = params.adapter or settings.treasury_adapter
    with exclusive(engine_for(settings.database_url), "payout") as mine:
        if not mine:
            return PayoutSummary(adapter=adapter, busy=True)
        return _pay_all(params, adapter)


def _pay_all(params: PayoutParams, adapter: str) -> PayoutSummary:
    settings = get_settings()
    summary = PayoutSummary(adapter=adapter)
    if adapter == "file":
        out = write_payment_files(str(params.out_dir or settings.payment_dir))
        summary.files, summary.sent_in_files = out["files"], out["sent"]
        summary.considered = out["sent"]
        return summary
    endpoint = params.endpoint or settings.treasury_url
    if not endpoint:
        raise ValueError("the http treasury adapter needs RELIEF_TREASURY_URL or --endpoint")
    engine = case_engine()
    with Session(engine.db) as s:
        ids = [
            p.id
            for p in s.exec(
                select(Payout)
                .where(col(Payout.status).in_(WAITING_PAYOUTS))
                .order_by(col(Payout.id))
            ).all()
            if p.id is not None
        ]
    summary.considered = len(ids)
    chunks = chunked(ids, settings.chunk_size)
    for part in run_chunks(pay_chunk, chunks, endpoint, params.account):
        summary.paid += part["paid"]
        summary.failed += part["failed"]
    with Session(engine.db) as s:
        summary.incidents = len(
            s.exec(select(Incident.id).where(col(Incident.status) == "open")).all()
        )
    return summary
