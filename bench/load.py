"""A district's opening day: applicants filing, reviewers deciding, status lookups, at once.

    python bench/load.py [--clients 50,100] [--seconds 60] [--workers 2] [--cases 3000]
                         [--json FILE]

A throwaway PostgreSQL server on loopback, `relief serve --no-flows --workers 2` (two API
processes, as a deployment runs them) and, in this process, a bounded asyncio driver of
CLIENTS virtual users, each in a loop without pause for SECONDS, then it stops by itself:

- applicants (two in five): each its own enterprise and account; files a new application with a
  fresh Idempotency-Key, reads the case and its own list of cases; every fifth filing (and the
  first, while the applicant row does not exist yet) is sent twice at the same moment with the
  same key, so that the two copies may land on different processes;
- reviewers (two in five): read a page of the section's queue, pass a task picked at random (two
  who pick the same one: one wins, the other's 409 is the expected answer);
- the public (one in five): look a case up by its number and query code.

Printed per route: requests, requests/s, p50 / p95 / p99 in ms, answers by status and every
transport error (a connection dropped or refused). Then the checks that nothing was lost or
done twice, by SQL on the database: one set of cases per key and the same answer to both copies,
every answered case stored, no case without its events (seq 1…n, each starting where the last
ended, the last at the case's state), no task decided twice, no document number given twice.

The suite runs the same driver for a few seconds (tests/e2e/test_load.py) and asserts the
checks, not a speed.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from benchlib import (
    NOW,
    ROOT,
    People,
    batch_engine,
    building_application,
    cpu_seconds_by_part,
    dump_json,
    header,
    machine,
    relief_server,
    uscc,
)

sys.path.insert(0, str(ROOT / "tests"))

#: The client's keep-alive expiry: shorter than the server's (`relief serve` keeps an idle
#: connection for RELIEF_HTTP_KEEP_ALIVE_SECONDS), so the client never sends on a connection
#: the server is closing. docs/reliability.md, "Load".
CLIENT_KEEPALIVE_EXPIRY = 5.0
TIMEOUT = 60.0
DOUBLE_EVERY = 5  # every fifth filing is sent twice at once with one key
FIRST_APPLICANT = 500_000  # enterprise numbers of the load's applicants (the seed uses 0…)


# ---------------------------------------------------------------- the district before the day
@dataclass
class District:
    """Who takes part: tokens per role, and the cases the public looks up."""

    applicants: list[tuple[int, str]]  # (enterprise number, token)
    reviewers: list[tuple[str, str]]  # (section, token)
    lookups: list[tuple[str, str]]  # (case number, query code)


def prepare(url: str, *, cases: int, applicants: int, reviewers: int) -> District:
    """`cases` building-subsidy cases under review, and the accounts of the day's people."""
    from sqlalchemy import text

    from api.security import create_account
    from states.edition import all_editions
    from states.work import SubmitItem

    engine = batch_engine(url)
    people = People(engine)
    if cases:
        out = engine.submit_many(
            [SubmitItem(building_application(i), actor=people.intake) for i in range(cases)],
            unit_size=500,
        )
        assert not out.refused, next(iter(out.refused.values()))
    with engine.db.connect() as conn:
        sections = sorted(
            conn.execute(
                text("SELECT DISTINCT section_code FROM review_task WHERE kind = 'review'")
            ).scalars()
        )
        lookups = [
            (str(no), str(code))
            for no, code in conn.execute(
                text("SELECT case_no, query_code FROM relief_case ORDER BY id LIMIT 500")
            )
        ]
    bureau_of = {s.code: b.code for b in all_editions()[-1].bureaus for s in b.sections}
    district = District([], [], lookups)
    for i in range(reviewers):
        section = sections[i % len(sections)] if sections else "credit"
        _, token = create_account(
            engine.db, username=f"load-{section}-{i}", role="reviewer", now=NOW,
            bureau=bureau_of.get(section, "samr"), section=section,
        )  # fmt: skip
        district.reviewers.append((section, token))
    for i in range(applicants):
        number = FIRST_APPLICANT + i
        _, token = create_account(
            engine.db, username=f"load-applicant-{i}", role="applicant", now=NOW,
            uscc=uscc(number),
        )  # fmt: skip
        district.applicants.append((number, token))
    engine.db.dispose()
    return district


