"""收件 — intake of a batch of applications: validate, submit, route to the bureaus.

A chunk of rows is filed as one set through the engine (one transaction for the chunk, every
row checked on its own). Each row's outcome is kept in `intake_record`: a filed row's record is
written in the same transaction as its cases, an invalid row's with its field errors, so no
row is lost and a second run of the same batch does nothing twice (request key `<batch>:<row>`).
The flow acts as the account that started it (an intake officer or an operator). A row filed
on paper earlier carries its receipt (`receipt.received_at`, `receipt.reason`,
`receipt.evidence`): a 补录, which the engine allows those two roles only; without it the filing
date is the moment the row is submitted.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from prefect import flow, task
from pydantic import BaseModel, Field
from sqlmodel import Session, col, select

from base.identifiers import bounded_key
from flows.batch_files import read_records
from flows.common import Tally, case_engine, chunked, run_chunks, total
from models.input_errors import FieldError, InvalidApplication
from models.receipts import parse_receipt
from models.settings import get_settings
from models.tables import IntakeRecord
from states.errors import EngineError
from states.unit_of_work import insert_rows
from states.work import IntakeRow, SubmitItem


class IntakeParams(BaseModel):
    file: Path = Field(description="JSON or CSV batch of applications")
    batch_id: str | None = Field(default=None, description="default: name and content hash")
    account: str = Field(description="who submits: an intake officer's or an operator's account")


class IntakeSummary(Tally):
    batch_id: str = ""
    rows: int = 0
    submitted: int = 0
    invalid: int = 0
    already_done: int = 0
    cases: int = 0
    by_state: dict[str, int] = Field(default_factory=dict)


def batch_id_for(path: Path) -> str:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    return f"{path.stem}-{digest}"


@task(retries=2, retry_delay_seconds=2)
def submit_chunk(
    rows: list[tuple[int, dict[str, Any]]], batch_id: str, account: str
) -> IntakeSummary:
    """File a chunk of rows as one set; record every row's outcome."""
    engine = case_engine()
    actor = engine.actor(account)
    out = IntakeSummary()
    with Session(engine.read_db) as s:
        done = set(
            s.exec(
                select(IntakeRecord.row_no).where(
                    col(IntakeRecord.batch_id) == batch_id,
                    col(IntakeRecord.row_no).in_([n for n, _ in rows]),
                )
            ).all()
        )
    items: list[tuple[int, dict[str, Any], SubmitItem]] = []
    invalid: list[tuple[int, dict[str, Any], list[FieldError]]] = []
    for row_no, data in rows:
        if row_no in done:
            out.already_done += 1
            continue
        application = dict(data)
        given = application.pop("receipt", None)
        try:
            receipt = parse_receipt(given, now=engine.clock.now()) if given is not None else None
        except InvalidApplication as exc:
            invalid.append((row_no, data, exc.errors))
            continue
        item = SubmitItem(
            application, actor, request_key=bounded_key(batch_id, str(row_no)),
            receipt=receipt, intake=IntakeRow(batch_id, row_no, data),
        )  # fmt: skip
        items.append((row_no, data, item))
    outcome = engine.submit_many([item for _, _, item in items])
    for index, (row_no, data, _) in enumerate(items):
        if index in outcome.done:
            results = outcome.done[index]
            if all(r.replayed for r in results):
                out.already_done += 1
                continue
            out.submitted += 1
            out.cases += len(results)
            for r in results:
                out.by_state[r.state] = out.by_state.get(r.state, 0) + 1
        else:
            exc = outcome.refused[index]
            invalid.append((row_no, data, errors_of(exc)))
    if invalid:
        now = engine.clock.now()
        with Session(engine.db) as s, s.begin():
            insert_rows(
                s,
                [
                    (IntakeRecord, {"batch_id": batch_id, "row_no": row_no, "status": "invalid",
                                    "case_ids": [], "errors": [e.as_dict() for e in errors],
                                    "raw": data, "at": now})
                    for row_no, data, errors in invalid
                ],
            )  # fmt: skip
        out.invalid += len(invalid)
    return out


def errors_of(exc: EngineError | InvalidApplication) -> list[FieldError]:
    if isinstance(exc, InvalidApplication):
        return exc.errors
    return [FieldError("(申请书)", exc.code, exc.message_zh, exc.message_en)]


@flow(name="intake", log_prints=False)
def intake_flow(params: IntakeParams) -> IntakeSummary:
    """Validate and submit a batch of applications in chunks."""
    records = read_records(params.file)
    batch_id = params.batch_id or batch_id_for(params.file)
    rows = list(enumerate(records, start=1))
    chunks = chunked(rows, get_settings().chunk_size)
    parts = run_chunks(submit_chunk, chunks, batch_id, params.account)
    return total(IntakeSummary(batch_id=batch_id, rows=len(rows)), parts)
