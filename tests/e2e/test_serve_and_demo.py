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

import httpx
import scenarios as S
from conftest import make_case_engine
from drive import decide
from sqlmodel import Session, select

from models.tables import Payout

RELIEF = [sys.executable, "-c", "from cli.main import app; app()"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_runs_scheduled_payout_batches(sqlite_url: str, tmp_path: Path) -> None:
    """On embedded defaults: serve starts its own local Prefect server (the test harness's
    server runs no scheduler), registers the deployments and runs them on schedule."""
    engine = make_case_engine(sqlite_url)
    [r] = engine.submit(S.application("RENT-07"), actor="applicant")
    decide(engine, r.case_id, approve=True)
    env = {
        **os.environ,
        "RELIEF_DATABASE_URL": sqlite_url,
        "RELIEF_NOW": "2022-12-30T10:00:00+08:00",
        "RELIEF_PAYMENT_DIR": str(tmp_path / "payments"),
        "RELIEF_SCHEDULE_PAYOUT_MINUTES": "0.05",
        "RELIEF_SCHEDULE_SLA_MINUTES": "0.05",
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "RELIEF_PREFECT_PORT": str(free_port()),
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
    }
    env.pop("PREFECT_API_URL", None)
    web_port = free_port()
    proc = subprocess.Popen(
        [*RELIEF, "serve", "--port", str(web_port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # so that a failed test can stop everything it started
    )
    try:
        deadline = time.monotonic() + 240
        sent = False
        while time.monotonic() < deadline and not sent:
            time.sleep(2)
            with Session(engine.db) as s:
                sent = s.exec(select(Payout)).one().status == "sent"
        assert sent, "no scheduled payout batch ran"
        page = httpx.get(f"http://127.0.0.1:{web_port}/status", timeout=30)  # the API, same process
        assert page.status_code == 200 and "办理进度查询" in page.text
        assert list((tmp_path / "payments").glob("PB-*.csv"))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=240)  # a loaded 2-core machine stops slowly
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
    assert proc.returncode == 0, out.decode(errors="replace")[-2000:]
    engine.db.dispose()


def test_demo_finishes_and_matches_the_database(prefect_harness: str, tmp_path: Path) -> None:
    env = {**os.environ, "PREFECT_API_URL": prefect_harness, "COLUMNS": "200"}
    env.pop("RELIEF_DATABASE_URL", None)
    env.pop("RELIEF_NOW", None)
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