# ---------------------------------------------------------------- what the clients saw
@dataclass(frozen=True)
class Answer:
    """One answer as the driver read it: the status and the whole body."""

    status_code: int
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Tally:
    """Every answer of the run, by route; what each filing key was answered."""

    ms: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: dict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    transport: Counter[str] = field(default_factory=Counter)
    filings: dict[str, list[tuple[str, ...]]] = field(default_factory=lambda: defaultdict(list))
    bodies: list[str] = field(default_factory=list)  # the first few unexpected answers
    seconds: float = 0.0

    def record(self, route: str, started: float, response: Answer | None) -> None:
        if response is None:
            return
        self.ms[route].append((time.perf_counter() - started) * 1000)
        self.statuses[route][response.status_code] += 1
        unexpected = response.status_code >= 500 or (
            response.status_code >= 400 and response.status_code != 409
        )
        if unexpected and len(self.bodies) < 20:
            self.bodies.append(f"{route} {response.status_code} {response.text[:200]}")

    def summary(self) -> dict[str, Any]:
        routes = {}
        for route in sorted(self.statuses):
            ms = sorted(self.ms[route])
            routes[route] = {
                "requests": len(ms),
                "per_s": len(ms) / self.seconds if self.seconds else 0.0,
                "p50_ms": quantile(ms, 0.50), "p95_ms": quantile(ms, 0.95),
                "p99_ms": quantile(ms, 0.99),
                "statuses": dict(sorted(self.statuses[route].items())),
            }  # fmt: skip
        every = sorted(itertools.chain.from_iterable(self.ms.values()))
        return {
            "seconds": self.seconds,
            "requests": len(every),
            "per_s": len(every) / self.seconds if self.seconds else 0.0,
            "p50_ms": quantile(every, 0.50), "p95_ms": quantile(every, 0.95),
            "p99_ms": quantile(every, 0.99),
            "server_errors": sum(
                n for c in self.statuses.values() for s, n in c.items() if s >= 500
            ),
            "transport_errors": dict(self.transport),
            "unexpected": self.bodies,
            "routes": routes,
        }  # fmt: skip


def quantile(ordered: list[float], q: float) -> float:
    """The nearest-rank quantile of a sorted list (0.0 for none)."""
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]


