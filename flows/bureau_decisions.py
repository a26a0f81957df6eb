"""审核、确认、决定 — a batch of bureau actions (a reviewer's spreadsheet) applied to cases.

A bureau decision usually arrives one at a time through the API or `relief review`; this flow
takes many at once. Every row is decided by the account that starts the flow (the engine checks
each row's task, section and separation of duties as for any other door); a row whose `actor`
names someone else is refused. A chunk's rows go to the engine as sets (consecutive reviews as
one, consecutive other actions as another), each row with the request key
`<account>:<batch>:<row>`, so a re-run repeats nothing. Rows: `case_no, action, unit, reason,
amount, items` where action is review_pass | review_fail | confirm | approve | reject |
request_info.
"""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path
from typing import Any

from prefect import flow, task
from pydantic import BaseModel, Field
from sqlmodel import Session, col, select

from base.identifiers import bounded_key
from flows.batch_files import read_records
from flows.common import Tally, case_engine, chunked, run_chunks, total
from models.settings import get_settings
from models.statuses import TaskStatus
from models.tables import Case, ReviewTask
from states.actors import Actor
from states.engine import CaseEngine
from states.errors import EngineError
from states.work import FireItem, ReviewItem

ACTIONS = {"review_pass", "review_fail", "confirm", "approve", "reject", "request_info"}


class DecisionsParams(BaseModel):
    file: Path = Field(description="JSON or CSV rows of bureau actions")
    batch_id: str | None = None
    account: str = Field(description="the reviewer whose decisions these are")


class DecisionsSummary(Tally):
    batch_id: str = ""
    rows: int = 0
    applied: int = 0
    replayed: int = 0
    refused: list[dict[str, Any]] = Field(default_factory=list)


Item = ReviewItem | FireItem


def items_of(
    engine: CaseEngine, rows: list[tuple[int, dict[str, Any]]], batch_id: str, actor: Actor
) -> tuple[list[tuple[int, Item]], list[tuple[int, str, str]]]:
    """Each row as the engine item it asks for; a row that cannot be one, with why."""
    numbers = sorted({str(r.get("case_no")) for _, r in rows})
    with Session(engine.read_db) as s:
        cases = {
            c.case_no: c.id
            for c in s.exec(select(Case).where(col(Case.case_no).in_(numbers))).all()
        }
        open_reviews = s.exec(
            select(ReviewTask).where(
                col(ReviewTask.case_id).in_([i for i in cases.values() if i is not None]),
                col(ReviewTask.kind) == "review",
                col(ReviewTask.status) == TaskStatus.OPEN,
            )
        ).all()
    items: list[tuple[int, Item]] = []
    refused: list[tuple[int, str, str]] = []
    for row_no, row in rows:
        case_no, action = str(row.get("case_no")), row.get("action")
        key = bounded_key(actor.username, batch_id, str(row_no))  # the reviewer's own keys
        named = row.get("actor")
        if action not in ACTIONS:
            refused.append((row_no, case_no, f"未知的操作“{action}”"))
        elif named and named != actor.username:
            refused.append(
                (row_no, case_no,
                 f"本行的办理人“{named}”不是提交本批的账户“{actor.username}”，不能代他人办理")
            )  # fmt: skip
        elif cases.get(case_no) is None:
            refused.append((row_no, case_no, "案件不存在"))
        elif action in ("review_pass", "review_fail"):
            unit = row.get("unit") or actor.unit
            match = [
                t for t in open_reviews
                if t.case_id == cases[case_no]
                and (f"{t.bureau_code}.{t.section_code}" == unit or t.unit == unit)
            ]  # fmt: skip
            if not match or match[0].id is None:
                refused.append((row_no, case_no, f"案件{case_no}没有“{unit}”的待办审核任务"))
                continue
            decision = "pass" if action == "review_pass" else "fail"
            items.append((row_no, ReviewItem(match[0].id, decision, actor, row.get("reason"), key)))
        else:
            items.append((row_no, FireItem(cases[case_no], action, actor, payload_of(row),
                                           request_key=key)))  # fmt: skip
    return items, refused


def payload_of(row: dict[str, Any]) -> dict[str, Any]:
    payload: dict[str, Any] = {}
    if row.get("reason"):
        payload["reason"] = row["reason"]
    if row.get("amount") not in (None, ""):
        payload["amount"] = str(row["amount"])
    if row.get("items"):
        items = row["items"]
        payload["items"] = items if isinstance(items, list) else str(items).split(";")
    return payload


@task(retries=2, retry_delay_seconds=2)
def apply_chunk(
    rows: list[tuple[int, dict[str, Any]]], batch_id: str, account: str
) -> DecisionsSummary:
    engine = case_engine()
    actor = engine.actor(account)
    out = DecisionsSummary()
    items, refused = items_of(engine, rows, batch_id, actor)
    case_no = {n: str(r.get("case_no")) for n, r in rows}
    for reviews, group in itertools.groupby(items, key=lambda it: isinstance(it[1], ReviewItem)):
        part = list(group)
        outcome = (
            engine.decide_tasks([i for _, i in part])  # type: ignore[misc]
            if reviews
            else engine.fire_many([i for _, i in part])  # type: ignore[misc]
        )
        for index, (row_no, _) in enumerate(part):
            if index in outcome.done:
                out.replayed += int(outcome.done[index].replayed)
                out.applied += int(not outcome.done[index].replayed)
            else:
                exc = outcome.refused[index]
                message = exc.message_zh if isinstance(exc, EngineError) else str(exc)
                refused.append((row_no, case_no[row_no], message))
    out.refused = [
        {"row": n, "case_no": c, "message": m} for n, c, m in sorted(refused, key=lambda r: r[0])
    ]
    return out


@flow(name="bureau-decisions", log_prints=False)
def bureau_decisions_flow(params: DecisionsParams) -> DecisionsSummary:
    """Apply a batch of review, confirmation and decision actions."""
    records = read_records(params.file, key="decisions")
    batch_id = params.batch_id or (
        f"{params.file.stem}-{hashlib.sha256(params.file.read_bytes()).hexdigest()[:12]}"
    )
    rows = list(enumerate(records, start=1))
    chunks = chunked(rows, get_settings().chunk_size)
    parts = run_chunks(apply_chunk, chunks, batch_id, params.account)
    return total(DecisionsSummary(batch_id=batch_id, rows=len(rows)), parts)
