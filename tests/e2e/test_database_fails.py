"""PostgreSQL fails under relief: stopped and started again (the same cluster, data and port),
or its sessions killed with pg_terminate_backend, under the API and in the middle of an intake
batch, a decisions batch and a payout run.

This module runs its own PostgreSQL server (tests/pg_server.py), not the session's shared one
that other tests use meanwhile; the API is the app served by a real uvicorn server (in a thread,
as `relief serve --no-flows` serves it; never restarted), the CLI is `relief` itself, the batches
are real Prefect flow runs, the treasury is the real HTTP server of tests/treasury_server.py that
records every payment by key.

"The middle" is made by the database itself, not by a hook in our code: a session of the test's
own holds a lock that some units of the batch need, so they wait inside their transactions
(seen in pg_stat_activity) while others have committed, and then the fault strikes. Intake and
payout: once part of the batch is in, a SHARE lock on the table the next units write (the count
committed is read under it, so it is exact); decisions: the rows of the last two chunks are
locked FOR UPDATE before the run, and the fault strikes once every other chunk is in. After the
rerun every case is where it should be (events gap-free, each from where the last ended, the
state the last event's target, exactly the notices its transitions owe, no document number
twice), every row filed once, each case decided once, each payout key paid once.
"""

from __future__ import annotations

import contextvars
import itertools
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import scenarios as S
import seeded
import staff
from conftest import (
    FIXED_NOW,
    POSTGRES_SKIP_MESSAGE,
    LiveServer,
    _postgres_required,
    make_accounts,
    make_case_engine,
)
from pg_server import PostgresBinariesNotFound, PostgresServer
from sqlalchemy import func
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, col, select
from treasury_server import Treasury
from typer.testing import CliRunner

from api.main import create_app
from base.identifiers import bounded_key
from cli.main import EXIT_UNAVAILABLE
from cli.main import app as cli_app
from flows.bureau_decisions import DecisionsParams, bureau_decisions_flow
from flows.intake import IntakeParams, intake_flow
from flows.payout import PayoutParams, payout_flow
from flows.singleton import lock_key
from models.db import engine_for, migrate
from models.settings import Settings, get_settings
from models.tables import (
    Applicant,
    Case,
    CaseEvent,
    Notice,
    Payout,
    PayoutAttempt,
    RequestRecord,
    ReviewTask,
)
from states.catalog import spec_for
from states.engine import CaseEngine
from states.errors import DatabaseUnavailable, connection_lost
from states.work import FireItem, ReviewItem, SubmitItem

pytestmark = pytest.mark.postgres

UNAVAILABLE_ZH = "数据库暂时不可用，本次操作未保存，请稍后重试"
FAULTS = ["restart", "terminate"]
CHUNK = 10  # RELIEF_CHUNK_SIZE: rows per Prefect task, each task's rows one transaction
COUNTED = (Case, CaseEvent, Notice, RequestRecord, Applicant, ReviewTask, Payout)


# ---------------------------------------------------------------- the server and a database
@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    """This module's own cluster: stopping it disturbs no other test."""
    try:
        server = PostgresServer.start()
    except PostgresBinariesNotFound:
        if _postgres_required():
            pytest.fail(f"{POSTGRES_SKIP_MESSAGE} (required here: CI)", pytrace=False)
        pytest.skip(POSTGRES_SKIP_MESSAGE)
    yield server
    server.stop()


@dataclass
class Db:
    pg: PostgresServer
    name: str
    url: str

    def connect(self, *, autocommit: bool = True) -> psycopg.Connection[Any]:
        """A connection of the test's own (psycopg, outside relief's pools)."""
        return psycopg.connect(
            host=self.pg.host, port=self.pg.port, user=self.pg.user, dbname=self.name,
            autocommit=autocommit,
        )  # fmt: skip

    def scalar(self, sql: str, *args: Any) -> Any:
        with self.connect() as conn:
            row = conn.execute(sql, args).fetchone()  # type: ignore[arg-type]
        return row[0] if row else None

    def counts(self) -> dict[str, int]:
        """Rows of every table a step writes."""
        names = [t.__tablename__ for t in COUNTED]  # type: ignore[attr-defined]
        return {name: self.scalar(f"SELECT count(*) FROM {name}") for name in names}

    def strike(self, fault: str) -> int:
        """`restart`: stop the server (fast shutdown: every session ends, 57P01; the test
        starts it again); `terminate`: kill every session on this database."""
        if fault == "restart":
            self.pg.stop_server("fast")
            return 0
        return self.pg.terminate_backends(self.name)

    def back(self, fault: str) -> None:
        if fault == "restart":
            self.pg.start_server()


