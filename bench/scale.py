"""Scale on PostgreSQL: the work queue and one decision at 10,000 and at 1,000,000 cases.

    python bench/scale.py [--sizes 10000,1000000] [--samples 200] [--queries 1000] [--runs 3]

A throwaway PostgreSQL 15 server (tests/pg_server.py; on disk, since the big cluster does not
belong in /dev/shm) gets one database per size, each with the relief schema by Alembic, filled
by COPY: building-subsidy cases at every stage of their life (85% closed, 6% under review, 3%
awaiting confirmation, 6% confirmed), each with its applicant, tasks, events, notices, payout
and cap rows copied from real cases the engine made in that database (new ids, numbers and
keys; filler notices keep their metadata and text, not their HTML). The big load drops the
secondary indexes and keys and builds them again after (the catalog's own definitions); then
VACUUM ANALYZE, and the probes: building subsidies driven to `confirmed` through the engine,
one per decision to measure.

Per run, the sizes are measured side by side, call after call, so that the machine's noise
falls on all of them alike:
- the work queue: one section's open tasks, overdue first then by due date, a page of 50,
  joined with their cases, through SQLAlchemy as the application reads it (--queries pages);
- one decision: `CaseEngine.fire(case, "approve")` on a confirmed case, one transaction:
  grant against the cap, the decision notice numbered and rendered, the payout order, the
  events (--samples decisions);
- for reference, the whole queue (every open task of the section, as /api/tasks read it before
  it was paged): it returns more rows as the table grows, so it cannot stay flat.

It prints the plan of the page query at each size, median and p95 (ms) per size and run, the
medians over runs, and the largest / smallest ratios.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

from benchlib import (
    NOW,
    ROOT,
    People,
    batch_engine,
    building_application,
    dump_json,
    header,
    median,
    p95,
)

sys.path.insert(0, str(ROOT / "tests"))
import pg_server  # the suite's throwaway server; nothing else comes from the tests

PAGE = 50
WINDOW = (date(2022, 6, 15), date(2022, 12, 30))


# ---------------------------------------------------------------- templates from real cases
def templates(url: str) -> dict[str, Any]:
    """One case per filler state, made by the engine, read back as raw rows."""
    import psycopg
    from psycopg.rows import dict_row
    from sqlalchemy import select
    from sqlmodel import Session

    from models.tables import ReviewTask
    from states.work import FireItem, ReviewItem, SubmitItem

    engine = batch_engine(url)
    people = People(engine)
    apps = [SubmitItem(building_application(9_000_000 + k), people.intake) for k in range(4)]
    ids = [r[0].case_id for r in engine.submit_many(apps).results()]
    closed, under_review, awaiting, confirmed = ids
    with Session(engine.db) as s:
        tasks = s.execute(
            select(ReviewTask.id, ReviewTask.case_id, ReviewTask.section_code)
            .where(ReviewTask.kind == "review")
            .order_by(ReviewTask.id)  # type: ignore[arg-type]
        ).all()
    for section in sorted({sec for _, _, sec in tasks}):
        mine = [t for t, c, sec in tasks if sec == section and c != under_review]
        engine.decide_tasks([ReviewItem(t, "pass", people.reviewer(section)) for t in mine])
    engine.fire_many([FireItem(c, "confirm", people.confirmer) for c in (closed, confirmed)])
    engine.fire_many([FireItem(closed, "approve", people.decider)])
    engine.fire_many(
        [FireItem(closed, "record_payment", people.system, payload={"external_ref": "TR-0"},
                  request_key=f"paid:payout:{closed}")]
    )  # fmt: skip
    engine.db.dispose()
    out: dict[str, Any] = {}
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, row_factory=dict_row) as conn:
        for state, case_id in (
            ("closed", closed), ("under_review", under_review),
            ("awaiting_confirmation", awaiting), ("confirmed", confirmed),
        ):  # fmt: skip
            one = lambda q, c=case_id: conn.execute(q, (c,)).fetchall()  # noqa: E731
            [case] = one("SELECT * FROM relief_case WHERE id = %s")
            assert case["state"] == state, (case["state"], state)
            out[state] = {
                "case": case,
                "applicant": one(
                    "SELECT * FROM applicant WHERE id = (SELECT applicant_id FROM relief_case"
                    " WHERE id = %s)"
                )[0],
                "tasks": one("SELECT * FROM review_task WHERE case_id = %s ORDER BY id"),
                "events": one("SELECT * FROM case_event WHERE case_id = %s ORDER BY seq"),
                "notices": one("SELECT * FROM notice WHERE case_id = %s ORDER BY id"),
                "payouts": one("SELECT * FROM payout WHERE case_id = %s"),
                "grants": one("SELECT * FROM cap_grant WHERE case_id = %s"),
            }
    return out


# ---------------------------------------------------------------- bulk load
class Loader:
    """COPY filler cases with ids [first, last] from the templates, in one transaction."""

    COLUMNS: ClassVar[dict[str, list[str]]] = {
        "applicant": ["id", "identity", "uscc", "registration_no", "name", "kind", "size",
                      "email", "created_at", "phone", "notify", "im_url"],
        "relief_case": ["id", "case_no", "case_type", "state", "version", "applicant_id",
                        "subject_key", "facts", "assessment", "decision", "edition_id",
                        "filed_on", "amount_ceiling", "amount_granted", "manual_review",
                        "query_code", "submission_key", "created_at", "updated_at"],
        "review_task": ["id", "case_id", "kind", "bureau_code", "section_code", "unit",
                        "status", "decision", "reason", "assignee", "due_on", "created_at",
                        "decided_at", "decided_by"],
        "case_event": ["id", "case_id", "seq", "from_state", "to_state", "trigger", "actor",
                       "at", "payload", "request_key"],
        "notice": ["id", "case_id", "kind", "audience", "event_seq", "payload", "status",
                   "idempotency_key", "attempts", "created_at", "doc_number", "issuer",
                   "recipient", "title", "body_text", "body_html", "content_hash"],
        "payout": ["id", "case_id", "amount", "payer_bureau", "idempotency_key", "status",
                   "external_ref", "attempts", "created_at", "updated_at"],
        "cap_account": ["key", "cap_limit", "opening", "granted", "updated_at"],
        "cap_grant": ["id", "cap_key", "case_id", "amount", "at"],
    }  # fmt: skip

    def __init__(self, tpl: dict[str, Any]) -> None:
        self.tpl = tpl
        self.json_text = {
            state: {
                "facts": json.dumps(t["case"]["facts"], ensure_ascii=False),
                "assessment": json.dumps(t["case"]["assessment"], ensure_ascii=False),
                "event_payloads": [json.dumps(e["payload"]) for e in t["events"]],
                "notice_payloads": [json.dumps(n["payload"]) for n in t["notices"]],
            }
            for state, t in tpl.items()
        }
        self.serials: dict[str, int] = {}
        self.next_id = {"review_task": 0, "case_event": 0, "notice": 0, "payout": 0,
                        "cap_grant": 0}  # fmt: skip

    @staticmethod
    def state_of(i: int) -> str:
        r = i % 100
        if r < 85:
            return "closed"
        if r < 91:
            return "under_review"
        if r < 94:
            return "awaiting_confirmation"
        return "confirmed"

    def rows(self, table: str, first: int, last: int, total: int) -> Iterator[tuple[Any, ...]]:
        from base.working_days import add_working_days

        span = (WINDOW[1] - WINDOW[0]).days
        for i in range(first, last + 1):
            state = self.state_of(i)
            t, j = self.tpl[state], self.json_text[state]
            day = WINDOW[0] + timedelta(days=(i * 7919) % span)  # filed across the window
            at = datetime(day.year, day.month, day.day, 10, tzinfo=NOW.tzinfo)
            case_no = f"DC-2022-{i:06d}"
            cap_key = f"park_cap:commercial_building:FILL-{i:07d}"
            if table == "applicant":
                a = t["applicant"]
                yield (i, f"FILL{i:014d}", None, None, a["name"], a["kind"], a["size"],
                       None, at, None, "[]", None)  # fmt: skip
            elif table == "relief_case":
                c = t["case"]
                yield (i, case_no, c["case_type"], state, c["version"], i, cap_key, j["facts"],
                       j["assessment"], c["decision"], c["edition_id"], day,
                       c["amount_ceiling"], c["amount_granted"], False, f"{i % 10**6:06d}",
                       None, at, at)  # fmt: skip
            elif table == "review_task":
                for task in t["tasks"]:
                    self.next_id[table] += 1
                    yield (self.next_id[table], i, task["kind"], task["bureau_code"],
                           task["section_code"], task["unit"], task["status"],
                           task["decision"], None, None, add_working_days(day, 20), at,
                           at if task["status"] != "open" else None,
                           task["decided_by"])  # fmt: skip
            elif table == "case_event":
                for e, payload in zip(t["events"], j["event_payloads"], strict=True):
                    self.next_id[table] += 1
                    key = f"paid:payout:{case_no}" if e["request_key"] else None
                    yield (self.next_id[table], i, e["seq"], e["from_state"], e["to_state"],
                           e["trigger"], e["actor"], at, payload, key)  # fmt: skip
            elif table == "notice":
                for n, payload in zip(t["notices"], j["notice_payloads"], strict=True):
                    self.next_id[table] += 1
                    number = None
                    if n["doc_number"]:
                        prefix = n["doc_number"].split("〔")[0]
                        self.serials[prefix] = self.serials.get(prefix, 0) + 1
                        number = f"{prefix}〔2022〕{self.serials[prefix]}号"
                    yield (self.next_id[table], i, n["kind"], n["audience"], n["event_seq"],
                           payload, "delivered", f"notice:{i}:{n['event_seq']}:{n['kind']}", 1,
                           at, number, n["issuer"], n["recipient"], n["title"], n["body_text"],
                           "", n["content_hash"])  # fmt: skip
            elif table == "payout":
                for p in t["payouts"]:
                    self.next_id[table] += 1
                    yield (self.next_id[table], i, p["amount"], p["payer_bureau"],
                           f"payout:{case_no}", p["status"], f"TR-{i}", p["attempts"],
                           at, at)  # fmt: skip
            elif table == "cap_account":
                for g in t["grants"]:
                    yield (cap_key, 100_000_000, 0, g["amount"], at)
            elif table == "cap_grant":
                for g in t["grants"]:
                    self.next_id[table] += 1
                    yield (self.next_id[table], cap_key, i, g["amount"], at)

    def load(self, dsn: str, first: int, last: int, total: int) -> None:
        """COPY the filler the usual way for a big load: secondary indexes, unique and foreign
        keys dropped first and built again after (the same definitions, read from the
        catalog), the tables copied over two connections (two cores)."""
        import psycopg

        big = last - first > 100_000
        with psycopg.connect(dsn) as conn:
            rebuild = _drop_secondary(conn, list(self.COLUMNS)) if big else []
        # with the foreign keys in place (a small load) the tables go in order, one connection
        groups = (
            [["applicant", "relief_case", "payout", "cap_account", "cap_grant"],
             ["case_event", "notice", "review_task"]]
            if big else [list(self.COLUMNS)]
        )  # fmt: skip

        def copy_tables(tables: list[str]) -> None:
            with psycopg.connect(dsn) as conn, conn.cursor() as cur:
                for table in tables:
                    quoted = ", ".join(f'"{c}"' for c in self.COLUMNS[table])
                    with cur.copy(f"COPY {table} ({quoted}) FROM STDIN") as copy:
                        for row in self.rows(table, first, last, total):
                            copy.write_row(row)

        with ThreadPoolExecutor(len(groups)) as pool:
            for done in [pool.submit(copy_tables, g) for g in groups]:
                done.result()
        with psycopg.connect(dsn) as conn:
            conn.execute("SET maintenance_work_mem = '512MB'")
            for statement in rebuild:
                conn.execute(statement)

    def after_load(self, dsn: str) -> None:
        """Move the id sequences and document serials past the filler; ANALYZE."""
        import psycopg

        with psycopg.connect(dsn, autocommit=True) as conn:
            for table in ("applicant", "relief_case", "review_task", "case_event", "notice",
                          "payout", "cap_grant"):  # fmt: skip
                conn.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                    f" (SELECT max(id) FROM {table}))"
                )
            for prefix, last in self.serials.items():
                conn.execute(
                    "INSERT INTO doc_serial (prefix, year, last) VALUES (%s, 2022, %s)"
                    " ON CONFLICT (prefix, year) DO UPDATE SET last = doc_serial.last"
                    " + EXCLUDED.last",
                    (prefix, last),
                )
            self.serials.clear()
            conn.execute("VACUUM ANALYZE")


def _drop_secondary(conn: Any, tables: list[str]) -> list[str]:
    """Drop the tables' foreign keys, unique constraints and plain indexes (not primary
    keys); return the statements that create them again, in a valid order."""
    constraints = conn.execute(
        "SELECT conrelid::regclass::text, conname, contype, pg_get_constraintdef(oid)"
        " FROM pg_constraint WHERE contype IN ('f', 'u') AND conrelid::regclass::text = ANY(%s)"
        " ORDER BY contype DESC",  # unique before foreign
        (tables,),
    ).fetchall()
    backing = {name for _, name, kind, _ in constraints if kind == "u"}
    indexes = conn.execute(
        "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.tablename = ANY(%s)"
        " AND i.indexname NOT LIKE '%%_pkey'",
        (tables,),
    ).fetchall()
    for table, name, _kind, _ in sorted(constraints, key=lambda c: c[2] != "f"):
        conn.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')  # foreign keys first
    plain = [(name, ddl) for name, ddl in indexes if name not in backing]
    for name, _ in plain:
        conn.execute(f'DROP INDEX "{name}"')
    return [ddl for _, ddl in plain] + [
        f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}'
        for table, name, _, definition in constraints
    ]


def shift_ids(loader: Loader, dsn: str) -> None:
    """Continue the loader's ids after everything already in the tables (probes included)."""
    import psycopg

    with psycopg.connect(dsn) as conn:
        for table in loader.next_id:
            row = conn.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()
            loader.next_id[table] = int(row[0]) if row else 0


