"""The engine's sets against sets of one, on SQLite and PostgreSQL.

The same cases driven stage by stage once in sets of one (each an API call) and once in sets of
three (a unit of work each) must leave the same rows: states and versions, events, tasks,
notices (numbered and rendered), payouts, caps and registers. Refusals are reported per item and
write nothing; a conflict in a set is retried item by item: only the loser is refused.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import scenarios as S
import staff
from conftest import make_case_engine
from drive import submit
from sqlalchemy import select, text
from sqlmodel import Session

from models.db import make_engine, migrate
from models.tables import Case, DocSerial, Notice, ReviewTask
from states.engine import CaseEngine
from states.errors import CaseNotFound, ConflictError, NotPermitted, TransitionRefused, WrongState
from states.unit_of_work import UnitOfWork
from states.work import FireItem, ReviewItem, SubmitItem


def building(n: int, *, reduced: int, prior: int = 0) -> dict[str, Any]:
    """The building subsidy (two parallel reviews, confirmation, payout) on building `n`."""
    app = S.application("RENT-09")
    app["applicant"]["property"]["property_id"] = f"BLDG-{n}"
    app["confirmed_total_reduced"] = reduced
    app.pop("prior_subsidy_for_this_building", None)
    app["prior_subsidy_for_this_property"] = prior
    return app


def mixed_batch() -> list[dict[str, Any]]:
    """Buildings (two on one building, so the cap cuts the second inside one chunk), a chain of
    three stores (three cases from one application), a loan and a refused application."""
    return [
        building(1, reduced=1_000_000),
        building(2, reduced=2_000_000),
        building(2, reduced=2_000_000),  # 600,000 wanted, 400,000 left: partially approved
        S.application("RENT-03"),
        S.application("LOAN-01"),
        building(3, reduced=1_234_567, prior=100_000),
        S.application("RENT-10"),  # refused by the rules: rejected at the decision
    ]


def batch_engine(url: str) -> CaseEngine:
    return make_case_engine(url)


@pytest.fixture
def twin_url(db_url: str, request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    """A second empty database of the same kind as db_url."""
    if db_url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path}/twin.db"
        migrate(url)
        yield url
        return
    server = request.getfixturevalue("postgres_server")
    name = f"twin_{uuid.uuid4().hex[:12]}"
    url = server.create_database(name)
    migrate(url)
    yield url
    server.drop_database(name)


@pytest.fixture
def query_codes(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Query codes are random; make them a sequence, restarted per run, so that two databases
    can be compared row for row."""
    counter = [itertools.count(100_000)]
    monkeypatch.setattr("states.engine.new_query_code", lambda: f"{next(counter[0]):010d}")

    def restart() -> None:
        counter[0] = itertools.count(100_000)

    return restart


# ---------------------------------------------------------------- the same stages, two ways
def open_review_tasks(engine: CaseEngine) -> list[tuple[int, str]]:
    with Session(engine.db) as s:
        rows = s.execute(
            select(ReviewTask.id, ReviewTask.bureau_code, ReviewTask.section_code)
            .where(ReviewTask.kind == "review", ReviewTask.status == "open")
            .order_by(ReviewTask.id)  # type: ignore[arg-type]
        ).all()
    return [(task_id, f"{bureau}.{section}") for task_id, bureau, section in rows]


def cases_in(engine: CaseEngine, *states: str) -> list[int]:
    with Session(engine.db) as s:
        rows = s.execute(
            select(Case.id).where(Case.state.in_(states)).order_by(Case.id)  # type: ignore[attr-defined]
        ).scalars()
        return list(rows)


