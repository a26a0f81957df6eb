"""The payout process is killed (SIGKILL, a real subprocess) at several points of a batch and
run again: every approved case is paid exactly once, and the treasury never pays a key twice.

The treasury is a real HTTP server that kills the payout process at the k-th POST, before it
records the payment (the payment is lost in flight) or after (the payment is made but relief
never hears the answer). The flow runs for real against the session's Prefect server.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
import scenarios as S
from conftest import make_case_engine
from drive import decide, submit
from sqlmodel import Session, col, select
from treasury_server import Treasury

from models.tables import Case, Incident, Payout, PayoutAttempt
from states.engine import CaseEngine

CASES = 6


@pytest.fixture
def treasury() -> Iterator[Treasury]:
    t = Treasury().start()
    yield t
    t.stop()


def approved_cases(engine: CaseEngine, n: int) -> list[int]:
    ids = []
    for _ in range(n):
        [r] = submit(engine, S.application("RENT-07"))
        assert decide(engine, r.case_id, approve=True).state == "payout_ordered"
        ids.append(r.case_id)
    return ids


def run_payout(db_url: str, api_url: str, endpoint: str, treasury: Treasury) -> int:
    env = {
        **os.environ,
        "RELIEF_DATABASE_URL": db_url,
        "RELIEF_PAYOUT_RETRY_SECONDS": "0",
        "RELIEF_NOW": "2022-12-30T10:00:00+08:00",
        "PREFECT_API_URL": api_url,
    }
    cmd = [
        sys.executable,
        "-c",
        "from cli.main import app; app()",
        "flow",
        "run",
        "payout",
        "--adapter",
        "http",
        "--endpoint",
        endpoint,
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    treasury.victim_pid = proc.pid
    out, _ = proc.communicate(timeout=300)
    treasury.victim_pid = None
    if proc.returncode not in (0, -9):
        raise AssertionError(out.decode(errors="replace"))
    return proc.returncode


def test_killed_payout_runs_pay_each_case_exactly_once(
    db_url: str, prefect_harness: str, treasury: Treasury
) -> None:
    engine = make_case_engine(db_url)
    case_ids = approved_cases(engine, CASES)
    # POST numbers count across runs: kill before recording the 2nd, after recording the 3rd
    # (relief never learns it was paid), and after recording the 6th.
    treasury.kill_at = {2: "before", 4: "after", 7: "after"}
    codes = [run_payout(db_url, prefect_harness, treasury.url, treasury) for _ in range(3)]
    assert codes == [-9, -9, -9]
    assert run_payout(db_url, prefect_harness, treasury.url, treasury) == 0

    paid = treasury.paid_count()
    with Session(engine.db) as s:
        payouts = s.exec(select(Payout).where(col(Payout.case_id).in_(case_ids))).all()
        states = {c.state for c in s.exec(select(Case).where(col(Case.id).in_(case_ids))).all()}
        attempts = s.exec(select(PayoutAttempt)).all()
        incidents = s.exec(select(Incident)).all()
    assert states == {"closed"}
    assert {p.idempotency_key for p in payouts} == set(paid)
    assert all(n == 1 for n in paid.values()), paid  # no key paid twice
    assert all(
        p.status == "paid" and p.external_ref == treasury.reference(p.idempotency_key)
        for p in payouts
    )
    assert not incidents
    found = [a for a in attempts if a.status == "found"]
    assert len(found) == 2  # the two payments made while relief was dead, found by status check
    lost = [a for a in attempts if a.status == "failed" and "interrupted" in a.detail]
    assert len(lost) == 1  # the one killed before the treasury recorded it
    engine.db.dispose()


def test_transient_errors_retry_then_permanent_becomes_incident(
    db_url: str, prefect_harness: str, treasury: Treasury
) -> None:
    engine = make_case_engine(db_url)
    first, second = approved_cases(engine, 2)
    with Session(engine.db) as s:
        rejected = s.exec(select(Payout).where(col(Payout.case_id) == second)).one()
    treasury.fail_with = [503, 503]  # case 1: two outages, then paid
    treasury.reject_keys = {rejected.idempotency_key}  # case 2: refused for good
    assert run_payout(db_url, prefect_harness, treasury.url, treasury) == 0
    with Session(engine.db) as s:
        p1 = s.exec(select(Payout).where(col(Payout.case_id) == first)).one()
        p2 = s.exec(select(Payout).where(col(Payout.case_id) == second)).one()
        incident = s.exec(select(Incident)).one()
    assert (p1.status, p1.attempts) == ("paid", 3)
    assert (p2.status, p2.attempts) == ("failed", 1)
    assert incident.ref == f"payout:{p2.idempotency_key}" and "422" in incident.message
    assert run_payout(db_url, prefect_harness, treasury.url, treasury) == 0  # nothing resent
    assert (
        treasury.paid_count()[p1.idempotency_key] == 1
        and p2.idempotency_key not in treasury.paid_count()
    )
    engine.db.dispose()
