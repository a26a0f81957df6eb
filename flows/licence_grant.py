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
from prefect.utilities.annotations import quote
from pydantic import BaseModel, Field

from flows.batch_files import read_records
from flows.common import case_engine, chunked
from models.input_errors import InvalidApplication
from models.settings import get_settings
from states.actors import SYSTEM_ACCOUNT
from states.errors import EngineError


class LicenceGrantParams(BaseModel):
    file: Path = Field(description="register of licences, JSON or CSV")
    account: str = Field(
        default=SYSTEM_ACCOUNT,
        description="the account the flow acts as (an operator's, or system)",
    )


class LicenceGrantSummary(BaseModel):
    licences: int
    granted: int = 0
    already_granted: int = 0
    not_in_scope: list[dict[str, Any]] = Field(default_factory=list)


@task(retries=2, retry_delay_seconds=2)
def grant_chunk(rows: list[tuple[int, dict[str, Any]]], account: str) -> dict[str, Any]:
    engine = case_engine()
    actor = engine.actor(account)
    out: dict[str, Any] = {"granted": 0, "already": 0, "skipped": []}
    for row_no, data in rows:
        data = {"type": "licence_extension", **data}
        number = (data.get("licence") or {}).get("licence_no") or f"row{row_no}"
        try:
            [result] = engine.grant_ex_officio(data, actor=actor, request_key=f"licence:{number}")
        except (EngineError, InvalidApplication) as exc:
            message = exc.message_zh if isinstance(exc, EngineError) else str(exc)
            out["skipped"].append({"row": row_no, "licence_no": number, "reason": message})
            continue
        out["already" if result.replayed else "granted"] += 1
    return out


@flow(name="licence-grant", log_prints=False)
def licence_grant_flow(params: LicenceGrantParams) -> LicenceGrantSummary:
    """Extend every non-special food production licence in the register by six months."""
    rows = list(enumerate(read_records(params.file, key="licences"), start=1))
    summary = LicenceGrantSummary(licences=len(rows))
    chunks = chunked(rows, get_settings().chunk_size)
    for fut in [grant_chunk.submit(quote(c), params.account) for c in chunks]:
        part = fut.result()
        summary.granted += part["granted"]
        summary.already_granted += part["already"]
        summary.not_in_scope += part["skipped"]
    return summary