@contextmanager
def new_database(pg: PostgresServer) -> Iterator[Db]:
    """A migrated relief database on this module's server, dropped afterwards."""
    name = f"fails_{uuid.uuid4().hex[:12]}"
    url = pg.create_database(name)
    migrate(url)
    try:
        yield Db(pg, name, url)
    finally:
        engine_for(url).dispose()
        if not pg.running:  # a test that failed while the server was down
            pg.start_server()
        pg.drop_database(name)


@pytest.fixture
def db(pg: PostgresServer) -> Iterator[Db]:
    with new_database(pg) as made:
        yield made


@pytest.fixture
def flows_on(
    db: Db, prefect_harness: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Db]:
    """The flows' settings on this database, in small chunks (a real setting)."""
    monkeypatch.setenv("RELIEF_DATABASE_URL", db.url)
    monkeypatch.setenv("RELIEF_NOW", FIXED_NOW.isoformat())
    monkeypatch.setenv("RELIEF_PAYMENT_DIR", str(tmp_path / "payments"))
    monkeypatch.setenv("RELIEF_PAYOUT_RETRY_SECONDS", "0")
    monkeypatch.setenv("RELIEF_CHUNK_SIZE", str(CHUNK))
    get_settings.cache_clear()
    yield db
    get_settings.cache_clear()


# ---------------------------------------------------------------- the fault, in the middle
class Run(threading.Thread):
    """A flow run (or a request) in a thread of this process; the fault is struck from the
    main thread."""

    def __init__(self, call: Callable[[], Any]) -> None:
        super().__init__(daemon=True)
        self.call = call
        # Prefect's settings (the harness's API URL, heartbeats off) live in context variables,
        # which a new thread does not inherit
        self.context = contextvars.copy_context()
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self.context.run(self.call)
        except BaseException as exc:  # the flow run failed: kept for the test to look at
            self.error = exc

    def outcome(self, timeout: float = 60) -> Run:
        self.join(timeout)
        assert not self.is_alive(), "the flow run did not end"
        return self


def count(conn: psycopg.Connection[Any], sql: str) -> int:
    row = conn.execute(sql).fetchone()  # type: ignore[arg-type]
    return int(row[0]) if row else 0


def waiting_on_locks(db: Db) -> int:
    """Sessions on the database waiting for a lock, inside a transaction."""
    with psycopg.connect(
        host=db.pg.host, port=db.pg.port, user=db.pg.user, dbname="postgres", autocommit=True
    ) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock'",
            (db.name,),
        ).fetchone()
    return int(row[0]) if row else 0


def hold(db: Db, sql: str, *args: Any) -> psycopg.Connection[Any]:
    """A session that took a lock with `sql` and keeps its transaction open."""
    holder = db.connect(autocommit=False)
    holder.execute(sql, args or None)  # type: ignore[arg-type]
    return holder


def wait_for(db: Db, ready: Callable[[psycopg.Connection[Any]], bool], busy: Run) -> None:
    deadline = time.monotonic() + 60
    with db.connect() as watcher:
        while not ready(watcher):
            assert busy.is_alive(), f"the batch ended before the fault: {busy.error!r}"
            assert time.monotonic() < deadline, "the batch never got that far"
            time.sleep(0.005)


@dataclass
class Strike:
    waiting: int  # sessions waiting inside a transaction when it struck
    killed: int  # sessions pg_terminate_backend signalled (terminate)


def strike_while_waiting(db: Db, fault: str, holder: psycopg.Connection[Any], busy: Run) -> Strike:
    """Strike once at least one unit waits on the holder's lock, inside its transaction."""
    deadline = time.monotonic() + 60
    while (waiting := waiting_on_locks(db)) == 0:
        assert busy.is_alive(), f"the batch ended before the fault: {busy.error!r}"
        assert time.monotonic() < deadline, "no unit ever waited on the lock"
        time.sleep(0.005)
    killed = db.strike(fault)
    try:
        holder.close()  # killed with the others by either fault
    except psycopg.Error:
        pass
    return Strike(waiting, killed)


