"""Lifecycle throughput on SQLite: relief's engine beside SpiffWorkflow and a floor.

    python bench/throughput.py [--n 10000] [--runs 3] [--spiff-n 2000] [--chunk 500]

Each run takes N building-subsidy cases (rent_park_subsidy, commercial building: two parallel
bureau reviews, confirmation, approval, payout, closed) through

- relief: the engine (states/engine.py) in sets of 500 on a fresh SQLite file; every state change
  writes its version-checked case update, its audit event, tasks, outbox notices (rendered and
  numbered) and the payout, one transaction per chunk of cases;
- SpiffWorkflow: bench/relief_case.bpmn (parallel gateway, two user tasks, exclusive gateway,
  confirm, decision, payout); after each step every workflow is serialized
  (BpmnWorkflowSerializer) and written to SQLite, read back and deserialized for the next step,
  one transaction per chunk;
- the floor: no rules, no machine, no rendering: the path as a dict {(state, trigger): state}
  and the same rows relief writes (case updates, events, tasks, notices with a fixed text of the
  same size, payouts, caps) into the same schema with sqlite3 executemany, one transaction per
  chunk. A bare floor (only the state column, one UPDATE per step) is printed for reference.

It prints cases/s for each, per run and as medians, and the ratios measured within each run.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchlib import (
    CHUNK,
    batch_engine,
    drive_to_closed,
    dump_json,
    fresh_sqlite,
    header,
    median,
    timed,
)

BPMN = Path(__file__).with_name("relief_case.bpmn")


# ---------------------------------------------------------------- relief
def run_relief(folder: Path, n: int, chunk: int) -> tuple[float, dict[str, float]]:
    url = fresh_sqlite(folder, "relief.db")
    engine = batch_engine(url)
    stages, ids = drive_to_closed(engine, n, chunk=chunk)
    _verify_relief(engine, ids)
    engine.db.dispose()
    return n / stages.total, stages.seconds


def _verify_relief(engine: Any, ids: list[int]) -> None:
    """Every case closed, with its events, notices and payout (outside the timing)."""
    from sqlalchemy import func, select
    from sqlmodel import Session

    from models.tables import Case, CaseEvent, Notice, Payout

    with Session(engine.db) as s:
        states = dict(s.execute(select(Case.state, func.count()).group_by(Case.state)).all())
        counts = {
            t.__name__: s.execute(select(func.count()).select_from(t)).scalar_one()
            for t in (CaseEvent, Notice, Payout)
        }
    n = len(ids)
    assert states == {"closed": n}, states
    assert counts == {"CaseEvent": 11 * n, "Notice": 3 * n, "Payout": n}, counts


def sample_rows(folder: Path) -> dict[str, Any]:
    """One real case's stored columns and notice texts, for the floor to write (not timed)."""
    from sqlmodel import Session, col, select

    from models.tables import Case, Notice

    url = fresh_sqlite(folder, "sample.db")
    engine = batch_engine(url)
    _, [case_id] = drive_to_closed(engine, 1)
    with Session(engine.db) as s:
        case = s.get(Case, case_id)
        assert case is not None
        notices = {
            n.kind: n for n in s.exec(select(Notice).where(col(Notice.case_id) == case_id)).all()
        }
    engine.db.dispose()
    return {
        "facts": json.dumps(case.facts, ensure_ascii=False),
        "assessment": json.dumps(case.assessment, ensure_ascii=False),
        "notices": {
            k: (n.title, n.body_text, n.body_html, n.content_hash) for k, n in notices.items()
        },
    }


# ---------------------------------------------------------------- the floor
PATH = {  # the process as a dict: (state, trigger) -> next state
    ("draft", "submit"): "submitted",
    ("submitted", "auto_accept"): "accepted",
    ("accepted", "start_review"): "under_review",
    ("under_review", "review_decided"): "under_review",
    ("under_review", "complete_reviews"): "awaiting_confirmation",
    ("awaiting_confirmation", "confirm"): "confirmed",
    ("confirmed", "approve"): "approved",
    ("approved", "order_payout"): "payout_ordered",
    ("payout_ordered", "record_payment"): "paid",
    ("paid", "close"): "closed",
}
AT = "2022-12-30 02:00:00.000000"


