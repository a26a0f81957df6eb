"""`relief serve` runs the scheduled flows; `relief demo` finishes and its numbers are the DB's."""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import scenarios as S
from conftest import FIXED_NOW, make_case_engine
from drive import decide, submit
from sqlmodel import Session, select

from models.tables import Payout

RELIEF = [sys.executable, "-c", "from cli.main import app; app()"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---------------------------------------------------------------- relief serve
def _stat(pid: int) -> tuple[int, int, str, int] | None:
    """(ppid, session, state, start time) of a process, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), int(fields[3]), fields[0], int(fields[19])


def _tree(root: int) -> dict[int, tuple[int, int]]:
    """Every living process whose parent chain leads to `root`: pid -> (start time, session)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (st := _stat(int(entry))) and st[2] != "Z":
            children.setdefault(st[0], []).append(int(entry))
    out: dict[int, tuple[int, int]] = {}
    todo = [root]
    while todo:
        for pid in children.get(todo.pop(), []):
            if st := _stat(pid):
                out[pid] = (st[3], st[1])
            todo.append(pid)
    return out


def _alive(pid: int, started: int) -> bool:
    """The same process (pid and start time: a pid may be reused) is still running."""
    st = _stat(pid)
    return st is not None and st[2] != "Z" and st[3] == started


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=10).status_code == 200
    except httpx.HTTPError:
        return False


class Serve:
    """`relief serve` as a subprocess on a temp SQLite file, PREFECT_HOME and free ports, its
    output in a file; every process below it is recorded by pid while it runs."""

    def __init__(self, sqlite_url: str, tmp_path: Path) -> None:
        self.web = free_port()
        self.prefect = free_port()
        self.log = tmp_path / "serve.log"
        env = {
            **os.environ,
            "RELIEF_DATABASE_URL": sqlite_url,
            "RELIEF_NOW": "2022-12-30T10:00:00+08:00",
            "RELIEF_PAYMENT_DIR": str(tmp_path / "payments"),
            "RELIEF_SCHEDULE_PAYOUT_MINUTES": "0.05",
            "RELIEF_SCHEDULE_SLA_MINUTES": "0.05",
            "PREFECT_HOME": str(tmp_path / "prefect-home"),
            "RELIEF_PREFECT_PORT": str(self.prefect),
            "PREFECT_RUNNER_POLL_FREQUENCY": "1",
        }
        env.pop("PREFECT_API_URL", None)
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [*RELIEF, "serve", "--port", str(self.web)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # so that a failed test can stop everything it started
            )
        self.seen: dict[int, tuple[int, int]] = {}

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.web}"

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def record(self) -> dict[int, tuple[int, int]]:
        now = _tree(self.proc.pid)
        self.seen.update(now)
        return now

    def wait(self, what: str, check: Any, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.record()
            assert self.proc.poll() is None, (
                f"serve exited while waiting for {what}\n" + (self.output()[-3000:])
            )
            if check():
                return
            time.sleep(1)
        raise AssertionError(f"timed out waiting for {what}\n" + self.output()[-3000:])

    def wait_ready(self) -> None:
        self.wait("the API", lambda: _ok(f"{self.api}/healthz"))
        self.wait("its Prefect server", lambda: _ok(f"http://127.0.0.1:{self.prefect}/api/health"))

    def prefect_servers(self) -> list[str]:
        """Prefect servers below serve: its own `prefect server start`, or an ephemeral one."""
        cmds = [_cmdline(pid) for pid in self.record()]
        return [c for c in cmds if "prefect server start" in c or "prefect.server.api" in c]

    def probe(self, tag: str) -> list[str]:
        """Requests whose access-log lines must appear."""
        paths = [f"/healthz?probe={tag}-{i}" for i in range(3)]
        for path in paths:
            assert httpx.get(f"{self.api}{path}", timeout=30).status_code == 200
        return paths

    def stop(self, sig: int) -> None:
        """Send `sig` to serve alone (as a service manager or a Ctrl-C would reach it), wait for
        it to exit and check that no process it started lives on."""
        self.record()
        before = dict(self.seen)
        assert before, "serve started no process"
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=240)  # a loaded 2-core machine stops slowly
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            raise
        assert self.proc.returncode == 0, self.output()[-3000:]
        time.sleep(1)  # the kernel hands exited orphans to init and init reaps them
        left = {pid: _cmdline(pid) for pid, (t, _) in before.items() if _alive(pid, t)}
        for pid in left:  # the test's own clean-up, not part of what is checked
            os.kill(pid, signal.SIGKILL)
        assert not left, f"left running after serve stopped: {left}"

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        for pid, (started, _) in self.seen.items():
            if _alive(pid, started):
                os.kill(pid, signal.SIGKILL)


