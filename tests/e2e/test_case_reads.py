"""The command line's Core reads of a case (models/case_reads.py) give what the ORM gives:
the same values, Decimal money, aware times, on SQLite and PostgreSQL; and `relief status`
answers without loading the ORM, Alembic or Jinja."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import drive
from sqlalchemy import select
from sqlmodel import Session

from models.case_reads import case_events, case_tasks, find_case
from models.tables import CaseEvent, ReviewTask
from states.engine import CaseEngine

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = json.loads((ROOT / "docs/examples/loan_subsidy.json").read_text(encoding="utf-8"))


def test_core_reads_match_the_orm(engine: CaseEngine) -> None:
    (filed,) = drive.submit(engine, EXAMPLE)
    drive.decide(engine, filed.case_id, approve=True)
    orm = drive.case(engine, filed.case_id)

    for ref in (str(orm.case_no), str(orm.id)):
        row = find_case(engine.db, ref)
        assert row is not None
        for column in row._fields:
            assert getattr(row, column) == getattr(orm, column), column
    assert isinstance(row.amount_ceiling, Decimal) and row.amount_ceiling == orm.amount_ceiling
    assert row.amount_granted == orm.amount_granted is not None

    with Session(engine.db) as s:
        tasks = (
            s.execute(
                select(ReviewTask).where(ReviewTask.case_id == orm.id).order_by(ReviewTask.id)
            )
            .scalars()
            .all()
        )
        events = (
            s.execute(select(CaseEvent).where(CaseEvent.case_id == orm.id).order_by(CaseEvent.seq))
            .scalars()
            .all()
        )
    core_tasks = case_tasks(engine.db, filed.case_id)
    assert [(t.id, t.kind, t.unit, t.status, t.due_on, t.decision) for t in core_tasks] == [
        (t.id, t.kind, t.unit, t.status, t.due_on, t.decision) for t in tasks
    ]
    core_events = case_events(engine.db, filed.case_id)
    assert len(core_events) == len(events) >= 4
    for c, o in zip(core_events, events, strict=True):
        assert (c.seq, c.trigger, c.from_state, c.to_state, c.actor, c.payload) == (
            o.seq, o.trigger, o.from_state, o.to_state, o.actor, o.payload
        )  # fmt: skip
        assert c.at == o.at and c.at.utcoffset() is not None


def test_unknown_and_hostile_references_find_nothing(engine: CaseEngine) -> None:
    drive.submit(engine, EXAMPLE)
    for ref in ("DC-2022-999999", "0", "9" * 40, "'; DROP TABLE relief_case; --", "١", "", "\x00"):
        assert find_case(engine.db, ref) is None, ref
    assert find_case(engine.db, "DC-2022-000001") is not None  # the table is still there


def test_status_answers_without_the_orm(sqlite_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "RELIEF_DATABASE_URL": sqlite_url}
    subprocess.run(
        [sys.executable, "-m", "cli.main", "account", "create", "op", "--role", "operator"],
        cwd=ROOT, env=env, check=True, capture_output=True,
    )  # fmt: skip
    example = tmp_path / "case.json"
    example.write_text(json.dumps(EXAMPLE), encoding="utf-8")
    subprocess.run(
        [sys.executable, "-m", "cli.main", "submit", str(example), "--as", "op"],
        cwd=ROOT, env=env, check=True, capture_output=True,
    )  # fmt: skip
    probe = """
import runpy, sys
sys.argv = ["relief", "status", "1", "--json"]
try:
    runpy.run_module("cli.main", run_name="__main__")
except SystemExit:
    pass
heavy = ("sqlmodel", "alembic", "jinja2", "cn2an", "transitions", "prefect")
print("HEAVY", [m for m in heavy if m in sys.modules])
"""
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=env, check=True, capture_output=True,
        text=True,
    ).stdout  # fmt: skip
    assert '"case_no": "DC-' in out and '"tasks": [' in out, out
    assert "HEAVY []" in out, out