def run_floor(folder: Path, n: int, chunk: int, sample: dict[str, Any]) -> float:
    url = fresh_sqlite(folder, "floor.db")
    db = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA foreign_keys=ON")
    state: dict[int, str] = {}
    version: dict[int, int] = {}
    seq: dict[int, int] = {}
    tasks: dict[int, list[int]] = {}
    next_task = [0]
    serial = [0]
    notice = sample["notices"]

    def step(cur: sqlite3.Cursor, ids: list[int], triggers: list[str], payload: str = "{}") -> None:
        events = []
        for c in ids:
            for trigger in triggers:
                src = state[c]
                state[c] = PATH[(src, trigger)]
                seq[c] += 1
                events.append((c, seq[c], src, state[c], trigger, "actor", AT, payload))
            version[c] += 1
        cur.executemany(
            'INSERT INTO case_event (case_id, seq, from_state, to_state, "trigger", actor, at,'
            " payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            events,
        )
        cur.executemany(
            "UPDATE relief_case SET state = ?, version = ?, updated_at = ? WHERE id = ?"
            " AND version = ?",
            [(state[c], version[c], AT, c, version[c] - 1) for c in ids],
        )

    def open_tasks(cur: sqlite3.Cursor, ids: list[int], kind: str, sections: list[str]) -> None:
        rows = []
        for c in ids:
            for section in sections:
                next_task[0] += 1
                tasks.setdefault(c, []).append(next_task[0])
                rows.append(
                    (next_task[0], c, kind, "zgc", section, "unit", "open", "2023-01-30", AT)
                )
        cur.executemany(
            "INSERT INTO review_task (id, case_id, kind, bureau_code, section_code, unit, status,"
            " due_on, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )

    def close_tasks(cur: sqlite3.Cursor, ids: list[int], decision: str) -> None:
        cur.executemany(
            "UPDATE review_task SET status = 'done', decision = ?, decided_at = ?, decided_by = ?"
            " WHERE case_id = ? AND status = 'open'",
            [(decision, AT, "actor", c) for c in ids],
        )

    def notices(cur: sqlite3.Cursor, ids: list[int], kind: str, prefix: str | None) -> None:
        title, text, html, digest = notice[kind]
        rows = []
        for c in ids:
            number = None
            if prefix:
                serial[0] += 1
                number = f"{prefix}〔2022〕{serial[0]}号"
            rows.append((c, kind, seq[c], f"notice:{c}:{seq[c]}:{kind}", AT, number, title, text,
                         html, digest))  # fmt: skip
        cur.executemany(
            "INSERT INTO notice (case_id, kind, audience, event_seq, payload, status,"
            " idempotency_key, attempts, created_at, doc_number, issuer, recipient, title,"
            " body_text, body_html, content_hash) VALUES (?, ?, 'applicant', ?, '{}', 'pending',"
            " ?, 0, ?, ?, 'issuer', 'recipient', ?, ?, ?, ?)",
            rows,
        )
        if prefix:
            cur.execute(
                "INSERT INTO doc_serial (prefix, year, last) VALUES (?, 2022, ?) ON CONFLICT"
                " (prefix, year) DO UPDATE SET last = excluded.last",
                (prefix, serial[0]),
            )

    def stage(ids: list[int], body: Any) -> None:
        for i in range(0, len(ids), chunk):
            part = ids[i : i + chunk]
            cur = db.cursor()
            cur.execute("BEGIN IMMEDIATE")
            body(cur, part)
            cur.execute("COMMIT")

    ids = list(range(1, n + 1))

    def submit(cur: sqlite3.Cursor, part: list[int]) -> None:
        cur.executemany(
            "INSERT INTO applicant (id, identity, uscc, name, kind, notify, created_at)"
            " VALUES (?, ?, ?, '', 'enterprise', '[]', ?)",
            [(c, f"ID{c}", f"ID{c}", AT) for c in part],
        )
        cur.executemany(
            "INSERT INTO relief_case (id, case_no, case_type, state, version, applicant_id,"
            " subject_key, facts, assessment, decision, edition_id, filed_on, amount_ceiling,"
            " manual_review, query_code, created_at, updated_at) VALUES (?, ?, 'rent_park_subsidy',"
            " 'draft', 1, ?, ?, ?, ?, 'granted', 'dongcheng-2022-8', '2022-07-01', 30000000, 0,"
            " '123456', ?, ?)",
            [(c, f"DC-2022-{c:06d}", c, f"park_cap:b:{c}", sample["facts"], sample["assessment"],
              AT, AT) for c in part],
        )  # fmt: skip
        for c in part:
            state[c], version[c], seq[c] = "draft", 1, 0
        step(cur, part, ["submit", "auto_accept", "start_review"])
        notices(cur, part, "acceptance", "东园企")
        open_tasks(cur, part, "review", ["enterprise", "strategy"])

    def review(which: int) -> Any:
        def body(cur: sqlite3.Cursor, part: list[int]) -> None:
            cur.executemany(
                "UPDATE review_task SET status = 'done', decision = 'pass', decided_at = ?,"
                " decided_by = 'reviewer' WHERE id = ? AND status = 'open'",
                [(AT, tasks[c][which]) for c in part],
            )
            step(cur, part, ["review_decided"] + (["complete_reviews"] if which else []))
            if which:
                open_tasks(cur, part, "confirm", ["enterprise"])

        return body

    def confirm(cur: sqlite3.Cursor, part: list[int]) -> None:
        close_tasks(cur, part, "confirmed")
        step(cur, part, ["confirm"])
        open_tasks(cur, part, "decide", ["district"])

    def approve(cur: sqlite3.Cursor, part: list[int]) -> None:
        close_tasks(cur, part, "approve")
        cur.executemany(
            "INSERT INTO cap_account (key, cap_limit, opening, granted, updated_at)"
            " VALUES (?, 100000000, 0, 30000000, ?)",
            [(f"park_cap:b:{c}", AT) for c in part],
        )
        cur.executemany(
            "INSERT INTO cap_grant (cap_key, case_id, amount, at) VALUES (?, ?, 30000000, ?)",
            [(f"park_cap:b:{c}", c, AT) for c in part],
        )
        step(cur, part, ["approve"], '{"granted": "300000.00", "capped": false}')
        notices(cur, part, "decision_granted", "京东政")
        step(cur, part, ["order_payout"])
        cur.executemany(
            "INSERT INTO payout (case_id, amount, payer_bureau, idempotency_key, status, attempts,"
            " created_at, updated_at) VALUES (?, 30000000, 'finance', ?, 'ordered', 0, ?, ?)",
            [(c, f"payout:DC-2022-{c:06d}", AT, AT) for c in part],
        )
        cur.executemany(
            "UPDATE relief_case SET amount_granted = 30000000 WHERE id = ?", [(c,) for c in part]
        )

    def pay(cur: sqlite3.Cursor, part: list[int]) -> None:
        cur.executemany(
            "UPDATE payout SET status = 'paid', external_ref = ?, updated_at = ? WHERE case_id = ?"
            " AND status != 'paid'",
            [(f"TR-{c}", AT, c) for c in part],
        )
        step(cur, part, ["record_payment", "close"], '{"external_ref": "TR"}')
        notices(cur, part, "payout", "区财")

    seconds = 0.0
    for body in (submit, review(0), review(1), confirm, approve, pay):
        seconds += timed(lambda body=body: stage(ids, body))
    closed = db.execute("SELECT count(*) FROM relief_case WHERE state = 'closed'").fetchone()[0]
    assert closed == n, closed
    db.close()
    return n / seconds


def run_bare_floor(folder: Path, n: int, chunk: int) -> float:
    """Only a state table: one row per case, one version-checked UPDATE per step."""
    path = folder / "bare.db"
    path.unlink(missing_ok=True)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE case_state (id INTEGER PRIMARY KEY, state TEXT, version INTEGER)")
    path_steps = [
        ["submit", "auto_accept", "start_review"], ["review_decided"],
        ["review_decided", "complete_reviews"], ["confirm"], ["approve", "order_payout"],
        ["record_payment", "close"],
    ]  # fmt: skip
    state = {c: "draft" for c in range(1, n + 1)}
    version = dict.fromkeys(state, 1)

    def run() -> None:
        ids = list(state)
        for i in range(0, n, chunk):
            db.execute("BEGIN IMMEDIATE")
            db.executemany(
                "INSERT INTO case_state VALUES (?, 'draft', 1)", [(c,) for c in ids[i : i + chunk]]
            )
            db.execute("COMMIT")
        for triggers in path_steps:
            for i in range(0, n, chunk):
                part = ids[i : i + chunk]
                for c in part:
                    for t in triggers:
                        state[c] = PATH[(state[c], t)]
                    version[c] += 1
                db.execute("BEGIN IMMEDIATE")
                db.executemany(
                    "UPDATE case_state SET state = ?, version = ? WHERE id = ? AND version = ?",
                    [(state[c], version[c], c, version[c] - 1) for c in part],
                )
                db.execute("COMMIT")

    seconds = timed(run)
    db.close()
    return n / seconds


# ---------------------------------------------------------------- SpiffWorkflow
def run_spiff(folder: Path, n: int, chunk: int) -> float:
    from SpiffWorkflow.bpmn import BpmnWorkflow
    from SpiffWorkflow.bpmn.parser import BpmnParser
    from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
    from SpiffWorkflow.util.task import TaskState

    parser = BpmnParser()
    parser.add_bpmn_file(str(BPMN))
    spec = parser.get_spec("relief_case")
    serializer = BpmnWorkflowSerializer()
    path = folder / "spiff.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE workflow (id INTEGER PRIMARY KEY, state TEXT NOT NULL)")
    ids = list(range(1, n + 1))

    def start() -> None:
        for i in range(0, n, chunk):
            rows = []
            for c in ids[i : i + chunk]:
                wf = BpmnWorkflow(spec)
                wf.do_engine_steps()
                rows.append((c, serializer.serialize_json(wf)))
            db.execute("BEGIN IMMEDIATE")
            db.executemany("INSERT INTO workflow (id, state) VALUES (?, ?)", rows)
            db.execute("COMMIT")

    def complete(task_name: str, data: dict[str, Any]) -> None:
        for i in range(0, n, chunk):
            part = ids[i : i + chunk]
            marks = ",".join("?" * len(part))
            stored = db.execute(f"SELECT id, state FROM workflow WHERE id IN ({marks})", part)
            rows = []
            for c, state in stored.fetchall():
                wf = serializer.deserialize_json(state)
                [task] = [
                    t
                    for t in wf.get_tasks(state=TaskState.READY, manual=True)
                    if t.task_spec.name == task_name
                ]
                task.data.update(data)
                task.run()
                wf.do_engine_steps()
                rows.append((serializer.serialize_json(wf), c))
            db.execute("BEGIN IMMEDIATE")
            db.executemany("UPDATE workflow SET state = ? WHERE id = ?", rows)
            db.execute("COMMIT")

    def run() -> None:
        start()
        complete("review_park", {"review_park": "pass"})
        complete("review_investment", {"review_investment": "pass"})
        complete("confirm", {"confirmed": True})
        complete("approve", {"granted": "300000.00"})
        complete("payout", {"external_ref": "TR"})

    seconds = timed(run)
    last = db.execute("SELECT state FROM workflow ORDER BY id DESC LIMIT 1").fetchone()[0]
    assert serializer.deserialize_json(last).is_completed()
    db.close()
    return n / seconds


