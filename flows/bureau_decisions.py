"""审核、确认、决定 — a batch of bureau actions (a section's spreadsheet) applied to cases.

A bureau decision usually arrives one at a time through the API or `relief review`; this flow
takes many at once: a reviewer's own spreadsheet. Every row is decided by the account that
starts the flow (the engine checks each row's task, section and separation of duties as for
any other door); a row whose `actor` names someone else is refused. Each row is one engine
call with the request key `<batch>:<row>`, so a re-run repeats nothing. Rows: `case_no, action,
unit, reason, amount, items` where action is review_pass | review_fail | confirm | approve |
reject | request_info.
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
from models.settings import get_settings
from models.tables import Case, ReviewTask
from states.actors import Actor
from states.engine import CaseEngine, FireResult
from states.errors import EngineError

ACTIONS = {"review_pass", "review_fail", "confirm", "approve", "reject", "request_info"}


class DecisionsParams(BaseModel):
    file: Path = Field(description="JSON or CSV rows of bureau actions")
    batch_id: str | None = None
    account: str = Field(description="the reviewer whose decisions these are")


class DecisionsSummary(BaseModel):
    batch_id: str
    rows: int
    applied: int = 0
    replayed: int = 0
    refused: list[dict[str, Any]] = Field(default_factory=list)


def apply_action(engine: CaseEngine, row: dict[str, Any], key: str, actor: Actor) -> FireResult:
    """One bureau action through the engine, as `actor`."""
    action = row.get("action")
    if action not in ACTIONS:
        raise EngineError(f"未知的操作“{action}”", f"unknown action {action!r}")
    named = row.get("actor")
    if named and named != actor.username:
        raise EngineError(
            f"本行的办理人“{named}”不是提交本批的账户“{actor.username}”，不能代他人办理",
            f"row names {named!r}, but the batch is {actor.username!r}'s",
        )
    previous = engine.replay(key, actor=actor)
    if previous is not None:
        return previous
    with Session(engine.db) as s:
        case = s.exec(select(Case).where(col(Case.case_no) == row.get("case_no"))).first()
        if case is None or case.id is None:
            raise EngineError(f"案件“{row.get('case_no')}”不存在", "no such case")
        tasks = s.exec(
            select(ReviewTask).where(
                col(ReviewTask.case_id) == case.id,
                col(ReviewTask.kind) == "review",
                col(ReviewTask.status) == "open",
            )
        ).all()
    if action in ("review_pass", "review_fail"):
        unit = row.get("unit") or actor.unit
        match = [t for t in tasks if f"{t.bureau_code}.{t.section_code}" == unit or t.unit == unit]
        if not match:
            raise EngineError(
                f"案件{row.get('case_no')}没有“{unit}”的待办审核任务",
                f"no open review task for unit {unit!r}",
            )
        assert match[0].id is not None
        return engine.decide_task(
            match[0].id,
            decision="pass" if action == "review_pass" else "fail",
            actor=actor,
            reason=row.get("reason"),
            request_key=key,
        )
    payload: dict[str, Any] = {}
    if row.get("reason"):
        payload["reason"] = row["reason"]
    if row.get("amount") not in (None, ""):
        payload["amount"] = str(row["amount"])
    if row.get("items"):
        items = row["items"]
        payload["items"] = items if isinstance(items, list) else str(items).split(";")
    return engine.fire(case.id, action, actor=actor, payload=payload, request_key=key)


@task(retries=2, retry_delay_seconds=2)
def apply_chunk(
    rows: list[tuple[int, dict[str, Any]]], batch_id: str, account: str
) -> dict[str, Any]:
    engine = case_engine()
    actor = engine.actor(account)
    out: dict[str, Any] = {"applied": 0, "replayed": 0, "refused": []}
    for row_no, row in rows:
        try:
            # a reviewer's own keys: the same sheet run by a colleague is their own request
            key = bounded_key(actor.username, batch_id, str(row_no))
            result = apply_action(engine, row, key, actor)
        except (EngineError, InvalidApplication) as exc:
            message = exc.message_zh if isinstance(exc, EngineError) else str(exc)
            out["refused"].append(
                {"row": row_no, "case_no": row.get("case_no"), "message": message}
            )
            continue
        out["replayed" if result.replayed else "applied"] += 1
    return out


@flow(name="bureau-decisions", log_prints=False)
def bureau_decisions_flow(params: DecisionsParams) -> DecisionsSummary:
    """Apply a batch of review, confirmation and decision actions."""
    records = read_records(params.file, key="decisions")
    batch_id = params.batch_id or (
        f"{params.file.stem}-{hashlib.sha256(params.file.read_bytes()).hexdigest()[:12]}"
    )
    rows = list(enumerate(records, start=1))
    summary = DecisionsSummary(batch_id=batch_id, rows=len(rows))
    chunks = chunked(rows, get_settings().chunk_size)
    futures = [apply_chunk.submit(quote(c), batch_id, params.account) for c in chunks]
    for fut in futures:
        part = fut.result()
        summary.applied += part["applied"]
        summary.replayed += part["replayed"]
        summary.refused += part["refused"]
    return summary
