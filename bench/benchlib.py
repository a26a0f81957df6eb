"""What the benchmark scripts share: the workload, the engine, statistics, the machine.

Not a test helper: the scripts print figures for docs/benchmarks.md. Run them from a checkout
with relief installed (`pip install -e '.[bench]'`).
"""

from __future__ import annotations

import json
import os
import platform
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/x.py` from a checkout without an install
    sys.path.insert(0, str(ROOT))

from base.civil_dates import SHANGHAI  # noqa: E402
from base.clock import Clock  # noqa: E402
from base.identifiers import uscc_check_char  # noqa: E402
from models.db import make_engine, migrate  # noqa: E402
from models.settings import Settings  # noqa: E402
from notifications.issuer import engine_with_notices  # noqa: E402
from states.engine import CaseEngine  # noqa: E402
from states.work import FireItem, ReviewItem, SubmitItem  # noqa: E402

# The clock of the tests: inside the policy window, after every filing.
NOW = datetime(2022, 12, 30, 10, 0, tzinfo=SHANGHAI)
CHUNK = 500


# ---------------------------------------------------------------- the workload
def uscc(i: int) -> str:
    """A valid USCC (GB 32100-2015) for enterprise number i: 9 1 110101 + 9 digits + check."""
    first17 = f"91110101{i:09d}"
    return first17 + uscc_check_char(first17)


def building_application(i: int) -> dict[str, Any]:
    """The building subsidy (two parallel reviews, a confirmation, a payout), one per building.

    A commercial building inside 中关村东城园 (tests/data/scenarios.yaml RENT-09 without the
    prior subsidy): its own property_id, so the 1,000,000 cap per building never binds, and its
    own reduced rent, so amounts (and their 人民币大写) differ from case to case.
    """
    return {
        "type": "rent_park_subsidy",
        "application_date": "2022-07-01",
        "applicant": {
            "uscc": uscc(i),
            "role": "owner",
            "property": {
                "property_id": f"BLDG-{i:07d}",
                "type": "commercial_building",
                "state_owned": False,
                "in_zgc_dongcheng_park": True,
            },
        },
        "confirmed_total_reduced": str(1_000_000 + 37 * i),
        "prior_subsidy_for_this_property": 0,
    }


def batch_engine(url: str) -> CaseEngine:
    return engine_with_notices(
        make_engine(url), settings=Settings(database_url=url), clock=Clock(NOW)
    )


def fresh_sqlite(folder: Path, name: str) -> str:
    path = folder / name
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    url = f"sqlite:///{path}"
    migrate(url)
    return url


@dataclass
class Stages:
    """Wall seconds per stage of one run."""

    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        yield
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0

    @property
    def total(self) -> float:
        return sum(self.seconds.values())


def _check(outcome: Any, what: str) -> None:
    if outcome.refused:
        index, exc = next(iter(outcome.refused.items()))
        raise SystemExit(f"{what}: {len(outcome.refused)} refused, e.g. item {index}: {exc}")


def bench_actor(engine: Any, username: str, **spec: Any) -> Any:
    """The engine's actor for a bench account, made on first use (the people of a stage)."""
    from api.security import create_account
    from states.errors import NotPermitted

    try:
        return engine.actor(username)
    except NotPermitted:
        create_account(engine.db, username=username, now=engine.clock.now(), **spec)
        return engine.actor(username)


class People:
    """The bench's accounts: who files, reviews per section, confirms, decides, records pay."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.intake = bench_actor(engine, "bench-intake", role="operator")
        self.confirmer = self.reviewer("enterprise", n=2)
        self.decider = bench_actor(
            engine, "bench-district", role="reviewer", bureau="district_government", section=""
        )
        self.system = bench_actor(engine, "system")

    def reviewer(self, section: str, n: int = 1) -> Any:
        """Reviewer n of the section with this code (section codes are unique in the edition)."""
        from states.edition import all_editions

        bureau = next(
            b.code for b in all_editions()[-1].bureaus for s in b.sections if s.code == section
        )
        return bench_actor(
            self.engine, f"bench-{bureau}.{section}.{n}", role="reviewer", bureau=bureau,
            section=section,
        )  # fmt: skip


def drive_to_closed(
    engine: CaseEngine, n: int, *, chunk: int = CHUNK, start: int = 0, stages: Stages | None = None
) -> tuple[Stages, list[int]]:
    """n building-subsidy cases from submission to closed through the batch path.

    Each stage is what one party does to a whole batch: the applicants file; each reviewing
    section reads its work queue and passes its tasks; the confirming section confirms; the
    district decides; the treasury's payments are recorded (payout_ordered → paid → closed).
    """
    from sqlalchemy import select
    from sqlmodel import Session

    from models.tables import ReviewTask

    stages = stages or Stages()
    people = People(engine)
    with stages.stage("submit"):
        out = engine.submit_many(
            [SubmitItem(building_application(start + i), actor=people.intake) for i in range(n)],
            unit_size=chunk,
        )
        _check(out, "submit")
    ids = [results[0].case_id for results in out.results()]
    with Session(engine.db) as s:
        sections = sorted(
            set(
                s.execute(
                    select(ReviewTask.section_code).where(
                        ReviewTask.case_id.in_(ids[:1]),  # type: ignore[attr-defined]
                        ReviewTask.kind == "review",
                    )
                ).scalars()
            )
        )
    for section in sections:
        reviewer = people.reviewer(section)
        with stages.stage(f"review ({section})"):
            with Session(engine.db) as s:
                queue = list(
                    s.execute(
                        select(ReviewTask.id)
                        .where(
                            ReviewTask.section_code == section,
                            ReviewTask.kind == "review",
                            ReviewTask.status == "open",
                        )
                        .order_by(ReviewTask.id)  # type: ignore[arg-type]
                    ).scalars()
                )
            out = engine.decide_tasks(
                [ReviewItem(t, "pass", actor=reviewer) for t in queue],
                unit_size=chunk,
            )
            _check(out, f"review {section}")
    for trigger, actor in (("confirm", people.confirmer), ("approve", people.decider)):
        with stages.stage(trigger):
            out = engine.fire_many(
                [FireItem(c, trigger, actor=actor) for c in ids], unit_size=chunk
            )
            _check(out, trigger)
    with stages.stage("record_payment"):
        out = engine.fire_many(
            [
                FireItem(
                    c,
                    "record_payment",
                    actor=people.system,
                    payload={"external_ref": f"TR-{c}"},
                    request_key=f"paid:payout:{c}",
                )
                for c in ids
            ],
            unit_size=chunk,
        )
        _check(out, "record_payment")
    return stages, ids


# ---------------------------------------------------------------- statistics and reporting
def median(xs: list[float]) -> float:
    return statistics.median(xs)


def p95(xs: list[float]) -> float:
    ordered = sorted(xs)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def machine() -> dict[str, str]:
    """Where the figures were measured."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return {
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "commit": commit,
        "cpu": f"{cpu} ({os.cpu_count()} cores)",
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "load_1min_at_start": f"{load:.2f}",
    }


def header(title: str) -> None:
    print(f"# {title}")
    for k, v in machine().items():
        print(f"  {k}: {v}")
    print()


def dump_json(path: str | None, data: dict[str, Any]) -> None:
    if path:
        Path(path).write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")


# ---------------------------------------------------------------- commands as operators run them
_ENTRY = Path(sys.executable).with_name("relief")  # the installed command, as operators run it
RELIEF = [str(_ENTRY)] if _ENTRY.exists() else [sys.executable, "-m", "cli.main"]


@contextmanager
def running_prefect_server(folder: Path, port: int = 4291) -> Iterator[dict[str, str]]:
    """A local Prefect server as `relief serve` starts it (flows/serve.py), in a PREFECT_HOME of
    its own; yields the environment under which `relief flow run` finds it."""
    from flows.serve import local_prefect_server

    home = folder / "prefect-home"
    env = {"PREFECT_HOME": str(home), "RELIEF_PREFECT_PORT": str(port)}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        with local_prefect_server(f"http://127.0.0.1:{port}/api"):
            yield env
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def relief_command(args: list[str], env: dict[str, str]) -> tuple[float, str]:
    """Run `relief ARGS` as a process; its wall seconds (start to exit) and its output."""
    full = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200", **env}
    full.pop("PREFECT_API_URL", None)  # found the way an operator's shell finds it
    t0 = time.perf_counter()
    done = subprocess.run([*RELIEF, *args], cwd=ROOT, env=full, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"relief {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
    return seconds, done.stdout


def cpu_seconds_by_part() -> dict[str, float]:
    """CPU seconds used so far by this machine's processes, grouped as this process (the
    driver), PostgreSQL, `relief serve` and everything else (Linux /proc; a process that has
    ended is no longer counted, so take the difference of two readings of long-lived ones)."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {"driver": 0.0, "postgres": 0.0, "relief serve": 0.0, "other": 0.0}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue  # ended meanwhile
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        seconds = (int(fields[11]) + int(fields[12])) / tick  # utime + stime
        if int(entry.name) == os.getpid():
            out["driver"] += seconds
        elif comm == "postgres":
            out["postgres"] += seconds
        elif (b"relief" in cmdline and b"serve" in cmdline) or b"multiprocessing" in cmdline:
            out["relief serve"] += seconds
        else:
            out["other"] += seconds
    return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def relief_server(url: str, folder: Path, *, workers: int = 1, name: str = "") -> Iterator[str]:
    """`relief serve --no-flows` on `url`, as a deployment runs it, with the benchmarks' clock;
    yields its base URL once every process answers, and stops it afterwards."""
    port = free_port()
    env = {**os.environ, "RELIEF_DATABASE_URL": url, "RELIEF_NOW": NOW.isoformat(),
           "PYTHONPATH": str(ROOT)}  # fmt: skip
    argv = [*RELIEF, "serve", "--no-flows", "--port", str(port)]
    if workers > 1:
        argv += ["--workers", str(workers)]
    log = (folder / f"serve-{name or port}.log").open("wb")
    proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=folder)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass  # not listening yet
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"relief serve did not start; see {log.name}")
            time.sleep(0.2)
        if workers > 1:  # every process answers before the clock starts
            with httpx.Client() as c:
                for _ in range(20):
                    c.get(f"{base}/healthz", headers={"Connection": "close"})
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