# ---------------------------------------------------------------- probes and measurements
def probes(url: str, count: int, offset: int) -> list[int]:
    """`count` cases driven to confirmed through the engine: one per decision to time."""
    from sqlalchemy import select
    from sqlmodel import Session

    from models.tables import ReviewTask
    from states.work import FireItem, ReviewItem, SubmitItem

    engine = batch_engine(url)
    people = People(engine)
    apps = [SubmitItem(building_application(offset + k), people.intake) for k in range(count)]
    ids = [r[0].case_id for r in engine.submit_many(apps).results()]
    with Session(engine.db) as s:
        tasks = s.execute(
            select(ReviewTask.id, ReviewTask.section_code).where(
                ReviewTask.case_id.in_(ids),
                ReviewTask.kind == "review",  # type: ignore[attr-defined]
            )
        ).all()
    for section in sorted({sec for _, sec in tasks}):
        mine = [t for t, sec in tasks if sec == section]
        engine.decide_tasks([ReviewItem(t, "pass", people.reviewer(section)) for t in mine])
    done = engine.fire_many([FireItem(c, "confirm", people.confirmer) for c in ids])
    assert all(r.state == "confirmed" for r in done.results())
    engine.db.dispose()
    return ids


@dataclass
class Target:
    """One database filled to one size, with its probes and an engine on it."""

    size: int
    url: str
    tpl: dict[str, Any]
    probes: list[int]
    engine: Any = None
    decider: Any = None  # the district's reviewer who approves the probes

    @property
    def section(self) -> tuple[str, str]:
        review = next(t for t in self.tpl["under_review"]["tasks"] if t["status"] == "open")
        return review["bureau_code"], review["section_code"]


