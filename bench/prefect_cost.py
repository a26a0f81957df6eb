"""Prefect's cost per batch: a payout batch as Prefect flows versus the same calls made directly.

    python bench/prefect_cost.py [--n 10000] [--runs 3]

Setup (not timed): N building-subsidy cases driven to `payout_ordered` through the batch path,
kept as a template SQLite file; each measurement starts from a copy of it.

The batch is the payout stage of those N cases:
1. `payout` flow, file adapter: one payment-instruction CSV for every ordered payout;
2. the treasury answers with a reconciliation CSV (all paid; written outside the timing);
3. `reconcile` flow: one task per chunk of RELIEF_CHUNK_SIZE lines, each settling its cases
   through the engine (record_payment → paid → closed, request key `paid:<key>`).

"Direct" runs the same task functions without Prefect (`task.fn(...)`, the flow bodies'
chunking done in a plain loop). Prefect's share of a batch = (flow − direct) / flow, measured
in the same run; the flow and direct orders alternate between runs. Heartbeats are off
(flows.common.heartbeats_off) as in `relief flow run`; the temporary Prefect server that the
first flow of a process starts is timed once and reported apart.
"""

from __future__ import annotations

import argparse
import csv
import functools
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchlib import (
    NOW,
    People,
    batch_engine,
    building_application,
    dump_json,
    fresh_sqlite,
    header,
    median,
)


def prepare(folder: Path, n: int) -> Path:
    """N cases at payout_ordered (reviews, confirmation and approval done), as a file."""
    from sqlalchemy import select
    from sqlmodel import Session

    from models.tables import ReviewTask
    from states.work import FireItem, ReviewItem, SubmitItem

    url = fresh_sqlite(folder, "template.db")
    engine = batch_engine(url)
    people = People(engine)
    out = engine.submit_many([SubmitItem(building_application(i), people.intake) for i in range(n)])
    ids = [r[0].case_id for r in out.results()]
    with Session(engine.db) as s:
        tasks = s.execute(
            select(ReviewTask.id, ReviewTask.section_code).where(ReviewTask.kind == "review")
        ).all()
    for section in sorted({sec for _, sec in tasks}):
        engine.decide_tasks(
            [ReviewItem(t, "pass", people.reviewer(section)) for t, sec in tasks if sec == section]
        )
    engine.fire_many([FireItem(c, "confirm", people.confirmer) for c in ids])
    done = engine.fire_many([FireItem(c, "approve", people.decider) for c in ids])
    assert all(r.state == "payout_ordered" for r in done.results()) and len(done.done) == n
    engine.db.dispose()
    return folder / "template.db"


def use_database(template: Path, folder: Path, name: str) -> str:
    """A copy of the template, made the flows' database (RELIEF_DATABASE_URL)."""
    from models.settings import get_settings

    target = folder / name
    for suffix in ("", "-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(template, target)
    url = f"sqlite:///{target}"
    os.environ["RELIEF_DATABASE_URL"] = url
    get_settings.cache_clear()
    return url


def reconciliation(instruction_files: list[str], path: Path) -> Path:
    """The treasury's answer: every instruction paid (the treasury's work, not timed)."""
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["idempotency_key", "status", "reference"])
        for name in instruction_files:
            with open(name, encoding="utf-8") as fh:
                for row in csv.DictReader(fh):
                    key = row["idempotency_key"]
                    writer.writerow([key, "paid", f"TR-{key.rsplit('-', 1)[-1]}"])
    return path


def closed(url: str) -> int:
    from sqlalchemy import create_engine, text

    db = create_engine(url)
    with db.connect() as conn:
        count = int(
            conn.execute(
                text("SELECT count(*) FROM relief_case WHERE state = 'closed'")
            ).scalar_one()
        )
    db.dispose()
    return count


