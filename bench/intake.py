"""An operator's intake batch: `relief flow run intake FILE` beside the engine's own submit.

    python bench/intake.py [--n 10000] [--runs 3]

Each run files the same N building-subsidy applications twice, each time on a fresh SQLite file:

- operator: `relief flow run intake FILE --as OPERATOR` as a process, timed from its start to
  its exit (Python's start, the file read, every chunk a Prefect task of the flow run on the
  Prefect server a `relief serve` runs, every row's intake record, the summary printed);
- engine: `CaseEngine.submit_many` in this process, the same applications as SubmitItems in sets
  of the same size (RELIEF_CHUNK_SIZE), each with its request key: what intake would cost with
  no command, no file, no Prefect and no intake records.

The order alternates from run to run. It prints seconds and cases/s per run, the medians, and
operator / engine per run (the goal: at most 1.5), and checks that both files hold the same
cases in the same states.
"""

from __future__ import annotations

import argparse
import json
import tempfile
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
    relief_command,
    running_prefect_server,
    timed,
)


def operator_run(folder: Path, batch: Path, env: dict[str, str]) -> tuple[float, str]:
    url = fresh_sqlite(folder, "operator.db")
    env = {**env, "RELIEF_DATABASE_URL": url, "RELIEF_NOW": NOW.isoformat()}
    relief_command(["account", "create", "bench-intake", "--role", "operator"], env)
    seconds, _ = relief_command(["flow", "run", "intake", str(batch), "--as", "bench-intake"], env)
    return seconds, url


def engine_run(folder: Path, applications: list[dict[str, Any]]) -> tuple[float, str]:
    from models.settings import get_settings
    from states.work import SubmitItem

    url = fresh_sqlite(folder, "engine.db")
    engine = batch_engine(url)
    actor = People(engine).intake
    items = [SubmitItem(a, actor, request_key=f"bench:{i}") for i, a in enumerate(applications, 1)]
    unit = get_settings().chunk_size

    def submit() -> None:
        outcome = engine.submit_many(items, unit_size=unit)
        assert not outcome.refused, next(iter(outcome.refused.values()))

    seconds = timed(submit)
    engine.db.dispose()
    return seconds, url


def states_of(url: str) -> dict[str, int]:
    from sqlalchemy import create_engine, text

    db = create_engine(url)
    with db.connect() as conn:
        rows = conn.execute(text("SELECT state, count(*) FROM relief_case GROUP BY state")).all()
    db.dispose()
    return {state: count for state, count in rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    header(f"intake of {args.n:,} applications: relief flow run intake vs the engine's submit")
    applications = [building_application(i) for i in range(args.n)]
    runs: list[dict[str, float]] = []
    last: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="relief-bench-intake-") as tmp:
        folder = Path(tmp)
        batch = folder / "batch.json"
        batch.write_text(json.dumps(applications, ensure_ascii=False), encoding="utf-8")
        with running_prefect_server(folder) as env:
            print("Prefect server running (as relief serve runs it)\n")
            print("| run | operator s | cases/s | engine s | cases/s | operator / engine |")
            print("|---|---|---|---|---|---|")
            for run in range(1, args.runs + 1):
                if run % 2:
                    op, op_url = operator_run(folder, batch, env)
                    en, en_url = engine_run(folder, applications)
                else:
                    en, en_url = engine_run(folder, applications)
                    op, op_url = operator_run(folder, batch, env)
                last = states_of(op_url)
                assert last == states_of(en_url), (last, states_of(en_url))
                runs.append({"operator": op, "engine": en, "ratio": op / en})
                print(
                    f"| {run} | {op:.1f} | {args.n / op:.0f} | {en:.1f} | {args.n / en:.0f} |"
                    f" {op / en:.2f}× |",
                    flush=True,
                )
    med = {k: median([r[k] for r in runs]) for k in ("operator", "engine", "ratio")}
    print(
        f"| **median** | **{med['operator']:.1f}** | {args.n / med['operator']:.0f} |"
        f" **{med['engine']:.1f}** | {args.n / med['engine']:.0f} | **{med['ratio']:.2f}×** |"
    )
    print(f"\nboth files, every run: the same cases in the same states ({last})")
    dump_json(args.json, {"n": args.n, "runs": runs, "median": med})


if __name__ == "__main__":
    main()
