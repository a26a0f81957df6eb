"""`relief demo` — a realistic batch on a fresh SQLite file, taken through every stage.

The batch (cli/data/demo_batch.json) holds all four types: grants, rejections, a chain with
three stores, a building whose second application finds its 1,000,000 cap used up, a loan
case whose reviewer asks for more information, and late or out-of-scope filings. The demo
plays the bureaus: each reviewer passes a case the rules allow and fails one they refuse.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select
from sqlmodel import Session

from models.db import make_engine, migrate
from models.settings import Settings
from models.tables import Case, Notice, Payout, ReviewTask
from states.civil_dates import SHANGHAI
from states.clock import Clock
from states.engine import CaseEngine, TransitionRefused
from states.labels import state_zh
from states.rules import GRANTING, Decision

BATCH = Path(__file__).parent / "data" / "demo_batch.json"
DEMO_NOW = datetime(2023, 1, 6, 9, 30, tzinfo=SHANGHAI)  # after every filing in the batch
MORE_INFO_REF = "LOAN-01"

console = Console()


def run_demo(database: Path) -> dict[str, Any]:
    """Build the demo database afresh, run the batch, print and return the summary."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    url = f"sqlite:///{database}"
    migrate(url)
    engine = CaseEngine(
        make_engine(url), settings=Settings(database_url=url), clock=Clock(DEMO_NOW)
    )
    batch = json.loads(BATCH.read_text(encoding="utf-8"))
    refs: dict[int, str] = {}
    for item in batch:
        for result in engine.submit(
            item["application"], actor="operator:demo-import", request_key=f"demo:{item['ref']}"
        ):
            refs[result.case_id] = item["ref"]
    for case_id, ref in refs.items():
        _play_bureaus(engine, case_id, more_info=(ref == MORE_INFO_REF))
    summary = _summary(engine)
    _print(summary)
    console.print(f"数据库 database: {database}")
    return summary


def _open_tasks(engine: CaseEngine, case_id: int) -> list[ReviewTask]:
    with Session(engine.db) as s:
        stmt = select(ReviewTask).where(ReviewTask.case_id == case_id, ReviewTask.status == "open")
        return list(s.execute(stmt).scalars())


def _case(engine: CaseEngine, case_id: int) -> Case:
    with Session(engine.db) as s:
        case = s.get(Case, case_id)
        assert case is not None
        return case


def _play_bureaus(engine: CaseEngine, case_id: int, *, more_info: bool) -> None:
    """Each bureau acts as a careful reviewer would: on the rules' reasons."""
    case = _case(engine, case_id)
    allowed = Decision(case.decision) in GRANTING
    failed = [c["reason_zh"] for c in case.assessment["checks"] if not c["passed"]]
    if more_info and case.state == "under_review":
        engine.fire(
            case_id,
            "request_info",
            actor="reviewer:finance_office",
            payload={"items": ["2022年贷款利息支付凭证（银行盖章）"]},
        )
        engine.fire(
            case_id,
            "supply_info",
            actor="applicant",
            payload={"facts": {"eligible_interest": "480000"}},
        )
    for task in _open_tasks(engine, case_id):
        if task.kind == "review":
            assert task.id is not None
            engine.decide_task(
                task.id,
                decision="pass" if allowed else "fail",
                actor=f"reviewer:{task.bureau_code}",
                reason=None if allowed else "；".join(failed),
            )
    if _case(engine, case_id).state == "awaiting_confirmation":
        engine.fire(case_id, "confirm", actor="confirmer")
    if _case(engine, case_id).state in ("under_review", "confirmed"):
        try:
            engine.fire(case_id, "approve", actor="decider")
        except TransitionRefused as refused:
            reason = "；".join(failed or refused.reasons)
            engine.fire(case_id, "reject", actor="decider", payload={"reason": reason})


def _summary(engine: CaseEngine) -> dict[str, Any]:
    with Session(engine.db) as s:
        states = Counter(s.execute(select(Case.state)).scalars())
        granted = s.execute(select(Case.amount_granted)).scalars()
        payouts = list(s.execute(select(Payout)).scalars())
        notices = s.execute(select(func.count()).select_from(Notice)).scalar_one()
    total_granted = sum((g for g in granted if g is not None), Decimal("0.00"))
    return {
        "cases": sum(states.values()),
        "by_state": dict(states),
        "granted": total_granted,
        "payout_ordered": sum((p.amount for p in payouts), Decimal("0.00")),
        "payouts": len(payouts),
        "notices": notices,
    }


def _print(summary: dict[str, Any]) -> None:
    table = Table(title="relief demo — cases by state")
    table.add_column("state")
    table.add_column("状态")
    table.add_column("cases", justify="right")
    for state, n in sorted(summary["by_state"].items()):
        table.add_row(state, state_zh(state), str(n))
    console.print(table)
    console.print(
        f"cases {summary['cases']} · granted {summary['granted']} 元 · "
        f"payouts ordered {summary['payouts']} ({summary['payout_ordered']} 元) · "
        f"notices in outbox {summary['notices']}"
    )