# ---------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=10_000, help="cases per run (relief and floor)")
    ap.add_argument("--spiff-n", type=int, default=2_000, help="cases per SpiffWorkflow run")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--chunk", type=int, default=CHUNK, help="cases per transaction")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    header("lifecycle throughput (SQLite)")
    print(f"N={args.n} (SpiffWorkflow {args.spiff_n}), {args.runs} runs, chunk {args.chunk}\n")
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="relief-bench-") as tmp:
        folder = Path(tmp)
        sample = sample_rows(folder)
        for run in range(1, args.runs + 1):
            relief, stages = run_relief(folder, args.n, args.chunk)
            spiff = run_spiff(folder, args.spiff_n, args.chunk)
            floor = run_floor(folder, args.n, args.chunk, sample)
            bare = run_bare_floor(folder, args.n, args.chunk)
            row = {
                "relief": relief, "spiff": spiff, "floor": floor, "bare_floor": bare,
                "relief_over_spiff": relief / spiff, "floor_over_relief": floor / relief,
                "bare_over_relief": bare / relief,
                "stages": {k: round(v, 3) for k, v in stages.items()},
            }  # fmt: skip
            rows.append(row)
            print(
                f"run {run}: relief {relief:8.0f} cases/s | SpiffWorkflow {spiff:6.1f} | "
                f"floor {floor:8.0f} | bare floor {bare:8.0f} || relief/Spiff "
                f"{row['relief_over_spiff']:6.1f}x  floor/relief {row['floor_over_relief']:5.2f}x"
            )
            print("        relief stages (s): " + ", ".join(
                f"{k} {v:.2f}" for k, v in stages.items()))  # fmt: skip
            sys.stdout.flush()
    med = {k: median([r[k] for r in rows]) for k in rows[0] if k != "stages"}
    print()
    print(f"median cases/s: relief {med['relief']:.0f}, SpiffWorkflow {med['spiff']:.1f}, "
          f"floor {med['floor']:.0f}, bare floor {med['bare_floor']:.0f}")  # fmt: skip
    print(
        f"median ratios (per run): relief/SpiffWorkflow {med['relief_over_spiff']:.1f}x "
        f"(goal >= 6x: {'met' if med['relief_over_spiff'] >= 6 else 'MISSED'}); "
        f"floor/relief {med['floor_over_relief']:.2f}x "
        f"(goal <= 2.5x: {'met' if med['floor_over_relief'] <= 2.5 else 'MISSED'}); "
        f"bare floor/relief {med['bare_over_relief']:.1f}x"
    )
    dump_json(args.json, {"runs": rows, "median": med, "args": vars(args)})


if __name__ == "__main__":
    main()
