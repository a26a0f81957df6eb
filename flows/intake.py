"""收件 — intake of a batch of applications: validate, submit, route to the bureaus.

Each row is submitted with the request key `<batch>:<row>`, and each row's outcome (cases made,
or the field errors) is kept in `intake_record`: a second run of the same batch does nothing
twice, and an invalid row is never lost. The flow acts as the account that started it (an
intake officer or an operator). A row filed on paper earlier carries its receipt
(`receipt.received_at`, `receipt.reason`, `receipt.evidence`): a 补录, which the engine allows
those two roles only; without it the filing date is the moment the row is submitted.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.utilities.annotations import quote
from pydantic import BaseModel, Field
from sqlmodel import Session, col, select

from base.identifiers import bounded_key
from flows.batch_files import read_records
from flows.common import case_engine, chunked
from models.input_errors import InvalidApplication
from models.receipts import parse_receipt
from models.settings import get_settings
from models.tables import IntakeRecord
from states.errors import EngineError


class IntakeParams(BaseModel):
    file: Path = Field(description="JSON or CSV batch of applications")
    batch_id: str | None = Field(default=None, description="default: name and content hash")
    account: str = Field(description="who submits: an intake officer's or an operator's account")


class IntakeSummary(BaseModel):
    batch_id: str
    rows: int
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
) -> dict[str, Any]:
    """Submit a chunk of rows, each in its own transaction; record every row's outcome."""
    engine = case_engine()
    actor = engine.actor(account)
    out: dict[str, Any] = {"submitted": 0, "invalid": 0, "already_done": 0, "states": []}
    for row_no, data in rows:
        with Session(engine.db) as s:
            done = s.exec(
                select(IntakeRecord).where(
                    col(IntakeRecord.batch_id) == batch_id, col(IntakeRecord.row_no) == row_no
                )
            ).first()
        if done is not None:
            out["already_done"] += 1
            continue
        record = IntakeRecord(
            batch_id=batch_id, row_no=row_no, status="submitted", raw=data, at=engine.clock.now()
        )
        try:
            application = dict(data)
            given = application.pop("receipt", None)
            receipt = parse_receipt(given, now=engine.clock.now()) if given is not None else None
            results = engine.submit(
                application,
                actor=actor,
                request_key=bounded_key(batch_id, str(row_no)),
                receipt=receipt,
            )
        except InvalidApplication as exc:
            record.status = "invalid"
            record.errors = [e.as_dict() for e in exc.errors]
            out["invalid"] += 1
        except EngineError as exc:
            record.status = "invalid"
            record.errors = [
                {"field": "(申请书)", "rule": exc.code, "message_zh": exc.message_zh,
                 "message_en": exc.message_en}
            ]  # fmt: skip
            out["invalid"] += 1
        else:
            record.case_ids = [r.case_id for r in results]
            out["submitted"] += 1
            out["states"] += [r.state for r in results]
        with Session(engine.db) as s, s.begin():
            s.add(record)
    return out


@flow(name="intake", log_prints=False)
def intake_flow(params: IntakeParams) -> IntakeSummary:
    """Validate and submit a batch of applications in chunks."""
    records = read_records(params.file)
    batch_id = params.batch_id or batch_id_for(params.file)
    rows = list(enumerate(records, start=1))
    futures = [
        submit_chunk.submit(quote(chunk), batch_id, params.account)
        for chunk in chunked(rows, get_settings().chunk_size)
    ]
    summary = IntakeSummary(batch_id=batch_id, rows=len(rows))
    for fut in futures:
        part = fut.result()
        summary.submitted += part["submitted"]
        summary.invalid += part["invalid"]
        summary.already_done += part["already_done"]
        summary.cases += len(part["states"])
        for state in part["states"]:
            summary.by_state[state] = summary.by_state.get(state, 0) + 1
    return summary