# ---------------------------------------------------------------- the day
async def run_day(base: str, district: District, *, clients: int, seconds: float) -> Tally:
    """CLIENTS virtual users for SECONDS (two in five applicants, two in five reviewers)."""
    tally = Tally()
    stop = time.monotonic() + seconds
    n_app = max(1, clients * 2 // 5)
    n_rev = max(1, clients * 2 // 5) if district.reviewers else 0
    n_pub = max(0, clients - n_app - n_rev) if district.lookups else 0
    if len(district.applicants) < n_app or len(district.reviewers) < n_rev:
        raise SystemExit(f"prepare() made too few accounts for {clients} clients")
    # aiohttp, not httpx: its parser is compiled, so the driver costs the 2 cores it shares
    # with the server about a tenth of httpx's CPU per request, 0.4-0.5 ms against 5.1-5.6
    # (docs/reliability.md, "Load")
    connector = aiohttp.TCPConnector(limit=clients * 2, keepalive_timeout=CLIENT_KEEPALIVE_EXPIRY)
    client = aiohttp.ClientSession(
        base, connector=connector, timeout=aiohttp.ClientTimeout(total=TIMEOUT)
    )
    # aiohttp sends a GET again, unseen, when a reused connection drops (RFC 9112 §9.3.1): the
    # driver must count every drop, so it turns that off as aiohttp's own test client does
    assert hasattr(client, "_retry_connection"), "aiohttp changed: see the comment above"
    client._retry_connection = False

    async def call(route: str, method: str, path: str, **kw: Any) -> Answer | None:
        started = time.perf_counter()
        try:
            async with client.request(method, path, **kw) as response:
                answer = Answer(response.status, await response.read())
        except (aiohttp.ClientError, TimeoutError) as exc:  # dropped, refused or timed out
            tally.transport[f"{route}: {type(exc).__name__}"] += 1
            return None
        tally.record(route, started, answer)
        return answer

    async def applicant(number: int, token: str) -> None:
        auth = {"Authorization": f"Bearer {token}"}
        for n in itertools.count():
            if time.monotonic() >= stop:
                return
            application = building_application(number)
            application["applicant"]["property"]["property_id"] = f"LOAD-{number}-{n}"
            key = uuid.uuid4().hex
            headers = {**auth, "Idempotency-Key": key}
            copies = 2 if n % DOUBLE_EVERY == 0 else 1
            route = "POST /api/applications"
            answers = await asyncio.gather(
                *(call(route, "POST", route[5:], json=application, headers=headers)
                  for _ in range(copies))
            )  # fmt: skip
            case_no = ""
            for r in answers:
                if r is not None and r.status_code == 201:
                    nos = tuple(sorted(c["case_no"] for c in r.json()))
                    tally.filings[key].append(nos)
                    case_no = nos[0]
            if not case_no:
                continue
            await call("GET /api/cases/{no}", "GET", f"/api/cases/{case_no}", headers=auth)
            await call("GET /api/my/cases", "GET", "/api/my/cases", headers=auth)

    async def reviewer(token: str) -> None:
        auth = {"Authorization": f"Bearer {token}"}
        rng = random.Random(token)
        while time.monotonic() < stop:
            page = await call(
                "GET /api/tasks", "GET", "/api/tasks", params={"limit": 50}, headers=auth
            )
            if page is None or page.status_code != 200:
                continue
            queue = page.json()
            if not queue:
                await asyncio.sleep(0.2)  # nothing to do: look again later
                continue
            task = rng.choice(queue)["id"]
            await call(
                "POST /api/tasks/{id}/review", "POST", f"/api/tasks/{task}/review",
                json={"decision": "pass"}, headers=auth,
            )  # fmt: skip

    async def public(seed: int) -> None:
        rng = random.Random(seed)
        while time.monotonic() < stop:
            case_no, code = rng.choice(district.lookups)
            await call(
                "GET /api/status/{no}", "GET", f"/api/status/{case_no}", params={"code": code}
            )

    started = time.perf_counter()
    async with client:
        await asyncio.gather(
            *(applicant(n, t) for n, t in district.applicants[:n_app]),
            *(reviewer(t) for _, t in district.reviewers[:n_rev]),
            *(public(i) for i in range(n_pub)),
        )
    tally.seconds = time.perf_counter() - started
    return tally


# ---------------------------------------------------------------- nothing lost, nothing twice
def problems(url: str, tally: Tally) -> list[str]:
    """What the database says went wrong: an empty list when nothing was lost or doubled."""
    from sqlalchemy import create_engine, text

    out: list[str] = []
    for key, answers in tally.filings.items():
        if len(set(answers)) != 1:
            out.append(f"key {key}: different answers {sorted(set(answers))}")
    answered = {no for answers in tally.filings.values() for nos in answers for no in nos}
    db = create_engine(url)
    with db.connect() as conn:
        stored = set(conn.execute(text("SELECT case_no FROM relief_case")).scalars())
        records = conn.execute(text("SELECT count(*) FROM request_record")).scalar_one()
        per_key = conn.execute(
            text(
                "SELECT submission_key, count(*) FROM relief_case WHERE submission_key IS NOT NULL"
                " GROUP BY submission_key HAVING count(*) > 1"
            )
        ).all()
        gaps = (
            conn.execute(
                text(
                    "SELECT c.case_no FROM relief_case c JOIN case_event e ON e.case_id = c.id"
                    " GROUP BY c.id, c.case_no HAVING count(*) <> max(e.seq) OR min(e.seq) <> 1"
                )
            )
            .scalars()
            .all()
        )
        broken = (
            conn.execute(
                text(
                    "SELECT c.case_no FROM relief_case c JOIN case_event e ON e.case_id = c.id"
                    " LEFT JOIN case_event p ON p.case_id = e.case_id AND p.seq = e.seq - 1"
                    " WHERE (e.seq > 1 AND (p.id IS NULL OR p.to_state <> e.from_state))"
                    " OR (e.seq = (SELECT max(seq) FROM case_event x WHERE x.case_id = c.id)"
                    "     AND e.to_state <> c.state)"
                )
            )
            .scalars()
            .all()
        )
        eventless = (
            conn.execute(
                text(
                    "SELECT case_no FROM relief_case c WHERE NOT EXISTS"
                    " (SELECT 1 FROM case_event e WHERE e.case_id = c.id)"
                )
            )
            .scalars()
            .all()
        )
        task_of = (
            "json_extract(payload, '$.task_id')" if db.dialect.name == "sqlite"
            else "payload->>'task_id'"
        )  # fmt: skip
        twice = (
            conn.execute(
                text(
                    f"SELECT {task_of} FROM case_event WHERE trigger = 'review_decided'"
                    f" GROUP BY {task_of} HAVING count(*) > 1"
                )
            )
            .scalars()
            .all()
        )
        numbers = (
            conn.execute(
                text(
                    "SELECT doc_number FROM notice WHERE doc_number IS NOT NULL"
                    " GROUP BY doc_number HAVING count(*) > 1"
                )
            )
            .scalars()
            .all()
        )
    db.dispose()
    if missing := answered - stored:
        out.append(f"{len(missing)} answered cases not stored, e.g. {sorted(missing)[:3]}")
    if records < len(tally.filings):
        out.append(f"{len(tally.filings)} keys answered, {records} request records")
    out += [f"key {k}: {n} cases" for k, n in per_key]
    out += [f"{no}: event seq not 1…n" for no in gaps]
    out += [f"{no}: events do not chain to its state" for no in sorted(set(broken))]
    out += [f"{no}: no event" for no in eventless]
    out += [f"task {t} decided twice" for t in twice]
    out += [f"document number twice: {n}" for n in numbers]
    return out


# ---------------------------------------------------------------- the command
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", default="50,100", help="comma-separated client counts")
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--workers", type=int, default=2, help="API processes")
    ap.add_argument("--cases", type=int, default=3000, help="cases under review at the start")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    import pg_server  # the suite's throwaway server; nothing else comes from the tests

    from models.db import migrate

    header("a district's opening day (two API processes on PostgreSQL)")
    counts = [int(c) for c in args.clients.split(",")]
    results: list[dict[str, Any]] = []
    server = pg_server.PostgresServer.start()
    try:
        with tempfile.TemporaryDirectory(prefix="relief-bench-load-") as tmp:
            for clients in counts:
                url = server.create_database(f"load{clients}")
                migrate(url)
                district = prepare(url, cases=args.cases, applicants=clients, reviewers=clients)
                with relief_server(url, Path(tmp), workers=args.workers, name=str(clients)) as b:
                    before = cpu_seconds_by_part()
                    tally = asyncio.run(run_day(b, district, clients=clients, seconds=args.seconds))
                    after = cpu_seconds_by_part()
                summary = tally.summary()
                cpu = {
                    part: (after[part] - before[part]) * 1000 / max(1, summary["requests"])
                    for part in after
                }  # CPU ms per request, by part of the machine
                result = {"clients": clients, **summary, "cpu_ms_per_request": cpu,
                          "problems": problems(url, tally)}  # fmt: skip
                results.append(result)
                report(result)
    finally:
        server.stop()
    dump_json(args.json, {"machine": machine(), "runs": results})


def report(r: dict[str, Any]) -> None:
    print(
        f"\n## {r['clients']} clients, {r['seconds']:.0f} s: {r['per_s']:.1f} requests/s,"
        f" p50 {r['p50_ms']:.0f} ms, p95 {r['p95_ms']:.0f} ms, p99 {r['p99_ms']:.0f} ms\n"
    )
    print("| route | requests | per s | p50 ms | p95 ms | p99 ms | answers |")
    print("|---|---|---|---|---|---|---|")
    for route, s in r["routes"].items():
        answers = ", ".join(f"{k}: {v}" for k, v in s["statuses"].items())
        print(
            f"| {route} | {s['requests']} | {s['per_s']:.1f} | {s['p50_ms']:.0f} |"
            f" {s['p95_ms']:.0f} | {s['p99_ms']:.0f} | {answers} |"
        )
    cpu = ", ".join(f"{part} {ms:.1f}" for part, ms in r["cpu_ms_per_request"].items())
    print(f"\nCPU ms per request: {cpu}")
    print(f"5xx: {r['server_errors']}; transport errors: {r['transport_errors'] or 'none'}")
    for line in r["unexpected"][:5]:
        print(f"  unexpected: {line}")
    print(f"checks: {'; '.join(r['problems']) if r['problems'] else 'nothing lost, nothing twice'}")


if __name__ == "__main__":
    main()
