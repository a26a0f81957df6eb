"""`relief serve` — the scheduled flows in one long-running process (Prefect `serve`).

Outbox delivery, SLA sweeps and payout batches run on intervals from the settings. Schedules
need Prefect's scheduler service, which Prefect's in-process (ephemeral) server does not run,
so on embedded defaults `relief serve` starts a local `prefect server` (SQLite under
PREFECT_HOME, bound to 127.0.0.1) as its child and stops it on exit. With PREFECT_API_URL set,
the deployments register with that server instead.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from models.settings import get_settings

log = logging.getLogger(__name__)


def deployments() -> list[Any]:
    """Every scheduled flow as a deployment with its interval (the same list `relief deploy`
    registers in a work pool: flows/deploy.py)."""
    from flows.deploy import SCHEDULED

    settings = get_settings()
    return [
        spec.load().to_deployment(name=spec.deployment, interval=spec.interval(settings))
        for spec in SCHEDULED
    ]


@contextmanager
def prefect_api() -> Iterator[str]:
    """PREFECT_API_URL if set; else a local Prefect server started (and stopped) here."""
    url = os.environ.get("PREFECT_API_URL")
    if url:
        yield url
        return
    port = get_settings().prefect_port
    url = f"http://127.0.0.1:{port}/api"
    home = Path(os.environ.get("PREFECT_HOME", Path.home() / ".prefect"))
    home.mkdir(parents=True, exist_ok=True)
    logfile = (home / "relief-server.log").open("ab")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "prefect",
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=logfile,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # a Ctrl-C for us must not kill the server under our feet
    )
    _children.append(proc)
    try:
        _wait_healthy(url, proc, timeout=180)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        logfile.close()


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"prefect server exited with {proc.returncode}; see its log")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"prefect server did not answer at {url} within {timeout:.0f} s")


_children: list[subprocess.Popen[bytes]] = []
STOP_GRACE_SECONDS = 20.0


def _hard_stop() -> None:
    """If a clean stop hangs (Prefect's background workers retrying against a server that is
    going away), stop our local Prefect server and leave: every case change is already
    committed, and flow runs are separate processes."""
    for child in _children:
        child.terminate()
    log.warning("relief serve: clean stop took over %.0f s; exiting", STOP_GRACE_SECONDS)
    sys.stdout.flush()
    os._exit(0)


def _stop_on_sigterm() -> None:
    """SIGTERM (a service manager's stop) ends the process like Ctrl-C, within a grace time."""

    def handler(signum: int, frame: Any) -> None:
        timer = threading.Timer(STOP_GRACE_SECONDS, _hard_stop)
        timer.daemon = True
        timer.start()
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def serve_scheduled_flows() -> None:
    """Block, running each deployment on its schedule until interrupted."""
    _stop_on_sigterm()
    try:
        with prefect_api() as url:
            from prefect import serve
            from prefect.settings import PREFECT_API_URL, temporary_settings

            with temporary_settings(updates={PREFECT_API_URL: url}):
                scheduled = deployments()
                # one flow-run process per scheduled flow at most: on a busy machine runs
                # that come due while others still work wait, instead of piling up as
                # processes that slow each other (60 were seen, and a stop took minutes)
                serve(*scheduled, limit=len(scheduled), print_starting_message=True)
    except KeyboardInterrupt:
        log.warning("relief serve stopped")
