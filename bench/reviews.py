"""A bureau's review through the API: one reviewer on SQLite; fifty at once over PostgreSQL.

    python bench/reviews.py [--cases 600] [--samples 300] [--runs 3]
                        [--pg-cases 3000] [--reviewers 50] [--seconds 30]

1. One reviewer, SQLite. `relief serve --no-flows` on a fresh SQLite file holding CASES
   building-subsidy cases under review; a reviewer of one of the two reviewing sections posts
   `POST /api/tasks/{id}/review {"decision": "pass"}` for SAMPLES tasks of their queue, one
   after another over one keep-alive connection, each timed at the client from send to
   answer. In the same run, the same decision made by `CaseEngine.decide_task` in this
   process on a copy of the file, to show what the HTTP layer adds. Goal: median ≤ 8 ms.
2. Fifty reviewers, PostgreSQL. `relief serve --no-flows --workers 2` (two API processes) on a
   throwaway PostgreSQL server holding PG-CASES cases under review; REVIEWERS reviewers, half
   in each reviewing section, each in a loop: read a page of the section's queue, pick one of
   its tasks at random, post the review. Two reviewers who pick the same task: one wins, the
   other gets 409 (the expected answer). Runs for SECONDS or until the queues are empty; prints
   decisions/s, the latency median and p95, and every answer that was neither 200 nor 409.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from benchlib import (
    NOW,
    ROOT,
    People,
    batch_engine,
    building_application,
    dump_json,
    fresh_sqlite,
    header,
    median,
    p95,
    relief_server,
)

sys.path.insert(0, str(ROOT / "tests"))
import pg_server  # the suite's throwaway server; nothing else comes from the tests


# ---------------------------------------------------------------- the database and its people
def fill(url: str, cases: int) -> tuple[list[str], dict[str, list[str]]]:
    """`cases` cases under review; the reviewing sections and, per section, 25 reviewer tokens."""
    from api.security import create_account
    from states.edition import all_editions
    from states.work import SubmitItem

    engine = batch_engine(url)
    people = People(engine)
    out = engine.submit_many(
        [SubmitItem(building_application(i), actor=people.intake) for i in range(cases)],
        unit_size=500,
    )
    assert not out.refused, next(iter(out.refused.values()))
    from sqlalchemy import text

    with engine.db.connect() as conn:
        sections = sorted(
            conn.execute(
                text("SELECT DISTINCT section_code FROM review_task WHERE kind = 'review'")
            ).scalars()
        )
    bureau_of = {s.code: b.code for b in all_editions()[-1].bureaus for s in b.sections}
    tokens: dict[str, list[str]] = {}
    for section in sections:
        for n in range(25):
            _, token = create_account(
                engine.db, username=f"api-{section}-{n}", role="reviewer", now=NOW,
                bureau=bureau_of[section], section=section,
            )  # fmt: skip
            tokens.setdefault(section, []).append(token)
    engine.db.dispose()
    return sections, tokens


# ---------------------------------------------------------------- 1. one reviewer on SQLite
def one_reviewer(folder: Path, cases: int, samples: int) -> dict[str, float]:
    url = fresh_sqlite(folder, "api.db")
    sections, tokens = fill(url, cases)
    section, token = sections[0], tokens[sections[0]][0]
    twin = folder / "engine.db"
    with sqlite3.connect(folder / "api.db") as src, sqlite3.connect(twin) as dst:
        src.backup(dst)  # WAL and all
    auth = {"Authorization": f"Bearer {token}"}
    ms: list[float] = []
    with relief_server(url, folder) as base, httpx.Client(base_url=base, headers=auth) as client:
        queue = client.get("/api/tasks", params={"limit": 500}).json()
        ids = [t["id"] for t in queue][:samples]
        assert len(ids) == samples, f"{section}: {len(queue)} tasks, {samples} wanted"
        client.post(f"/api/tasks/{ids[0]}/review", json={"decision": "pass"})  # warm
        for task_id in ids[1:]:
            t0 = time.perf_counter()
            r = client.post(f"/api/tasks/{task_id}/review", json={"decision": "pass"})
            ms.append((time.perf_counter() - t0) * 1000)
            assert r.status_code == 200, (r.status_code, r.text)
    engine_ms = _engine_decisions(f"sqlite:///{twin}", f"api-{section}-0", ids)
    return {
        "api_median_ms": median(ms), "api_p95_ms": p95(ms),
        "engine_median_ms": median(engine_ms), "engine_p95_ms": p95(engine_ms),
    }  # fmt: skip


def _engine_decisions(url: str, username: str, ids: list[int]) -> list[float]:
    engine = batch_engine(url)
    actor = engine.actor(username)
    engine.decide_task(ids[0], decision="pass", actor=actor)  # warm
    ms = []
    for task_id in ids[1:]:
        t0 = time.perf_counter()
        engine.decide_task(task_id, decision="pass", actor=actor)
        ms.append((time.perf_counter() - t0) * 1000)
    engine.db.dispose()
    return ms


# ---------------------------------------------------------------- 2. fifty reviewers on PostgreSQL
def many_reviewers(
    server: Any, name: str, folder: Path, cases: int, reviewers: int, seconds: float
) -> dict[str, Any]:
    from models.db import migrate

    url = server.create_database(name)
    migrate(url)
    sections, tokens = fill(url, cases)
    people = [(s, tokens[s][i // len(sections)]) for i in range(reviewers) for s in sections][
        :reviewers
    ]
    with relief_server(url, folder, workers=2) as base:
        return asyncio.run(_reviewers(base, people, seconds))


async def _reviewers(base: str, people: list[tuple[str, str]], seconds: float) -> dict[str, Any]:
    ok_ms: list[float] = []
    page_ms: list[float] = []
    conflicts = 0
    others: dict[str, int] = {}
    stop = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=len(people) * 2)

    async def reviewer(section: str, token: str, client: httpx.AsyncClient) -> None:
        nonlocal conflicts
        auth = {"Authorization": f"Bearer {token}"}
        rng = random.Random(token)
        while time.monotonic() < stop:
            t0 = time.perf_counter()
            page = await client.get("/api/tasks", params={"limit": 50}, headers=auth)
            page_ms.append((time.perf_counter() - t0) * 1000)
            if page.status_code != 200:
                others[f"GET {page.status_code}"] = others.get(f"GET {page.status_code}", 0) + 1
                continue
            queue = page.json()
            if not queue:
                return
            task = rng.choice(queue)["id"]
            t0 = time.perf_counter()
            r = await client.post(
                f"/api/tasks/{task}/review", json={"decision": "pass"}, headers=auth
            )
            elapsed = (time.perf_counter() - t0) * 1000
            if r.status_code == 200:
                ok_ms.append(elapsed)
            elif r.status_code == 409:
                conflicts += 1
            else:
                key = f"POST {r.status_code} {r.text[:80]}"
                others[key] = others.get(key, 0) + 1

    t0, cpu0 = time.perf_counter(), time.process_time()
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:
        await asyncio.gather(*(reviewer(s, t, client) for s, t in people))
    wall = time.perf_counter() - t0
    client_cpu = time.process_time() - cpu0
    return {
        "decisions": len(ok_ms), "seconds": wall, "decisions_per_s": len(ok_ms) / wall,
        "median_ms": median(ok_ms), "p95_ms": p95(ok_ms), "conflicts_409": conflicts,
        "other_answers": others, "page_median_ms": median(page_ms), "page_p95_ms": p95(page_ms),
        "client_cpu_share": client_cpu / wall,
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", type=int, default=600)
    ap.add_argument("--samples", type=int, default=300)
    ap.add_argument("--pg-cases", type=int, default=3000)
    ap.add_argument("--reviewers", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--skip-pg", action="store_true")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    header("a bureau's review through the API")
    single: list[dict[str, float]] = []
    crowd: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="relief-bench-api-") as tmp:
        folder = Path(tmp)
        print("## one reviewer, SQLite (ms per decision)\n")
        print("| run | API median | API p95 | engine median | engine p95 | API / engine |")
        print("|---|---|---|---|---|---|")
        for run in range(1, args.runs + 1):
            r = one_reviewer(folder, args.cases, args.samples)
            single.append(r)
            print(
                f"| {run} | {r['api_median_ms']:.2f} | {r['api_p95_ms']:.2f} |"
                f" {r['engine_median_ms']:.2f} | {r['engine_p95_ms']:.2f} |"
                f" {r['api_median_ms'] / r['engine_median_ms']:.2f}× |",
                flush=True,
            )
        keys = ("api_median_ms", "api_p95_ms", "engine_median_ms", "engine_p95_ms")
        med = {k: median([r[k] for r in single]) for k in keys}
        print(
            f"| **median** | **{med['api_median_ms']:.2f}** | {med['api_p95_ms']:.2f} |"
            f" {med['engine_median_ms']:.2f} | {med['engine_p95_ms']:.2f} |"
            f" {med['api_median_ms'] / med['engine_median_ms']:.2f}× |\n"
        )
        if not args.skip_pg:
            print(f"## {args.reviewers} reviewers, two API processes, PostgreSQL\n")
            print("| run | decisions | decisions/s | median ms | p95 ms | 409s | other answers |")
            print("|---|---|---|---|---|---|---|")
            server = pg_server.PostgresServer.start()
            try:
                for run in range(1, args.runs + 1):
                    r = many_reviewers(
                        server, f"crowd{run}", folder, args.pg_cases, args.reviewers, args.seconds
                    )
                    crowd.append(r)
                    print(
                        f"| {run} | {r['decisions']} | {r['decisions_per_s']:.1f} |"
                        f" {r['median_ms']:.1f} | {r['p95_ms']:.1f} | {r['conflicts_409']} |"
                        f" {r['other_answers'] or 'none'} |",
                        flush=True,
                    )
            finally:
                server.stop()
            print(
                f"| **median** | | **{median([r['decisions_per_s'] for r in crowd]):.1f}** |"
                f" {median([r['median_ms'] for r in crowd]):.1f} |"
                f" **{median([r['p95_ms'] for r in crowd]):.1f}** | | |"
            )
    dump_json(args.json, {"single_sqlite": single, "crowd_postgresql": crowd})


if __name__ == "__main__":
    main()