def stages(engine: CaseEngine) -> Iterator[tuple[str, list[Any]]]:
    """The work of each stage, read from the database as each party would find it."""
    # every open review, in task order: a case's two reviews are two items of one stage
    yield (
        "review",
        [
            ReviewItem(t, "pass", actor=staff.reviewer(engine, unit))
            for t, unit in open_review_tasks(engine)
        ],
    )
    waiting = cases_in(engine, "awaiting_confirmation")
    yield "fire", [FireItem(c, "confirm", staff.holder(engine, c, "confirm")) for c in waiting]
    ready = cases_in(engine, "confirmed", "under_review")
    deciders = {c: staff.holder(engine, c, "decide") for c in ready}
    yield "fire", [FireItem(c, "approve", deciders[c]) for c in ready]
    left = cases_in(engine, "confirmed", "under_review")  # the rules refused these
    yield (
        "fire",
        [FireItem(c, "reject", deciders[c], payload={"reason": "不符合条件"}) for c in left],
    )
    yield "fire", [
        FireItem(c, "record_payment", staff.system(engine), payload={"external_ref": f"TR-{c}"},
                 request_key=f"paid:{c}")
        for c in cases_in(engine, "payout_ordered")
    ]  # fmt: skip


def drive_one_by_one(engine: CaseEngine, apps: list[dict[str, Any]]) -> dict[str, list[str]]:
    refused: dict[str, list[str]] = {}
    for app in apps:
        submit(engine, app)
    for kind, items in stages(engine):
        for item in items:
            try:
                if kind == "review":
                    engine.decide_task(
                        item.task_id, decision=item.decision, actor=item.actor, reason=item.reason
                    )
                else:
                    engine.fire(
                        item.case_id, item.trigger, actor=item.actor, payload=item.payload,
                        request_key=item.request_key,
                    )  # fmt: skip
            except TransitionRefused as exc:
                refused.setdefault(type(exc).__name__, []).append(exc.message_en)
    return refused


def drive_batch(engine: CaseEngine, apps: list[dict[str, Any]]) -> dict[str, list[str]]:
    refused: dict[str, list[str]] = {}
    out = engine.submit_many(
        [SubmitItem(a, actor=staff.applicant_for(engine, a)) for a in apps], unit_size=3
    )
    assert not out.refused
    for kind, items in stages(engine):
        if kind == "review":
            result = engine.decide_tasks(items, unit_size=3)
        else:
            result = engine.fire_many(items, unit_size=3)
        assert result.retried == 0
        for exc in result.refused.values():
            refused.setdefault(type(exc).__name__, []).append(getattr(exc, "message_en", ""))
    return refused