def build(server: Any, size: int, probe_count: int) -> Target:
    """A database of `size` cases: 4 templates, COPY filler, then the probes."""
    from base.clock import Clock
    from models.db import make_engine, migrate
    from models.settings import Settings
    from notifications.issuer import engine_with_notices

    url = server.create_database(f"relief_scale_{size}")
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    migrate(url)
    tpl = templates(url)
    loader = Loader(tpl)
    need = size - 4 - probe_count
    t0 = time.perf_counter()
    shift_ids(loader, dsn)
    first = loader_first(dsn)
    loader.load(dsn, first, first + need - 1, size)
    loader.after_load(dsn)
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    cases = probes(url, probe_count, 5_000_000)
    print(
        f"{size} cases: {need} bulk-loaded by COPY in {load_s:.0f} s, {len(cases)} probes "
        f"(building subsidies at confirmed) through the engine in {time.perf_counter() - t0:.0f} s"
    )
    sys.stdout.flush()
    engine = engine_with_notices(
        make_engine(url), settings=Settings(database_url=url), clock=Clock(NOW)
    )
    return Target(size, url, tpl, cases, engine, People(engine).decider)


def page(t: Target, *, limit: int | None = PAGE) -> int:
    """The section's open tasks, overdue first then by due date, with their cases.

    A page is the API's /api/tasks (models/work_queue.py); limit=None reads the whole queue,
    as the API did before it was paged, for reference.
    """
    from sqlmodel import Session

    from models.work_queue import section_queue

    bureau, section = t.section
    with Session(t.engine.db) as s:
        return len(section_queue(s, bureau, section, limit=limit or 10**9))