def test_serve_one_prefect_server_scheduled_payouts_logged_and_sigterm_stops_all(
    sqlite_url: str, tmp_path: Path
) -> None:
    """On embedded defaults: serve starts its own local Prefect server (the test harness's
    server runs no scheduler), registers the deployments and runs them on schedule. A flow the
    API runs uses that same server (it used to start a second, ephemeral one that outlived
    serve); every request is logged, also after Prefect started; SIGTERM stops everything."""
    from api.security import create_account

    engine = make_case_engine(sqlite_url)
    [r] = submit(engine, S.application("RENT-07"))
    decide(engine, r.case_id, approve=True)
    _, token = create_account(engine.db, username="ops", role="operator", now=FIXED_NOW)
    serve = Serve(sqlite_url, tmp_path)
    try:
        serve.wait_ready()
        early = serve.probe("early")

        def sent() -> bool:
            with Session(engine.db) as s:
                return s.exec(select(Payout)).one().status == "sent"

        serve.wait("a scheduled payout batch", sent)
        ran = httpx.post(
            f"{serve.api}/api/operator/flows/outbox",
            headers={"Authorization": f"Bearer {token}"},
            timeout=120,
        )
        assert ran.status_code == 200, ran.text
        assert len(serve.prefect_servers()) == 1, serve.prefect_servers()
        page = httpx.get(f"{serve.api}/status", timeout=30)  # the API, same process
        assert page.status_code == 200 and "办理进度查询" in page.text
        assert list((tmp_path / "payments").glob("PB-*.csv"))
        late = serve.probe("late")
        sessions = {sid for _, sid in serve.seen.values()}
        assert len(sessions) > 1  # the Prefect server runs in its own session
        serve.stop(signal.SIGTERM)
    finally:
        serve.kill()
    out = serve.output()
    for path in [*early, *late, "/api/operator/flows/outbox", "/status"]:
        assert f"{path} HTTP/1.1" in out, f"not logged: {path}\n{out[-3000:]}"
    engine.db.dispose()


def test_serve_sigint_stops_all(sqlite_url: str, tmp_path: Path) -> None:
    serve = Serve(sqlite_url, tmp_path)
    try:
        serve.wait_ready()
        deadline = time.monotonic() + 20  # let scheduled flow runs come and go
        while time.monotonic() < deadline:
            serve.record()
            time.sleep(0.5)
        paths = serve.probe("sigint")
        serve.stop(signal.SIGINT)
    finally:
        serve.kill()
    out = serve.output()
    assert all(f"{p} HTTP/1.1" in out for p in paths), out[-3000:]


def test_demo_finishes_and_matches_the_database(prefect_harness: str, tmp_path: Path) -> None:
    env = {**os.environ, "PREFECT_API_URL": prefect_harness, "COLUMNS": "200"}
    env.pop("RELIEF_DATABASE_URL", None)
    env.pop("RELIEF_NOW", None)
    from test_readme import quick_start_demo, shell_blocks

    demo = quick_start_demo()  # the README's Quick start, as written
    assert demo == "relief demo"
    done = subprocess.run(
        [*RELIEF, "demo"], cwd=tmp_path, env=env, capture_output=True, timeout=600
    )
    out = done.stdout.decode()
    assert done.returncode == 0, out + done.stderr.decode()
    db = sqlite3.connect(tmp_path / "relief-demo.db")
    cases = db.execute("select count(*) from relief_case").fetchone()[0]
    open_cases = db.execute(
        "select count(*) from relief_case where state not in ('closed','rejected','not_accepted')"
    ).fetchone()[0]
    paid_fen = db.execute("select sum(amount) from payout where status = 'paid'").fetchone()[0]
    payments = db.execute("select count(*) from payout where status = 'paid'").fetchone()[0]
    notices = db.execute("select count(*) from notice").fetchone()[0]
    types = {t for (t,) in db.execute("select distinct case_type from relief_case")}
    delivered = db.execute("select count(*) from notice where status = 'delivered'").fetchone()[0]
    line = re.search(
        r"cases (\d+) .* paid ([\d.]+) 元 \((\d+) payments\) · notices (\d+), delivered (\d+) "
        r"\(mail sink received (\d+)\)",
        " ".join(out.split()),
    )
    assert line, out
    assert int(line.group(1)) == cases
    assert line.group(2) == f"{paid_fen / 100:.2f}"
    assert int(line.group(3)) == payments
    assert int(line.group(4)) == notices
    assert int(line.group(5)) == delivered == notices == int(line.group(6))
    assert open_cases == 0  # every case reached its end
    assert types == {
        "rent_state_property",
        "rent_incubator_subsidy",
        "rent_park_subsidy",
        "credit_exemption",
        "licence_extension",
        "loan_subsidy",
        # configured measures: a refund paid out, a deferral, a referral, an arrears complaint
        "union_fee_refund",
        "social_insurance_deferral",
        "zgc_policy",
        "arrears_complaint",
    }
    states = dict(db.execute("select state, count(*) from relief_case group by state").fetchall())
    assert states.get("rejected") and states.get("not_accepted") and states.get("closed")
    more_info = db.execute(
        "select count(*) from case_event where trigger = 'request_info'"
    ).fetchone()[0]
    assert more_info == 1
    # it ends with the commands that open one of its cases, and they work as printed
    commands = re.findall(
        r"^\s*relief (--database \S+ (?:status|history|notices) DC-\d{4}-\d{6})\s*$", out, re.M
    )
    assert len(commands) == 3, out[-1500:]
    env.pop("PREFECT_API_URL")
    for command in commands:
        shown = subprocess.run(
            [*RELIEF, *command.split()], cwd=tmp_path, env=env, capture_output=True, timeout=120
        )
        assert shown.returncode == 0, shown.stderr.decode()
    # the README's first command after the demo
    [after_demo] = shell_blocks("## The command line")
    command = after_demo.strip().split()
    assert command[0] == "relief"
    shown = subprocess.run(
        [*RELIEF, *command[1:]], cwd=tmp_path, env=env, capture_output=True, timeout=120
    )
    assert shown.returncode == 0, shown.stderr
    assert "DC-2022-000001" in shown.stdout.decode()
