"""Concurrent changes: a stale writer gets a clean conflict; cross-case caps hold.

The engine takes no Python lock: the guarantees come from the database (a version-checked
UPDATE; the cap account row locked FOR UPDATE on PostgreSQL, BEGIN IMMEDIATE on SQLite), so
the same tests run with threads on both databases and with separate processes on PostgreSQL.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
import scenarios as S
import staff
from conftest import make_case_engine
from drive import case, pass_reviews, submit
from sqlalchemy import select
from sqlmodel import Session

from models.tables import CapAccount, CapGrant, Case
from states.engine import CaseEngine
from states.errors import ConflictError, EngineError

D = Decimal
ROUNDS = 5


def race(*calls: Callable[[], Any]) -> list[Any]:
    """Run the calls at the same instant in threads; return each result or exception."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(i: int, call: Callable[[], Any]) -> None:
        barrier.wait()
        try:
            results[i] = call()
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def ready_to_decide(engine: CaseEngine, application: dict[str, Any]) -> int:
    [r] = submit(engine, application)
    pass_reviews(engine, r.case_id)
    if case(engine, r.case_id).state == "awaiting_confirmation":
        engine.fire(r.case_id, "confirm", actor=staff.holder(engine, r.case_id, "confirm"))
    return r.case_id


def test_two_fires_on_one_case_one_wins(engine: CaseEngine) -> None:
    for _ in range(ROUNDS):
        case_id = ready_to_decide(engine, S.application("RENT-01"))
        version = case(engine, case_id).version
        one, two = (staff.holder(engine, case_id, "decide", n) for n in (2, 3))
        results = race(
            lambda c=case_id, v=version, a=one: engine.fire(
                c, "approve", actor=a, expected_version=v
            ),
            lambda c=case_id, v=version, b=two: engine.fire(
                c, "reject", actor=b, expected_version=v, payload={"reason": "材料不实"}
            ),
        )
        wins = [r for r in results if not isinstance(r, Exception)]
        losses = [r for r in results if isinstance(r, Exception)]
        assert len(wins) == 1 and len(losses) == 1, results
        assert isinstance(losses[0], ConflictError), losses[0]
        assert "刷新" in losses[0].message_zh  # a stale version, or the task already done
        final = case(engine, case_id)
        assert final.state == wins[0].state and final.version == wins[0].version


def building(property_id: str, total: int) -> dict[str, Any]:
    app = S.application("RENT-09")
    app["applicant"]["property"]["property_id"] = property_id
    app["prior_subsidy_for_this_property"] = 0
    app["confirmed_total_reduced"] = total
    return app


def assert_cap_held(engine: CaseEngine, property_id: str, case_ids: list[int]) -> None:
    granted = [case(engine, c).amount_granted or D(0) for c in case_ids]
    assert sum(granted) == D(1_000_000), granted
    assert sorted(granted) == [D(400_000), D(600_000)]
    with Session(engine.db) as s:
        key = f"park_cap:commercial_building:{property_id}"
        account = s.get(CapAccount, key)
        grants = list(s.execute(select(CapGrant).where(CapGrant.cap_key == key)).scalars())
    assert account is not None and account.granted == D(1_000_000)
    assert sum(g.amount for g in grants) == D(1_000_000)
    states = sorted(case(engine, c).state for c in case_ids)
    assert states == ["payout_ordered", "payout_ordered"]


def test_concurrent_approvals_hold_the_building_cap(engine: CaseEngine) -> None:
    for n in range(ROUNDS):
        pid = f"TOWER-{n}"
        a = ready_to_decide(engine, building(pid, 2_000_000))  # 30% → 600,000
        b = ready_to_decide(engine, building(pid, 2_000_000))
        deciders = {c: staff.holder(engine, c, "decide") for c in (a, b)}
        results = race(
            lambda a=a, d=deciders: engine.fire(a, "approve", actor=d[a]),
            lambda b=b, d=deciders: engine.fire(b, "approve", actor=d[b]),
        )
        for r in results:
            assert not isinstance(r, Exception) or isinstance(r, EngineError), r
        retry = [c for c, r in zip((a, b), results, strict=True) if isinstance(r, ConflictError)]
        for c in retry:  # a clean conflict is retried, as a caller would
            engine.fire(c, "approve", actor=deciders[c])
        assert_cap_held(engine, pid, [a, b])


def _approve_in_process(url: str, case_id: int, account: str, start: Any, out: Any) -> None:
    engine = make_case_engine(url)
    decider = engine.actor(account)
    start.wait(60)
    try:
        out.put((case_id, engine.fire(case_id, "approve", actor=decider).state))
    except Exception as exc:
        out.put((case_id, repr(exc)))