@contextmanager
def inside(task: Any, clock: list[float]) -> Iterator[None]:
    """Add the wall time spent inside the task's own function to clock[0]."""
    original = task.fn

    @functools.wraps(original)
    def timed_fn(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            clock[0] += time.perf_counter() - t0

    task.fn = timed_fn
    try:
        yield
    finally:
        task.fn = original


def as_flows(template: Path, folder: Path, run: int) -> dict[str, float]:
    from flows.common import heartbeats_off
    from flows.payout import PayoutParams, payout_flow, write_payment_files
    from flows.reconcile import ReconcileParams, reconcile_flow, reconcile_lines

    url = use_database(template, folder, f"flow{run}.db")
    out_dir = folder / f"flow{run}-payments"
    in_file, in_recon = [0.0], [0.0]
    with heartbeats_off(), inside(write_payment_files, in_file), inside(reconcile_lines, in_recon):
        t0 = time.perf_counter()
        summary = payout_flow(PayoutParams(adapter="file", out_dir=out_dir))
        t1 = time.perf_counter()
        recon = reconciliation(summary.files, folder / f"flow{run}-recon.csv")
        t2 = time.perf_counter()
        result = reconcile_flow(ReconcileParams(file=recon))
        t3 = time.perf_counter()
    assert result.paid == summary.sent_in_files, (result, summary)
    n = closed(url)
    return {
        "instruction file": t1 - t0, "reconcile": t3 - t2, "closed": n,
        "inside instruction file": in_file[0], "inside reconcile": in_recon[0],
    }  # fmt: skip


def direct(template: Path, folder: Path, run: int) -> dict[str, float]:
    """The flows' bodies with their task functions called as plain functions."""
    from flows.common import chunked
    from flows.payout import write_payment_files
    from flows.reconcile import reconcile_lines
    from flows.treasury import FileTreasury
    from models.settings import get_settings

    url = use_database(template, folder, f"direct{run}.db")
    out_dir = folder / f"direct{run}-payments"
    t0 = time.perf_counter()
    out = write_payment_files.fn(str(out_dir))
    t1 = time.perf_counter()
    recon = reconciliation(out["files"], folder / f"direct{run}-recon.csv")
    t2 = time.perf_counter()
    rows = FileTreasury.read_reconciliation(recon)
    paid = sum(reconcile_lines.fn(c).paid for c in chunked(rows, get_settings().chunk_size))
    t3 = time.perf_counter()
    assert paid == out["sent"]
    n = closed(url)
    return {"instruction file": t1 - t0, "reconcile": t3 - t2, "closed": n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=10_000, help="cases in the payout batch")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--chunk", type=int, help="RELIEF_CHUNK_SIZE (lines per task; default 200)")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    if args.chunk:
        os.environ["RELIEF_CHUNK_SIZE"] = str(args.chunk)
    tmp = Path(tempfile.mkdtemp(prefix="relief-bench-prefect-"))
    os.environ["PREFECT_HOME"] = str(tmp / "prefect-home")
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ["RELIEF_NOW"] = NOW.isoformat()
    header("Prefect cost per payout batch (SQLite)")
    from prefect import flow

    from flows.common import heartbeats_off
    from models.settings import get_settings

    print(f"N={args.n}, {args.runs} runs, chunk {get_settings().chunk_size} lines per task\n")
    try:
        t = time.perf_counter()
        template = prepare(tmp, args.n)
        print(f"setup: {args.n} cases to payout_ordered in {time.perf_counter() - t:.1f} s")

        @flow(name="bench-warmup")
        def warmup() -> None:
            return None

        with heartbeats_off():
            t = time.perf_counter()
            warmup()
            start = time.perf_counter() - t
        print(f"one-time start of Prefect's temporary server (first flow run): {start:.1f} s\n")
        rows: list[dict[str, Any]] = []
        for run in range(1, args.runs + 1):
            order = [as_flows, direct] if run % 2 else [direct, as_flows]
            got = {fn.__name__: fn(template, tmp, run) for fn in order}
            f, d = got["as_flows"], got["direct"]
            assert f["closed"] == d["closed"] == args.n, (f, d)
            row: dict[str, Any] = {}
            for stage in ("instruction file", "reconcile"):
                row[stage] = {
                    "flow": f[stage], "direct": d[stage], "inside_tasks": f[f"inside {stage}"],
                    "share_vs_direct": (f[stage] - d[stage]) / f[stage],
                    "share_in_run": (f[stage] - f[f"inside {stage}"]) / f[stage],
                }  # fmt: skip
            tf = f["instruction file"] + f["reconcile"]
            td = d["instruction file"] + d["reconcile"]
            ti = f["inside instruction file"] + f["inside reconcile"]
            row["total"] = {
                "flow": tf, "direct": td, "inside_tasks": ti,
                "share_vs_direct": (tf - td) / tf, "share_in_run": (tf - ti) / tf,
            }  # fmt: skip
            rows.append(row)
            print(
                f"run {run}: flows {tf:6.2f} s (inside tasks {ti:6.2f} s), direct {td:6.2f} s; "
                f"Prefect's share {100 * row['total']['share_in_run']:4.1f}% in the run, "
                f"{100 * row['total']['share_vs_direct']:5.1f}% against direct  "
                f"[instruction file {f['instruction file']:.2f}/{d['instruction file']:.2f} s, "
                f"reconcile {f['reconcile']:.2f}/{d['reconcile']:.2f} s]"
            )
            sys.stdout.flush()
        med = {
            k: median([r["total"][k] for r in rows])
            for k in ("flow", "direct", "inside_tasks", "share_in_run", "share_vs_direct")
        }
        share = med["share_in_run"]
        print()
        print(
            f"median: flows {med['flow']:.2f} s, direct {med['direct']:.2f} s for {args.n} cases"
            f" ({args.n / med['flow']:.0f} vs {args.n / med['direct']:.0f} cases/s)"
        )
        print(
            f"Prefect's share of a batch: {100 * share:.1f}% measured in the run (flow wall time"
            f" not spent inside the task functions), {100 * med['share_vs_direct']:.1f}% as"
            f" flows minus direct (noisier); goal <= 10%: {'met' if share <= 0.10 else 'MISSED'}"
        )
        print("per stage (in the run): " + ", ".join(
            f"{s} {100 * median([r[s]['share_in_run'] for r in rows]):.1f}%"
            for s in ("instruction file", "reconcile")
        ))  # fmt: skip
        dump_json(args.json, {"runs": rows, "server_start_s": start, "args": vars(args)})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