# ---------------------------------------------------------------- what must hold afterwards
def assert_cases_consistent(engine: CaseEngine) -> dict[str, int]:
    """Every case's events are 1..n, each from where the last one ended, the state the last
    one's target; the applicant's notices are exactly those its transitions owe, one each;
    no document number twice. Returns counts for the report."""
    with Session(engine.db) as s:
        cases = s.exec(select(Case)).all()
        events: dict[int, list[CaseEvent]] = {}
        for e in s.exec(select(CaseEvent).order_by(col(CaseEvent.case_id), col(CaseEvent.seq))):
            events.setdefault(e.case_id, []).append(e)
        notices: dict[int, list[Notice]] = {}
        for n in s.exec(select(Notice)):
            notices.setdefault(n.case_id, []).append(n)
    for case in cases:
        assert case.id is not None
        trail = events[case.id]
        assert [e.seq for e in trail] == list(range(1, len(trail) + 1)), case.case_no
        for before, after in itertools.pairwise(trail):
            assert after.from_state == before.to_state, (case.case_no, after.seq)
        assert case.state == trail[-1].to_state, case.case_no
        machine = spec_for(case.case_type).machine
        owed = Counter(
            (e.seq, kind.value)
            for e in trail
            for kind in machine.effects(e.trigger, e.from_state or "", e.to_state).notices
        )
        written = Counter(
            (n.event_seq, n.kind) for n in notices.get(case.id, []) if n.audience == "applicant"
        )
        assert written == owed, (case.case_no, written, owed)
    numbers = [n.doc_number for ns in notices.values() for n in ns if n.doc_number]
    assert len(numbers) == len(set(numbers)), "a document number was issued twice"
    return {
        "cases": len(cases),
        "events": sum(len(t) for t in events.values()),
        "notices": sum(len(ns) for ns in notices.values()),
    }


def consistent_at(url: str) -> dict[str, int]:
    engine = make_case_engine(url)
    try:
        return assert_cases_consistent(engine)
    finally:
        engine.db.dispose()


def assert_a_connection_fault(exc: BaseException | None) -> None:
    """A failed flow run failed because of the database (not a bug of ours it uncovered)."""
    assert exc is not None, "the run did not fail while the database was down"
    assert isinstance(exc, DatabaseUnavailable) or connection_lost(exc), repr(exc)


# ---------------------------------------------------------------- cases to work on
def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def filed(engine: CaseEngine, n: int) -> list[int]:
    """n park subsidies (each its own enterprise and building) filed and under review."""
    op = staff.operator(engine)
    out = engine.submit_many(
        [SubmitItem(seeded._park(k), op, request_key=f"setup:{k}") for k in range(1, n + 1)]
    )
    assert not out.refused, out.refused
    return [r[0].case_id for r in out.results()]


def ready_to_decide(engine: CaseEngine, n: int) -> list[int]:
    """Filed, both bureaus' reviews passed, the facts confirmed: each waits for its decision."""
    ids = filed(engine, n)
    with Session(engine.db) as s:
        reviews = s.exec(
            select(ReviewTask).where(
                col(ReviewTask.case_id).in_(ids), col(ReviewTask.kind) == "review"
            )
        ).all()
    out = engine.decide_tasks(
        [ReviewItem(t.id or 0, "pass",
                    staff.reviewer(engine, f"{t.bureau_code}.{t.section_code}", 1), None)
         for t in reviews]
    )  # fmt: skip
    assert not out.refused, out.refused
    confirmer = staff.reviewer(engine, "zgc_dongcheng.enterprise", 2)
    out2 = engine.fire_many([FireItem(c, "confirm", confirmer) for c in ids])
    assert not out2.refused, out2.refused
    return ids


DECIDER = "district_government"  # decides the park subsidies (its second reviewer)


def ordered(engine: CaseEngine, n: int) -> list[int]:
    """Approved: each has its payout ordered."""
    ids = ready_to_decide(engine, n)
    decider = staff.reviewer(engine, DECIDER, 2)
    out = engine.fire_many([FireItem(c, "approve", decider) for c in ids])
    assert not out.refused, out.refused
    return ids