@pytest.mark.postgres
def test_cap_holds_across_processes_on_postgres(postgres_url: str) -> None:
    from models.db import migrate

    migrate(postgres_url)
    engine = make_case_engine(postgres_url)
    a = ready_to_decide(engine, building("TOWER-P", 2_000_000))
    b = ready_to_decide(engine, building("TOWER-P", 2_000_000))
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(2)
    out = ctx.Queue()
    procs = [
        ctx.Process(
            target=_approve_in_process,
            args=(postgres_url, c, staff.holder(engine, c, "decide").username, start, out),
        )
        for c in (a, b)
    ]
    for p in procs:
        p.start()
    results = dict(out.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(60)
    assert set(results.values()) == {"payout_ordered"}, results
    assert_cap_held(engine, "TOWER-P", [a, b])
    engine.db.dispose()


def test_one_request_key_sent_at_once_makes_one_set_of_cases(engine: CaseEngine) -> None:
    """The same Idempotency-Key from many callers at the same moment: one filing, and every
    caller is answered with its cases (the key is unique in the schema)."""
    for n in range(ROUNDS):
        application = S.application("RENT-03")  # a chain: three cases from one filing
        actor = staff.applicant_for(engine, application)
        key = f"same-{n}"

        def file(app: dict[str, Any] = application, who: Any = actor, k: str = key) -> Any:
            return engine.submit(app, actor=who, request_key=k)

        results = race(*[file for _ in range(6)])
        assert not [r for r in results if isinstance(r, Exception)], results
        answers = {tuple(c.case_id for c in r) for r in results}
        assert len(answers) == 1 and len(next(iter(answers))) == 3
        with Session(engine.db) as s:
            made = s.execute(select(Case.id).where(Case.submission_key == f"same-{n}")).all()
        assert len(made) == 3


def test_an_applicants_first_filings_racing_both_succeed(engine: CaseEngine) -> None:
    from models.tables import Applicant

    for n in range(ROUNDS):
        first, second = S.application("LOAN-01"), S.application("LOAN-01")
        uscc = staff.uscc_for(900 + n)
        for app in (first, second):
            app["applicant"]["uscc"] = uscc
        second["loans"] = second["loans"][:1]
        actor = staff.applicant(engine, uscc)
        results = race(
            lambda a=first, w=actor: engine.submit(a, actor=w),
            lambda a=second, w=actor: engine.submit(a, actor=w),
        )
        assert not [r for r in results if isinstance(r, Exception)], results
        with Session(engine.db) as s:
            rows = s.execute(select(Applicant.id).where(Applicant.identity == uscc)).all()
        assert len(rows) == 1  # one applicant, two cases


def _file_in_process(url: str, application: dict[str, Any], username: str, key: str,
                     start: Any, out: Any) -> None:  # fmt: skip
    engine = make_case_engine(url)
    who = engine.actor(username)
    start.wait(60)
    try:
        out.put(sorted(c.case_id for c in engine.submit(application, actor=who, request_key=key)))
    except Exception as exc:  # the parent asserts there is none
        out.put(repr(exc))
    finally:
        engine.db.dispose()


@pytest.mark.postgres
def test_one_key_and_a_new_applicant_from_two_processes_on_postgres(postgres_url: str) -> None:
    """Two API processes get the same Idempotency-Key for a new enterprise's first filing at
    the same moment: one set of cases, one applicant row, both answered with the same cases."""
    from models.db import migrate
    from models.tables import Applicant

    migrate(postgres_url)
    engine = make_case_engine(postgres_url)
    ctx = multiprocessing.get_context("spawn")
    for n in range(3):
        application = S.application("RENT-03")  # a chain: three cases from one filing
        uscc = staff.uscc_for(950 + n)
        application["applicant"]["uscc"] = uscc
        username = staff.applicant(engine, uscc).username
        key = f"two-processes-{n}"
        start, out = ctx.Barrier(2), ctx.Queue()
        procs = [
            ctx.Process(target=_file_in_process,
                        args=(postgres_url, application, username, key, start, out))
            for _ in range(2)
        ]  # fmt: skip
        for p in procs:
            p.start()
        answers = [out.get(timeout=120) for _ in procs]
        for p in procs:
            p.join(60)
        assert not [a for a in answers if isinstance(a, str)], answers
        assert answers[0] == answers[1] and len(answers[0]) == 3, answers
        with Session(engine.db) as s:
            made = s.execute(select(Case.id).where(Case.submission_key == key)).all()
            people = s.execute(select(Applicant.id).where(Applicant.identity == uscc)).all()
        assert sorted(r[0] for r in made) == answers[0]
        assert len(people) == 1
    engine.db.dispose()