def measure(targets: list[Target], run: int, samples: int, queries: int) -> dict[int, Any]:
    """The sizes side by side, call after call, so that the machine's noise falls on both."""
    queue: dict[int, list[float]] = {t.size: [] for t in targets}
    whole: dict[int, list[float]] = {t.size: [] for t in targets}
    fires: dict[int, list[float]] = {t.size: [] for t in targets}
    for t in targets:
        assert page(t) == PAGE  # warm the plan and the cache
    for _ in range(queries):
        for t in targets:
            t0 = time.perf_counter()
            page(t)
            queue[t.size].append(1000 * (time.perf_counter() - t0))
    for _ in range(5):
        for t in targets:
            t0 = time.perf_counter()
            page(t, limit=None)  # the whole queue, for reference
            whole[t.size].append(1000 * (time.perf_counter() - t0))
    for i in range(samples):
        for t in targets:
            case_id = t.probes[run * samples + i]
            t0 = time.perf_counter()
            result = t.engine.fire(case_id, "approve", actor=t.decider)
            fires[t.size].append(1000 * (time.perf_counter() - t0))
            assert result.state == "payout_ordered", result
    return {
        t.size: {
            "queue_median_ms": median(queue[t.size]), "queue_p95_ms": p95(queue[t.size]),
            "fire_median_ms": median(fires[t.size]), "fire_p95_ms": p95(fires[t.size]),
            "whole_queue_median_ms": median(whole[t.size]),
            "whole_queue_rows": page(t, limit=None),
        }
        for t in targets
    }  # fmt: skip