# ---------------------------------------------------------------- the engine
def blocked(db: Db, call: Callable[[], Any]) -> tuple[Run, psycopg.Connection[Any]]:
    """`call` (a filing) started while another session holds relief_case: it waits inside its
    transaction."""
    holder = hold(db, "LOCK TABLE relief_case IN SHARE MODE")
    run = Run(call)
    run.start()
    deadline = time.monotonic() + 30
    while waiting_on_locks(db) == 0:
        assert run.is_alive() and time.monotonic() < deadline, run.error
        time.sleep(0.005)
    return run, holder


@pytest.mark.parametrize("fault", FAULTS)
def test_the_engine_rolls_back_and_answers_database_unavailable(db: Db, fault: str) -> None:
    """A unit of work whose connection dies inside the transaction is rolled back whole and
    refused as DatabaseUnavailable; the same request key then files one case."""
    engine = make_case_engine(db.url)
    try:
        filed(engine, 1)
        operator = staff.operator(engine)  # its account read now: the database goes away
        before = db.counts()
        run, holder = blocked(db, lambda: engine.submit(
            seeded._park(900), actor=operator, request_key="engine-fault-1"
        ))  # fmt: skip
        db.strike(fault)
        holder.close()
        refused = run.outcome().error
        assert isinstance(refused, DatabaseUnavailable), repr(refused)
        assert refused.message_zh == UNAVAILABLE_ZH and not refused.in_doubt
        assert refused.as_dict()["error"] == "database_unavailable"
        # the server says why (57P01, admin shutdown) unless the connection is gone before its
        # last message is read: then only the closed socket — both are the same refusal
        cause = refused.__cause__.orig  # type: ignore[union-attr]
        assert getattr(cause, "sqlstate", None) == "57P01" or "closed the connection" in str(cause)
        assert isinstance(refused.__cause__, OperationalError)  # kept for the log
        if fault == "restart":  # and while it is down, refused at once, the same way
            with pytest.raises(DatabaseUnavailable) as down:
                engine.submit(seeded._park(900), actor=operator, request_key="engine-fault-1")
            assert down.value.message_zh == UNAVAILABLE_ZH
            db.back(fault)
        assert db.counts() == before  # nothing of it was written
        [again] = engine.submit(seeded._park(900), actor=operator, request_key="engine-fault-1")
        assert not again.replayed
        [replay] = engine.submit(seeded._park(900), actor=operator, request_key="engine-fault-1")
        assert replay.replayed and replay.case_id == again.case_id
        assert db.counts()["relief_case"] == before["relief_case"] + 1
        assert_cases_consistent(engine)
    finally:
        engine.db.dispose()


