"""依职权顺延 — the automatic +6-month extension of every food production licence in scope.

No application: the authority grants it and tells each licensee (the document's 无感推送).
The input is the register of licences (JSON or CSV: licensee.uscc, licensee.name,
licence.licence_no, licence.type, licence.special_food, licence.expiry). A licence the rules do
not extend ex officio is reported, not granted. Request key `licence:<licence_no>`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, task
from pydantic import BaseModel, Field

from flows.batch_files import read_records
from flows.common import Tally, case_engine, chunked, run_chunks, total
from models.settings import get_settings
from states.actors import SYSTEM_ACCOUNT
from states.errors import EngineError
from states.work import SubmitItem


class LicenceGrantParams(BaseModel):
    file: Path = Field(description="register of licences, JSON or CSV")
    account: str = Field(
        default=SYSTEM_ACCOUNT,
        description="the account the flow acts as (an operator's, or system)",
    )


class LicenceGrantSummary(Tally):
    licences: int = 0
    granted: int = 0
    already_granted: int = 0
    not_in_scope: list[dict[str, Any]] = Field(default_factory=list)


@task(retries=2, retry_delay_seconds=2)
def grant_chunk(rows: list[tuple[int, dict[str, Any]]], account: str) -> LicenceGrantSummary:
    """Grant a chunk of the register as one set."""
    engine = case_engine()
    actor = engine.actor(account)
    out = LicenceGrantSummary()
    numbers: list[str] = []
    items: list[SubmitItem] = []
    for row_no, data in rows:
        data = {"type": "licence_extension", **data}
        number = (data.get("licence") or {}).get("licence_no") or f"row{row_no}"
        numbers.append(number)
        items.append(SubmitItem(data, actor, request_key=f"licence:{number}"))
    outcome = engine.grant_ex_officio_many(items)
    for index, ((row_no, _), number) in enumerate(zip(rows, numbers, strict=True)):
        if index in outcome.done:
            [result] = outcome.done[index]
            out.already_granted += int(result.replayed)
            out.granted += int(not result.replayed)
        else:
            exc = outcome.refused[index]
            message = exc.message_zh if isinstance(exc, EngineError) else str(exc)
            out.not_in_scope.append({"row": row_no, "licence_no": number, "reason": message})
    return out


@flow(name="licence-grant", log_prints=False)
def licence_grant_flow(params: LicenceGrantParams) -> LicenceGrantSummary:
    """Extend every non-special food production licence in the register by six months."""
    rows = list(enumerate(read_records(params.file, key="licences"), start=1))
    chunks = chunked(rows, get_settings().chunk_size)
    parts = run_chunks(grant_chunk, chunks, params.account)
    return total(LicenceGrantSummary(licences=len(rows)), parts)