def explain(url: str, tpl: dict[str, Any]) -> str:
    import psycopg

    review = next(t for t in tpl["under_review"]["tasks"] if t["status"] == "open")
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        plan = conn.execute(
            "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT t.*, c.case_no, c.case_type"
            " FROM review_task t JOIN relief_case c ON c.id = t.case_id"
            " WHERE t.bureau_code = %s AND t.section_code = %s AND t.status = 'open'"
            " ORDER BY t.due_on, t.id LIMIT 50",
            (review["bureau_code"], review["section_code"]),
        ).fetchall()
    return "\n".join("    " + r[0] for r in plan)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", default="10000,1000000")
    ap.add_argument("--samples", type=int, default=200, help="decisions per size and run")
    ap.add_argument("--queries", type=int, default=1000, help="queue pages per size and run")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    header("scale on PostgreSQL")
    pg_server._FAST_TMP = Path("/nonexistent")  # keep the cluster on disk, not in RAM
    server = pg_server.PostgresServer.start()
    try:
        import psycopg

        with psycopg.connect(server.url("postgres").replace("+psycopg", "")) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        print(
            f"PostgreSQL {row[0] if row else '?'}, sizes {sizes}, {args.queries} queue pages and "
            f"{args.samples} decisions per size and run, {args.runs} runs\n"
        )
        targets = [build(server, size, args.samples * args.runs) for size in sizes]
        for t in targets:
            print(f"plan of the work-queue page at {t.size} cases:\n{explain(t.url, t.tpl)}")
        print()
        results: dict[int, list[dict[str, Any]]] = {size: [] for size in sizes}
        for run in range(args.runs):
            got = measure(targets, run, args.samples, args.queries)
            for size, r in got.items():
                results[size].append(r)
                print(
                    f"run {run + 1}, {size:>9} cases: work queue median {r['queue_median_ms']:.2f}"
                    f" ms, p95 {r['queue_p95_ms']:.2f} ms | decision median "
                    f"{r['fire_median_ms']:.1f} ms, p95 {r['fire_p95_ms']:.1f} ms | whole queue "
                    f"({r['whole_queue_rows']} rows) {r['whole_queue_median_ms']:.0f} ms"
                )
            sys.stdout.flush()
        print()
        keys = ("queue_median_ms", "queue_p95_ms", "fire_median_ms", "fire_p95_ms",
                "whole_queue_median_ms")  # fmt: skip
        med = {size: {k: median([r[k] for r in rs]) for k in keys} for size, rs in results.items()}
        for size, m in med.items():
            print(
                f"{size:>9} cases: work queue {m['queue_median_ms']:.2f} / {m['queue_p95_ms']:.2f} "
                f"ms, decision {m['fire_median_ms']:.1f} / {m['fire_p95_ms']:.1f} ms "
                "(median / p95, medians over runs); whole queue "
                f"{m['whole_queue_median_ms']:.0f} ms"
            )
        if len(sizes) >= 2:
            small, big = med[sizes[0]], med[sizes[-1]]
            ratios = {k: big[k] / small[k] for k in keys}
            flat = all(ratios[k] <= 1.5 for k in keys[:4])
            print(
                f"ratio {sizes[-1]} / {sizes[0]}: "
                + ", ".join(f"{k.removesuffix('_ms')} {v:.2f}x" for k, v in ratios.items())
                + f"  (goal <= 1.5x for queue and decision: {'met' if flat else 'MISSED'})"
            )
        for t in targets:
            t.engine.db.dispose()
        dump_json(args.json, {"runs": {str(k): v for k, v in results.items()},
                              "median": {str(k): v for k, v in med.items()}})  # fmt: skip
    finally:
        server.stop()


def loader_first(dsn: str) -> int:
    """The next free case id; filler applicants take the same ids as their cases."""
    import psycopg

    with psycopg.connect(dsn) as conn:
        cases = conn.execute("SELECT coalesce(max(id), 0) FROM relief_case").fetchone()
        people = conn.execute("SELECT coalesce(max(id), 0) FROM applicant").fetchone()
    assert cases is not None and people is not None
    return int(max(cases[0], people[0])) + 1


if __name__ == "__main__":
    main()