# ---------------------------------------------------------------- the API and the CLI
@dataclass
class Api:
    db: Db
    url: str
    tokens: dict[str, str]

    def call(self, who: str | None, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = dict(kw.pop("headers", {}))
        if who:
            headers["Authorization"] = f"Bearer {self.tokens[who]}"
        return httpx.request(method, self.url + path, headers=headers, timeout=30, **kw)

    def file(self, key: str) -> httpx.Response:
        """applicant_a files its credit exemption with this Idempotency-Key."""
        return self.call(
            "applicant_a", "POST", "/api/applications",
            json=S.application("CRED-01"), headers={"Idempotency-Key": key},
        )  # fmt: skip


@pytest.fixture(scope="module")
def served(pg: PostgresServer) -> Iterator[Api]:
    """The app on one database, served by uvicorn for the whole module and never restarted:
    what it does after a fault, it does by itself."""
    with new_database(pg) as made:
        tokens = make_accounts(made.url)
        app = create_app(Settings(database_url=made.url, now=FIXED_NOW))
        with LiveServer(app) as server:
            yield Api(made, server.url, tokens)


@pytest.fixture
def api(served: Api, monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    if not served.db.pg.running:  # an earlier test failed while it was stopped
        served.db.pg.start_server()
    monkeypatch.setenv("RELIEF_DATABASE_URL", served.db.url)  # `relief` run in this process
    monkeypatch.setenv("RELIEF_NOW", FIXED_NOW.isoformat())
    get_settings.cache_clear()
    yield served
    get_settings.cache_clear()


def assert_503(answer: httpx.Response) -> dict[str, Any]:
    assert answer.status_code == 503, answer.text
    assert answer.headers["Retry-After"] == "5"
    assert "Traceback" not in answer.text
    body: dict[str, Any] = answer.json()
    assert body["error"] == "database_unavailable" and body["message_zh"] == UNAVAILABLE_ZH
    assert body["in_doubt"] is False and body["message_en"].startswith("the database is unavail")
    return body


def cases_of_key(db: Db, username: str, key: str) -> list[int]:
    key = bounded_key(username, key)
    ids = db.scalar("SELECT case_ids FROM request_record WHERE key = %s", key)
    return list(ids or [])


def test_the_api_and_the_cli_while_postgresql_is_stopped(api: Api, tmp_path: Path) -> None:
    """503 with message_zh and Retry-After at every door while it is down (a filing cut inside
    its transaction, a filing, a status read, a review decision, a page; /healthz 503), the CLI
    exit 4; once it is started again the same requests succeed, one case per key, without
    restarting relief."""
    first = api.file("api-0")
    assert first.status_code == 201, first.text
    case_no = first.json()[0]["case_no"]
    task_id = api.db.scalar(
        "SELECT t.id FROM review_task t JOIN relief_case c ON c.id = t.case_id"
        " WHERE c.case_no = %s AND t.kind = 'review' AND t.status = 'open'", case_no,
    )  # fmt: skip
    before = api.db.counts()
    run, holder = blocked(api.db, lambda: api.file("api-1"))
    api.db.strike("restart")  # the API process keeps running; the database is gone
    holder.close()
    assert_503(run.outcome().result)  # refused by the engine, rolled back

    application = tmp_path / "申请.json"
    application.write_text(json.dumps(S.application("CRED-01"), ensure_ascii=False), "utf-8")
    runner = CliRunner()
    status = runner.invoke(cli_app, ["status", case_no], env={"COLUMNS": "240"})
    filing = runner.invoke(cli_app, ["submit", str(application), "--as", "applicant_a",
                                     "--request-key", "cli-1"], env={"COLUMNS": "240"})  # fmt: skip

    def while_down() -> list[httpx.Response]:
        return [
            api.file("api-1"),
            api.call("applicant_a", "GET", f"/api/cases/{case_no}"),
            api.call("rev_credit", "POST", f"/api/tasks/{task_id}/review",
                     json={"decision": "pass"}),
        ]  # fmt: skip

    for answer in while_down():
        assert_503(answer)
    health = api.call(None, "GET", "/healthz")
    assert health.status_code == 503 and health.json()["status"] == "database down"
    page = api.call(None, "GET", "/status", headers={"Accept": "text/html"})
    assert page.status_code == 503 and page.headers["Retry-After"] == "5"
    assert "text/html" in page.headers["content-type"]
    assert UNAVAILABLE_ZH in page.text and "系统暂时不可用" in page.text
    assert "Traceback" not in page.text
    for done in (status, filing):
        assert done.exit_code == EXIT_UNAVAILABLE, done.output
        assert UNAVAILABLE_ZH in done.stderr and "Traceback" not in done.output

    api.db.back("restart")
    assert api.db.counts() == before  # nothing of the cut filing, nothing of the refused ones
    filed_again, read, reviewed = while_down()
    assert filed_again.status_code == 201, filed_again.text
    assert read.status_code == 200 and read.json()["case_no"] == case_no
    assert reviewed.status_code == 200, reviewed.text
    replay = api.file("api-1")
    assert replay.status_code == 201
    assert [c["case_no"] for c in replay.json()] == [c["case_no"] for c in filed_again.json()]
    assert api.call(None, "GET", "/healthz").status_code == 200
    assert api.call(None, "GET", "/status", headers={"Accept": "text/html"}).status_code == 200
    again = runner.invoke(cli_app, ["submit", str(application), "--as", "applicant_a",
                                    "--request-key", "cli-1"], env={"COLUMNS": "240"})  # fmt: skip
    assert again.exit_code == 0, again.output
    assert len(cases_of_key(api.db, "applicant_a", "api-1")) == 1
    assert len(cases_of_key(api.db, "applicant_a", "cli-1")) == 1
    assert api.db.counts()["relief_case"] == before["relief_case"] + 2
    consistent_at(api.db.url)


def test_the_api_after_its_connections_are_killed(api: Api) -> None:
    """pg_terminate_backend on every session of the database: connections idle in relief's
    pool are replaced unseen (pre-ping), a filing cut inside its transaction is answered 503
    and succeeds when sent again with its key."""
    for n in range(3):  # a few connections into the pool
        assert api.file(f"warm-{n}").status_code == 201
    killed = api.db.strike("terminate")
    assert killed >= 1  # the API's pooled connections (idle)
    report_line(f"api × terminate: {killed} idle pooled sessions killed")
    answers = [api.file("after-kill"), api.call("applicant_a", "GET", "/api/my/cases")]
    assert [a.status_code for a in answers] == [201, 200], [a.text for a in answers]

    before = api.db.counts()
    run, holder = blocked(api.db, lambda: api.file("cut"))
    assert api.db.strike("terminate") >= 2  # the filing's session, the lock holder's
    holder.close()
    assert_503(run.outcome().result)
    assert api.db.counts() == before
    again = api.file("cut")
    assert again.status_code == 201, again.text
    assert len(cases_of_key(api.db, "applicant_a", "cut")) == 1
    consistent_at(api.db.url)


# ---------------------------------------------------------------- the batches
INTAKE_ROWS = 300
CASES = "SELECT count(*) FROM relief_case"


@pytest.mark.parametrize("fault", FAULTS)
def test_an_intake_batch_cut_in_the_middle_files_every_row_once(
    flows_on: Db, fault: str, tmp_path: Path
) -> None:
    """Restart: the run fails while the server is down, the rerun files the rest. Terminate:
    the run's tasks retry by themselves and finish; the rerun changes nothing."""
    db = flows_on
    engine = make_case_engine(db.url)
    account = staff.operator(engine).username
    rows = [seeded._park(k) for k in range(1, INTAKE_ROWS + 1)]
    params = IntakeParams(file=write_json(tmp_path / "batch.json", rows), batch_id="b-fail",
                          account=account)  # fmt: skip
    first = Run(lambda: intake_flow(params))
    first.start()
    wait_for(db, lambda w: count(w, CASES) >= 2 * CHUNK, first)
    holder = hold(db, "LOCK TABLE relief_case IN SHARE MODE")
    committed = count(holder, CASES)  # exact: no filing commits while the lock is held
    hit = strike_while_waiting(db, fault, holder, first)
    assert 0 < committed < INTAKE_ROWS
    report("intake", fault, committed=committed, of=INTAKE_ROWS, hit=hit)
    first.outcome()
    if fault == "restart":
        assert_a_connection_fault(first.error)  # it failed while the database was down
        db.back(fault)
        assert db.scalar(CASES) == committed  # nothing half-written
    else:
        assert first.error is None, repr(first.error)  # it recovered by itself
    rerun = intake_flow(params)
    if fault == "restart":
        assert (rerun.already_done, rerun.submitted) == (committed, INTAKE_ROWS - committed)
    else:
        assert (rerun.already_done, rerun.submitted) == (INTAKE_ROWS, 0)
    assert rerun.invalid == 0
    assert db.scalar(
        "SELECT count(DISTINCT row_no) FROM intake_record WHERE batch_id = 'b-fail'"
        " AND status = 'submitted'"
    ) == INTAKE_ROWS  # fmt: skip
    assert db.scalar("SELECT count(*) FROM intake_record") == INTAKE_ROWS
    with Session(engine.db) as s:  # each row's key made one case, each case of one row
        keyed = s.exec(select(RequestRecord).where(col(RequestRecord.key).like("%b-fail%"))).all()
        states = Counter(s.exec(select(Case.state)).all())
    assert len(keyed) == INTAKE_ROWS and all(len(r.case_ids) == 1 for r in keyed)
    assert len({r.case_ids[0] for r in keyed}) == INTAKE_ROWS
    assert states == {"under_review": INTAKE_ROWS}
    counts = assert_cases_consistent(engine)
    assert counts["cases"] == INTAKE_ROWS and counts["notices"] == INTAKE_ROWS  # acceptance
    engine.db.dispose()


DECISIONS = 120
DECIDED = "SELECT count(*) FROM relief_case WHERE state = 'payout_ordered'"


@pytest.mark.parametrize("fault", FAULTS)
def test_a_decisions_batch_cut_in_the_middle_decides_each_case_once(
    flows_on: Db, fault: str, tmp_path: Path
) -> None:
    db = flows_on
    engine = make_case_engine(db.url)
    ids = ready_to_decide(engine, DECISIONS)
    with Session(engine.db) as s:
        numbers = sorted(c.case_no or "" for c in s.exec(select(Case).where(col(Case.id).in_(ids))))
    decider = staff.reviewer(engine, DECIDER, 2).username
    rows = [{"case_no": no, "action": "approve"} for no in numbers]
    params = DecisionsParams(file=write_json(tmp_path / "decisions.json", rows),
                             batch_id="d-fail", account=decider)  # fmt: skip
    late = numbers[-2 * CHUNK :]  # the last two chunks' cases: their units will wait
    holder = hold(db, "SELECT id FROM relief_case WHERE case_no = ANY(%s) FOR UPDATE", late)
    first = Run(lambda: bureau_decisions_flow(params))
    first.start()
    committed = DECISIONS - len(late)
    wait_for(db, lambda w: count(w, DECIDED) == committed, first)
    hit = strike_while_waiting(db, fault, holder, first)
    report("decisions", fault, committed=committed, of=DECISIONS, hit=hit)
    first.outcome()
    if fault == "restart":
        assert_a_connection_fault(first.error)
        db.back(fault)
        assert db.scalar(DECIDED) == committed
    else:
        assert first.error is None, repr(first.error)
    rerun = bureau_decisions_flow(params)
    assert not rerun.refused, rerun.refused
    if fault == "restart":
        assert (rerun.replayed, rerun.applied) == (committed, len(late))
    else:
        assert (rerun.replayed, rerun.applied) == (DECISIONS, 0)
    with Session(engine.db) as s:
        states = Counter(s.exec(select(Case.state)).all())
        payouts = s.exec(select(Payout)).all()
        approvals = s.exec(
            select(func.count()).select_from(CaseEvent).where(col(CaseEvent.trigger) == "approve")
        ).one()
    assert states == {"payout_ordered": DECISIONS}
    assert approvals == DECISIONS  # each case approved once
    assert len(payouts) == DECISIONS and {p.status for p in payouts} == {"ordered"}
    assert len({p.idempotency_key for p in payouts}) == DECISIONS
    counts = assert_cases_consistent(engine)
    assert counts["notices"] == 2 * DECISIONS  # acceptance, decision
    engine.db.dispose()


PAYOUTS = 40
SENDING = (
    "SELECT p.idempotency_key FROM payout_attempt a JOIN payout p ON p.id = a.payout_id"
    " WHERE a.status = 'sending'"
)


def hold_while_a_payment_is_unheard(db: Db, treasury: Treasury, run: Run) -> tuple[Any, ...]:
    """Lock payout_attempt at a moment a payment is on its way to the treasury: once the
    treasury has made it, relief waits to record it, inside its transaction. Returns the
    holder, the PAID attempts recorded, and the keys paid but not heard of."""
    for _ in range(10):  # the payment in flight may land before the lock is granted: again
        wait_for(db, lambda w: len(treasury.payments) >= 5 and count(w, f"SELECT count(*) FROM"
                 f" ({SENDING}) s") >= 1, run)  # fmt: skip
        holder = hold(db, "LOCK TABLE payout_attempt IN SHARE MODE")
        sending = {key for (key,) in holder.execute(SENDING).fetchall()}
        recorded = count(holder, "SELECT count(*) FROM payout_attempt WHERE status = 'paid'")
        deadline = time.monotonic() + 5
        while not (unheard := sending & set(treasury.paid_count())) and sending:
            if time.monotonic() > deadline:
                break
            time.sleep(0.005)
        if unheard:
            return holder, recorded, unheard
        holder.rollback()
        holder.close()
    raise AssertionError("never caught a payment between the treasury and its record")


@pytest.mark.parametrize("fault", FAULTS)
def test_a_payout_run_cut_in_the_middle_pays_each_key_once(flows_on: Db, fault: str) -> None:
    """Cut while a payment the treasury has made waits to be recorded: the run that finishes
    the batch (the rerun after a restart; the run's own task retries after a terminate) finds
    it at the treasury and does not pay it again."""
    db = flows_on
    engine = make_case_engine(db.url)
    ordered(engine, PAYOUTS)
    treasury = Treasury().start()
    treasury.delay = 0.05  # each payment takes a moment: the run can be caught with one out
    try:
        params = PayoutParams(adapter="http", endpoint=treasury.url)
        first = Run(lambda: payout_flow(params))
        first.start()
        holder, recorded, unheard = hold_while_a_payment_is_unheard(db, treasury, first)
        hit = strike_while_waiting(db, fault, holder, first)
        made = len(treasury.payments)  # none is made after the fault until a retry
        assert 0 < recorded < made < PAYOUTS
        report("payout", fault, committed=recorded, of=PAYOUTS, hit=hit, made=made,
               unheard=len(unheard))  # fmt: skip
        first.outcome()
        if fault == "restart":  # down while its tasks retry: the run fails, the rerun finishes
            assert_a_connection_fault(first.error)
        else:  # its tasks' retries finish the batch; its lock went with its session, which
            assert first.error is None, first.error  # ends the run without an error
        db.back(fault)
        rerun = payout_flow(params)
        assert not rerun.busy and rerun.failed == 0 and rerun.incidents == 0
        report_line(f"payout × {fault}: rerun paid {rerun.paid}")
        with Session(engine.db) as s:
            payouts = s.exec(select(Payout)).all()
            states = Counter(s.exec(select(Case.state)).all())
            found = s.exec(
                select(Payout.idempotency_key)
                .join(PayoutAttempt, col(PayoutAttempt.payout_id) == col(Payout.id))
                .where(col(PayoutAttempt.status) == "found")
            ).all()
        paid = treasury.paid_count()
        assert len(paid) == PAYOUTS and set(paid.values()) == {1}  # each key paid once
        if fault == "restart":  # nothing recorded until the rerun, which asked the treasury
            assert unheard <= set(found)
        # after a terminate the paying thread may hear its answer and record it on a fresh
        # connection itself, or its retried task asks the treasury: either way, paid once
        assert {p.idempotency_key for p in payouts} == set(paid)
        assert {p.status for p in payouts} == {"paid"}
        assert all(p.external_ref == treasury.reference(p.idempotency_key) for p in payouts)
        assert set(states) <= {"paid", "closed"} and sum(states.values()) == PAYOUTS
        assert_cases_consistent(engine)
    finally:
        treasury.stop()
        engine.db.dispose()


def report(stage: str, fault: str, *, committed: int, of: int, hit: Strike, **more: int) -> None:
    """One line per fault for docs/reliability.md (shown with -s)."""
    extra = "".join(f", {k} {v}" for k, v in more.items())
    report_line(f"{stage} × {fault}: {committed} of {of} in, {hit.waiting} waiting inside their"
                f" transactions, {hit.killed} sessions killed{extra}")  # fmt: skip


def report_line(line: str) -> None:
    print(f"\n{line}")


def run_lock_holder(db: Db) -> int:
    """The backend holding the payout run's advisory lock (flows/singleton.py `exclusive`)."""
    key = lock_key("payout") & 0xFFFFFFFFFFFFFFFF
    pid = db.scalar(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1"
        " AND classid::bigint = %s AND objid::bigint = %s",
        key >> 32,
        key & 0xFFFFFFFF,
    )
    assert pid, "the payout run holds no lock"
    return int(pid)


def test_a_payout_run_that_lost_its_lock_and_a_second_run_pay_each_key_once(
    flows_on: Db,
) -> None:
    """Only the run's lock session is killed: the run goes on paying, and a second run (the
    next scheduled one) takes the free lock at once. Each payment is claimed for itself
    (flows/singleton.py `claimed`), so the two never pay one payout; the first run ends
    without an error although its lock went with its session."""
    db = flows_on
    engine = make_case_engine(db.url)
    ordered(engine, PAYOUTS)
    treasury = Treasury().start()
    treasury.delay = 0.25  # the first run still pays while the second one starts
    try:
        params = PayoutParams(adapter="http", endpoint=treasury.url)
        first = Run(lambda: payout_flow(params))
        first.start()
        wait_for(db, lambda _: len(treasury.payments) >= 3, first)
        killed = db.scalar("SELECT pg_terminate_backend(%s)", run_lock_holder(db))
        assert killed is True
        second = Run(lambda: payout_flow(params))
        second.start()
        first.outcome()
        second.outcome()
        assert first.error is None and second.error is None, (first.error, second.error)
        assert not second.result.busy, "the second run found the lock taken"
        assert second.result.considered > 0, "the first run was done: nothing overlapped"
        paid = treasury.paid_count()
        twice = sorted(key for key, n in paid.items() if n > 1)
        assert twice == [] and len(paid) == PAYOUTS  # each key paid once
        assert first.result.paid + second.result.paid == PAYOUTS
        with Session(engine.db) as s:
            assert {p.status for p in s.exec(select(Payout)).all()} == {"paid"}
        assert_cases_consistent(engine)
    finally:
        treasury.stop()
        engine.db.dispose()