def snapshot(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row the engine writes, without surrogate ids that differ only by insert order."""
    db = make_engine(url)
    queries = {
        "cases": "SELECT id, case_no, state, version, decision, amount_ceiling, amount_granted,"
        " query_code, manual_review FROM relief_case ORDER BY id",
        "events": "SELECT case_id, seq, from_state, to_state, trigger, actor, payload, request_key"
        " FROM case_event ORDER BY case_id, seq",
        "tasks": "SELECT case_id, kind, bureau_code, section_code, unit, status, decision, reason,"
        " due_on, decided_by FROM review_task ORDER BY case_id, id",
        "notices": "SELECT case_id, kind, audience, event_seq, payload, status, idempotency_key,"
        " doc_number, issuer, recipient, title, body_text, body_html, content_hash"
        " FROM notice ORDER BY case_id, event_seq, kind",
        "payouts": "SELECT case_id, amount, payer_bureau, idempotency_key, status, external_ref"
        " FROM payout ORDER BY case_id",
        "caps": "SELECT key, cap_limit, opening, granted FROM cap_account ORDER BY key",
        "grants": "SELECT cap_key, case_id, amount FROM cap_grant ORDER BY case_id, cap_key",
        "serials": "SELECT prefix, year, last FROM doc_serial ORDER BY prefix, year",
        "waivers": "SELECT case_id, tenant, object_id, months, amount FROM rent_waiver_record"
        " ORDER BY case_id",
        "applicants": "SELECT id, identity, kind FROM applicant ORDER BY id",
    }
    with db.connect() as conn:
        out = {k: [tuple(r) for r in conn.execute(text(q))] for k, q in queries.items()}
    db.dispose()
    return out


def test_batch_leaves_the_same_rows_as_one_by_one(
    db_url: str, twin_url: str, query_codes: Callable[[], None]
) -> None:
    one = make_case_engine(db_url)
    refused_one = drive_one_by_one(one, mixed_batch())
    one.db.dispose()
    query_codes()
    batch = batch_engine(twin_url)
    refused_batch = drive_batch(batch, mixed_batch())
    batch.db.dispose()

    a, b = snapshot(db_url), snapshot(twin_url)
    for table in a:
        assert a[table] == b[table], table
    # the run covered what it claims: every path ended, caps cut, notices numbered
    states = [row[2] for row in a["cases"]]
    assert states.count("closed") == len(states) - 1 and "rejected" in states
    assert {row[1] for row in a["notices"]} >= {
        "acceptance", "decision_granted", "decision_partial", "decision_refused", "payout",
    }  # fmt: skip
    assert len(a["waivers"]) == 3 and len(a["payouts"]) == 5
    assert refused_one == refused_batch  # the same refusals (approving the refused one)


def test_refused_items_are_reported_and_write_nothing(db_url: str) -> None:
    engine = batch_engine(db_url)
    ops = staff.operator(engine)
    out = engine.submit_many(
        [
            SubmitItem(building(1, reduced=1_000_000), actor=ops),
            SubmitItem({"type": "rent_park_subsidy"}, actor=ops),  # invalid
            SubmitItem(building(2, reduced=1_000_000), actor=ops),
        ]
    )
    assert sorted(out.done) == [0, 2] and list(out.refused) == [1]
    first, second = out.done[0][0], out.done[2][0]
    assert first.state == second.state == "under_review"
    before = snapshot(db_url)

    result = engine.fire_many(
        [
            # no decide task yet (the reviews are not done): not this reviewer's to take
            FireItem(first.case_id, "approve", staff.holder(engine, first.case_id, "review", 2)),
            FireItem(second.case_id, "record_payment", staff.system(engine)),  # wrong state
            FireItem(999_999, "confirm", ops),  # no such case
            FireItem(  # stale
                second.case_id,
                "withdraw",
                staff.applicant_of_case(engine, second.case_id),
                expected_version=1,
            ),
        ],
        unit_size=10,
    )
    assert not result.done
    assert isinstance(result.refused[0], NotPermitted)
    assert "决定任务" in result.refused[0].message_zh
    assert isinstance(result.refused[1], WrongState)
    assert isinstance(result.refused[2], CaseNotFound)
    assert isinstance(result.refused[3], ConflictError)
    assert snapshot(db_url) == before

    reviews = engine.decide_tasks(
        [
            ReviewItem(10_000, "pass", ops),  # no such task
            ReviewItem(1, "fail", ops),  # a failing review needs a reason
            ReviewItem(1, "maybe", ops, reason="?"),
        ]
    )
    assert isinstance(reviews.refused[0], CaseNotFound)
    assert isinstance(reviews.refused[1], TransitionRefused)
    assert isinstance(reviews.refused[2], TransitionRefused)
    assert snapshot(db_url) == before
    engine.db.dispose()


def test_a_conflict_in_a_set_refuses_only_the_loser(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Someone else writes one case of a set between our read and our write: the set rolls
    back, its items are run again one by one, and only that case's item is refused."""
    engine = batch_engine(db_url)
    out = engine.submit_many(
        [SubmitItem(building(i, reduced=1_000_000), actor=staff.operator(engine)) for i in range(4)]
    )
    ids = [r[0].case_id for r in out.results()]
    tasks = open_review_tasks(engine)
    before = snapshot(db_url)
    victim = ids[2]
    real = UnitOfWork._update_cases

    def someone_else_writes_first(self: UnitOfWork) -> None:
        if any(w.case_id == victim for w in self.writes):
            self.s.execute(
                text(f"UPDATE relief_case SET version = version + 1 WHERE id = {victim}")
            )
        real(self)

    monkeypatch.setattr(UnitOfWork, "_update_cases", someone_else_writes_first)
    section = tasks[0][1]
    mine = [t for t, sec in tasks if sec == section]
    rev = staff.reviewer(engine, section)
    result = engine.decide_tasks([ReviewItem(t, "pass", rev) for t in mine], unit_size=2)
    assert result.retried == 1  # the second set, then its items one by one
    assert sorted(result.done) == [0, 1, 3]
    assert list(result.refused) == [2] and isinstance(result.refused[2], ConflictError)
    after = snapshot(db_url)
    new_events = [e for e in after["events"] if e not in before["events"]]
    assert sorted({e[0] for e in new_events}) == [ids[0], ids[1], ids[3]]  # nothing lost
    with Session(engine.db) as s:
        version = s.get(Case, victim)
        assert version is not None and version.version == 2  # the sneaky bump rolled back too
    engine.db.dispose()


def test_request_keys_make_a_repeated_batch_harmless(db_url: str) -> None:
    engine = batch_engine(db_url)
    ops = staff.operator(engine)
    apps = [
        SubmitItem(building(i, reduced=1_000_000), ops, request_key=f"in:{i}") for i in range(3)
    ]
    first = engine.submit_many(apps)
    again = engine.submit_many(apps)
    assert [r[0].case_id for r in again.results()] == [r[0].case_id for r in first.results()]
    assert all(r[0].replayed for r in again.results())
    ids = [r[0].case_id for r in first.results()]
    for section in sorted({sec for _, sec in open_review_tasks(engine)}):
        mine = [t for t, sec in open_review_tasks(engine) if sec == section]
        rev = staff.reviewer(engine, section)
        engine.decide_tasks([ReviewItem(t, "pass", rev, request_key=f"rv:{t}") for t in mine])
    engine.fire_many([FireItem(c, "confirm", staff.holder(engine, c, "confirm")) for c in ids])
    engine.fire_many([FireItem(c, "approve", staff.holder(engine, c, "decide")) for c in ids])
    pay = [
        FireItem(c, "record_payment", staff.system(engine), payload={"external_ref": f"TR-{c}"},
                 request_key=f"paid:{c}")
        for c in ids
    ]  # fmt: skip
    done = engine.fire_many(pay + pay[:1])  # the same key twice in one call, too
    assert [r.state for r in done.results()] == ["closed"] * 4
    assert [r.replayed for r in done.results()] == [False, False, False, True]
    before = snapshot(db_url)
    again_pay = engine.fire_many(pay)
    assert all(r.replayed and r.state == "closed" for r in again_pay.results())
    assert snapshot(db_url) == before
    assert len(before["payouts"]) == 3
    assert [n[1] for n in before["notices"]].count("payout") == 3
    engine.db.dispose()


def test_document_numbers_continue_across_both_paths(db_url: str) -> None:
    """Numbers handed out by a batch and by single calls interleave without gaps or repeats."""
    one = make_case_engine(db_url)
    batch = batch_engine(db_url)
    submit(one, building(0, reduced=1_000_000))
    ops = staff.operator(batch)
    batch.submit_many([SubmitItem(building(i, reduced=1_000_000), ops) for i in (1, 2, 3)])
    submit(one, building(4, reduced=1_000_000))
    with Session(one.db) as s:
        numbers = list(s.execute(select(Notice.doc_number).order_by(Notice.id)).scalars())
        [last] = s.execute(select(DocSerial.last)).scalars().all()
    serials = [int(str(n).split("〕")[1].rstrip("号")) for n in numbers]
    assert serials == [1, 2, 3, 4, 5] and last == 5
    one.db.dispose()
    batch.db.dispose()
