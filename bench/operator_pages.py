"""What an operator and a clerk wait for on the pages of issue 17, and at the command line.

    python bench/operator_pages.py [--samples 20] [--command-samples 5] [--more 3000]

The workload is the test suite's seeded district (tests/seeded.py `seed_district`: 326 cases
filed July to November 2022, every outcome), so the figures are of the very data the tests
check the dashboard and the report against; tests/ is put on sys.path for it and its SMTP
sink. To show how the pages scale, a bigger district: a copy of the same file with MORE
building-subsidy cases added through the engine's set operations (bench/benchlib.py's
`building_application` and `People`), five sixths of them taken to closed (filed, both
reviews passed, confirmed, granted and paid, in equal parts at the seed's July to November
clocks) and one sixth left under review (half filed on 12 October, overdue by the page clock,
half on 16 November): 3,326 cases by default, about 10x the seed, the seed's own rows unchanged.

Both districts are served at once by `relief serve --no-flows` (a process each, as deployed)
with the clock at 2022-12-14 10:00 Beijing time (RELIEF_NOW). Each client signs in through the
login form (GET /login for the CSRF token and session cookie, POST /login) as an operator, or
as a reviewer of the section with the most open tasks, created for the run. Timed at the
client, from send to the last byte, over a keep-alive connection:

1. the operator's dashboard: GET /operator (the HTML), each of its five charts
   /operator/charts/NAME.svg, and what a browser does: the page, then its five images at once
   over five connections, until the last image has arrived;
2. the report page GET /operator/report?from=2022-07&to=2022-12 and its XLSX download
   GET /api/operator/report?from=2022-07&to=2022-12&format=xlsx;
3. the clerk's tasklist GET /bureau/tasks: the first page, a search for one applicant's USCC
   (?q=), the overdue filter (?overdue=1) and page 2 (?page=2);
4. the command line, each a whole process from start to exit: `relief report --from 2022-07
   --to 2022-12 --format csv --out FILE`, `relief bpmn loan_subsidy`, `relief diagram
   loan_subsidy` (neither of the last two reads the database; they are timed in both districts'
   environments all the same).

Every request is sampled SAMPLES times (commands: COMMAND_SAMPLES) in rounds, after one untimed
round whose times are printed as "first" (what the first person after a restart waits for).
In each round a floor is measured beside them: GET /login of a client with a session but not
signed in (pages), `relief --version` (commands). Printed per district: median and p95 (pages
in ms, commands in s), the median of the per-round ratios to the floor, and the median over
the rounds of the bigger district's time over the seed's (both are measured in each round).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from benchlib import (
    RELIEF,
    ROOT,
    People,
    building_application,
    dump_json,
    header,
    median,
    p95,
    relief_command,
    relief_server,
)

sys.path.insert(0, str(ROOT / "tests"))
from seeded import CLOCKS, seed_district  # the suite's seeded district (and its SMTP sink)

from base.civil_dates import SHANGHAI
from base.clock import Clock

NOW = datetime(2022, 12, 14, 10, 0, tzinfo=SHANGHAI)  # the seed's last clock
MONTHS = {"from": "2022-07", "to": "2022-12"}
CHARTS = ("cases", "money-by-measure", "money-by-month", "tasks-open", "tasks-overdue")
PASSWORD = "bench-operator-pages-1"
FLOOR = "floor: GET /login"
BROWSER = "dashboard as a browser loads it (page + 5 charts)"
CMD_FLOOR = "floor: relief --version"
START = 100_000  # the added cases' enterprise numbers (the seed's are below 10,000)


# ---------------------------------------------------------------- the two districts
def seeded(folder: Path) -> str:
    from models.db import migrate

    path = folder / "seeded.db"
    url = f"sqlite:///{path}"
    migrate(url)
    counts = seed_district(url)
    print(f"seeded district: {counts.cases} cases in {counts.seconds:.1f} s", flush=True)
    return url


def copy_file(source_url: str, target: Path) -> str:
    import sqlite3

    with (
        sqlite3.connect(source_url.removeprefix("sqlite:///")) as src,
        sqlite3.connect(target) as dst,
    ):
        src.backup(dst)  # WAL and all
    return f"sqlite:///{target}"


def _engine(url: str, at: datetime) -> Any:
    from models.db import make_engine
    from models.settings import Settings
    from notifications.issuer import engine_with_notices

    return engine_with_notices(
        make_engine(url), settings=Settings(database_url=url), clock=Clock(at)
    )


def _refused(outcome: Any, what: str) -> None:
    if outcome.refused:
        index, exc = next(iter(outcome.refused.items()))
        raise SystemExit(f"{what}: {len(outcome.refused)} refused, e.g. item {index}: {exc}")


def _file(engine: Any, people: People, numbers: range) -> list[int]:
    from states.work import SubmitItem

    items = []
    for i in numbers:
        data = building_application(i)
        data.pop("application_date")  # filed on the clock's day, as the seed files
        items.append(SubmitItem(data, actor=people.intake, request_key=f"bench-more:{i}"))
    out = engine.submit_many(items, unit_size=500)
    _refused(out, "submit")
    return [results[0].case_id for results in out.results()]


def _to_closed(engine: Any, people: People, ids: list[int]) -> None:
    """Only these cases (the seed's open tasks stay open): both reviews, confirm, grant, pay."""
    from sqlmodel import Session, col, select

    from models.tables import ReviewTask
    from states.work import FireItem, ReviewItem

    with Session(engine.db) as s:
        tasks = s.exec(
            select(ReviewTask.id, ReviewTask.section_code)
            .where(col(ReviewTask.case_id).in_(ids), ReviewTask.kind == "review",
                   ReviewTask.status == "open")
            .order_by(col(ReviewTask.id))
        ).all()  # fmt: skip
    by_section: dict[str, list[int]] = {}
    for task_id, section in tasks:
        by_section.setdefault(section, []).append(task_id)
    for section, queue in sorted(by_section.items()):
        reviewer = people.reviewer(section)
        out = engine.decide_tasks([ReviewItem(t, "pass", actor=reviewer) for t in queue])
        _refused(out, f"review {section}")
    for trigger, actor in (("confirm", people.confirmer), ("approve", people.decider)):
        out = engine.fire_many([FireItem(c, trigger, actor=actor) for c in ids], unit_size=500)
        _refused(out, trigger)
    out = engine.fire_many(
        [FireItem(c, "record_payment", actor=people.system,
                  payload={"external_ref": f"TR-MORE-{c}"}, request_key=f"paid:payout:{c}")
         for c in ids],
        unit_size=500,
    )  # fmt: skip
    _refused(out, "record_payment")


def bigger(seed_url: str, folder: Path, more: int) -> str:
    """The seeded file copied, and `more` building-subsidy cases added at the seed's clocks."""
    t0 = time.perf_counter()
    url = copy_file(seed_url, folder / "bigger.db")
    still_open = more // 6
    per_month = (more - still_open) // 5
    n = START
    for k in range(5):  # closed: filed and paid at each of the seed's filing clocks
        engine = _engine(url, CLOCKS[k])
        people = People(engine)
        _to_closed(engine, people, _file(engine, people, range(n, n + per_month)))
        n += per_month
        engine.db.dispose()
    for k, count in ((3, still_open // 2), (4, still_open - still_open // 2)):  # under review
        engine = _engine(url, CLOCKS[k])
        _file(engine, People(engine), range(n, n + count))
        n += count
        engine.db.dispose()
    cases = _scalar(url, "SELECT COUNT(*) FROM relief_case")
    print(f"bigger district: {cases} cases ({n - START} added in "
          f"{time.perf_counter() - t0:.1f} s)", flush=True)  # fmt: skip
    return url


def _scalar(url: str, sql: str, **params: Any) -> Any:
    from sqlalchemy import create_engine, text

    raw = create_engine(url)
    try:
        with raw.connect() as c:
            return c.execute(text(sql), params).one()[0]
    finally:
        raw.dispose()


def busiest_section(url: str) -> tuple[str, str, int]:
    from sqlalchemy import create_engine, text

    raw = create_engine(url)
    try:
        with raw.connect() as c:
            bureau, section, n = c.execute(text(
                "SELECT bureau_code, section_code, COUNT(*) FROM review_task "
                "WHERE status = 'open' AND section_code != '' GROUP BY 1, 2 "
                "ORDER BY 3 DESC, 1, 2 LIMIT 1"
            )).one()  # fmt: skip
    finally:
        raw.dispose()
    return str(bureau), str(section), int(n)


def seed_uscc(url: str, bureau: str, section: str) -> str:
    """A USCC of the seed with an open task in the section (the first by task id)."""
    return str(
        _scalar(
            url,
            "SELECT a.uscc FROM review_task t JOIN relief_case c ON c.id = t.case_id "
            "JOIN applicant a ON a.id = c.applicant_id WHERE t.status = 'open' "
            "AND t.bureau_code = :b AND t.section_code = :s AND a.uscc IS NOT NULL "
            "ORDER BY t.id LIMIT 1",
            b=bureau,
            s=section,
        )
    )


def accounts(url: str, bureau: str, section: str) -> None:
    from api.security import create_account
    from models.db import make_engine

    db = make_engine(url)
    create_account(db, username="bench-ops", role="operator", password=PASSWORD, now=NOW)
    create_account(db, username="bench-clerk", role="reviewer", bureau=bureau, section=section,
                   password=PASSWORD, now=NOW)  # fmt: skip
    db.dispose()


# ---------------------------------------------------------------- serving and signing in
def clock_env(url: str) -> dict[str, str]:
    return {"RELIEF_DATABASE_URL": url, "RELIEF_NOW": NOW.isoformat()}


def _csrf(html: str) -> str:
    return html.split('name="csrf_token" value="')[1].split('"')[0]


def signed_in(base: str, username: str) -> httpx.Client:
    """A client signed in through the login form: its session cookie, as a browser keeps it."""
    client = httpx.Client(base_url=base, timeout=120)
    token = _csrf(client.get("/login").text)
    r = client.post("/login", data={"username": username, "password": PASSWORD,
                                    "csrf_token": token})  # fmt: skip
    if r.status_code != 303 or r.headers.get("location") == "/login":
        raise SystemExit(f"{username} could not sign in: {r.status_code} {r.headers}")
    return client


def anonymous(base: str) -> httpx.Client:
    """The floor's client: a session (a CSRF token for the form) and nobody signed in."""
    client = httpx.Client(base_url=base, timeout=60)
    client.get("/login").raise_for_status()
    return client


# ---------------------------------------------------------------- one round of requests
class District:
    """One served district and its clients; `round()` times every page once."""

    def __init__(self, name: str, base: str, uscc: str) -> None:
        self.name = name
        self.floor = anonymous(base)
        self.operator = signed_in(base, "bench-ops")
        self.clerk = signed_in(base, "bench-clerk")
        # a browser's further connections for the page's images, with the same cookie
        self.images = [httpx.Client(base_url=base, cookies=self.operator.cookies, timeout=120)
                       for _ in CHARTS]  # fmt: skip
        self.pool = ThreadPoolExecutor(len(CHARTS))
        report = "&".join(f"{k}={v}" for k, v in MONTHS.items())
        self.pages: list[tuple[str, httpx.Client, str, str]] = [
            (FLOOR, self.floor, "/login", "登录"),
            ("GET /operator (HTML)", self.operator, "/operator", "运营概览"),
            *[(f"GET /operator/charts/{c}.svg", self.operator, f"/operator/charts/{c}.svg",
               "<?xml") for c in CHARTS],
            (BROWSER, self.operator, "", ""),
            ("GET /operator/report (HTML)", self.operator, f"/operator/report?{report}", "统计"),
            ("GET /api/operator/report (XLSX)", self.operator,
             f"/api/operator/report?{report}&format=xlsx", "PK"),
            ("GET /bureau/tasks (first page)", self.clerk, "/bureau/tasks", "待办"),
            ("GET /bureau/tasks?q=USCC", self.clerk, f"/bureau/tasks?q={uscc}", uscc),
            ("GET /bureau/tasks?overdue=1", self.clerk, "/bureau/tasks?overdue=1", "待办"),
            ("GET /bureau/tasks?page=2", self.clerk, "/bureau/tasks?page=2", "待办"),
        ]  # fmt: skip

    def _get(self, client: httpx.Client, path: str, expect: str) -> float:
        t0 = time.perf_counter()
        r = client.get(path)
        seconds = time.perf_counter() - t0
        if r.status_code != 200 or expect.encode() not in r.content[:200_000]:
            raise SystemExit(f"{self.name} {path}: {r.status_code} {r.text[:300]}")
        return seconds

    def _browser(self) -> float:
        t0 = time.perf_counter()
        self._get(self.operator, "/operator", "运营概览")
        waits = [self.pool.submit(self._get, c, f"/operator/charts/{name}.svg", "<?xml")
                 for c, name in zip(self.images, CHARTS, strict=True)]  # fmt: skip
        for w in waits:
            w.result()
        return time.perf_counter() - t0

    def round(self) -> dict[str, float]:
        out = {}
        for label, client, path, expect in self.pages:
            out[label] = self._browser() if label == BROWSER else self._get(client, path, expect)
        return out

    def close(self) -> None:
        self.pool.shutdown()
        for c in (self.floor, self.operator, self.clerk, *self.images):
            c.close()


# ---------------------------------------------------------------- figures
def table(
    rounds: dict[str, list[dict[str, float]]],
    first: dict[str, dict[str, float]],
    floor: str,
    unit: str,
) -> dict[str, Any]:
    """Median, p95, ratio to the floor per district; the bigger's ratio to the seed's."""
    scale = 1000 if unit == "ms" else 1
    names = list(rounds)
    labels = list(rounds[names[0]][0])
    head = " | ".join(f"{n} {unit} median / p95 / first | {n} ÷ floor" for n in names)
    print(f"| what | {head} | {names[-1]} ÷ {names[0]} |")
    print("|---|" + "---|---|" * len(names) + "---|")
    figures: dict[str, Any] = {}
    for label in labels:
        cells = []
        for n in names:
            xs = [r[label] for r in rounds[n]]
            ratio = median([r[label] / r[floor] for r in rounds[n]])
            figures.setdefault(label, {})[n] = {
                "median": median(xs), "p95": p95(xs), "first": first[n][label],
                "to_floor": ratio, "samples": xs,
            }  # fmt: skip
            cells.append(
                f"{median(xs) * scale:.{1 if unit == 'ms' else 2}f} / "
                f"{p95(xs) * scale:.{1 if unit == 'ms' else 2}f} / "
                f"{first[n][label] * scale:.{1 if unit == 'ms' else 2}f} | {ratio:.2f}×"
            )
        a, b = rounds[names[0]], rounds[names[-1]]
        growth = median([y[label] / x[label] for x, y in zip(a, b, strict=True)])
        figures[label]["growth"] = growth
        print(f"| {label} | {' | '.join(cells)} | {growth:.2f}× |")
    print()
    return figures


def measure_pages(districts: list[District], samples: int) -> dict[str, Any]:
    first = {d.name: d.round() for d in districts}  # untimed: imports, templates, caches
    rounds: dict[str, list[dict[str, float]]] = {d.name: [] for d in districts}
    for i in range(samples):
        for d in districts[:: 1 if i % 2 == 0 else -1]:  # alternate which goes first
            rounds[d.name].append(d.round())
    return table(rounds, first, FLOOR, "ms")


def measure_commands(envs: dict[str, dict[str, str]], folder: Path, samples: int) -> dict[str, Any]:
    out = folder / "report.csv"
    commands = {
        CMD_FLOOR: ["--version"],
        "relief report --from 2022-07 --to 2022-12 --format csv --out FILE": [
            "report", "--from", MONTHS["from"], "--to", MONTHS["to"], "--format", "csv",
            "--out", str(out)],
        "relief bpmn loan_subsidy": ["bpmn", "loan_subsidy"],
        "relief diagram loan_subsidy": ["diagram", "loan_subsidy"],
    }  # fmt: skip

    def one_round(env: dict[str, str]) -> dict[str, float]:
        times = {}
        for label, argv in commands.items():
            out.unlink(missing_ok=True)
            times[label], _ = relief_command(argv, env)
        return times

    first = {n: one_round(env) for n, env in envs.items()}
    rounds: dict[str, list[dict[str, float]]] = {n: [] for n in envs}
    names = list(envs)
    for i in range(samples):
        for n in names[:: 1 if i % 2 == 0 else -1]:
            rounds[n].append(one_round(envs[n]))
    return table(rounds, first, CMD_FLOOR, "s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=20, help="rounds of page requests")
    ap.add_argument("--command-samples", type=int, default=5, help="rounds of commands")
    ap.add_argument("--more", type=int, default=3000, help="cases the bigger district adds")
    ap.add_argument("--json", help="also write the figures to this file")
    ap.add_argument(
        "--keep",
        metavar="DIR",
        help="build the districts in DIR and keep them (its *.db files are replaced)",
    )
    args = ap.parse_args()
    header("the operator's and the clerk's pages (issue 17)")
    print(f"  clock: {NOW.isoformat()}  server: {' '.join(RELIEF)} serve --no-flows\n")
    with ExitStack() as files:
        if args.keep:
            folder = Path(args.keep).resolve()
            folder.mkdir(parents=True, exist_ok=True)
            for old in folder.glob("*.db*"):
                old.unlink()
        else:
            folder = Path(files.enter_context(tempfile.TemporaryDirectory(prefix="relief-pages-")))
        small = seeded(folder)
        big = bigger(small, folder, args.more)
        urls = {"seeded": small, "bigger": big}
        setup = {}
        for name, url in urls.items():
            bureau, section, n = busiest_section(url)
            uscc = seed_uscc(small, bureau, section)
            accounts(url, bureau, section)
            cases = _scalar(url, "SELECT COUNT(*) FROM relief_case")
            overdue = _scalar(
                url, "SELECT COUNT(*) FROM review_task WHERE status = 'open' AND due_on < :t "
                "AND bureau_code = :b AND section_code = :s",
                t=NOW.date().isoformat(), b=bureau, s=section,
            )  # fmt: skip
            setup[name] = {"cases": cases, "bureau": bureau, "section": section,
                           "open_tasks": n, "overdue_tasks": overdue, "uscc": uscc}  # fmt: skip
            print(f"{name}: {cases} cases; the clerk's section {bureau}.{section}: {n} open "
                  f"tasks, {overdue} overdue; q={uscc}")  # fmt: skip
        print()
        t0 = time.perf_counter()
        with ExitStack() as stack:
            districts = []
            for name, url in urls.items():
                base = stack.enter_context(relief_server(url, folder, name=name))
                d = District(name, base, setup[name]["uscc"])
                stack.callback(d.close)
                districts.append(d)
            print(f"## pages, {args.samples} rounds (ms at the client; ratios per round)\n")
            pages = measure_pages(districts, args.samples)
        print(f"(pages: {time.perf_counter() - t0:.0f} s)\n", flush=True)
        t0 = time.perf_counter()
        print(f"## commands, {args.command_samples} rounds (s, start to exit)\n")
        commands = measure_commands(
            {n: clock_env(u) for n, u in urls.items()}, folder, args.command_samples
        )
        print(f"(commands: {time.perf_counter() - t0:.0f} s)")
    figures = {"setup": setup, "pages": pages, "commands": commands, "samples": args.samples,
               "command_samples": args.command_samples}  # fmt: skip
    dump_json(args.json, figures)


if __name__ == "__main__":
    main()
