"""`relief serve` — the API and the scheduled flows in one long-running process.

Outbox delivery, SLA sweeps and payout batches run on intervals from the settings. Schedules
need Prefect's scheduler service, which Prefect's in-process (ephemeral) server does not run,
so on embedded defaults `relief serve` starts a local `prefect server` (SQLite under
PREFECT_HOME, bound to 127.0.0.1) as its child. With PREFECT_API_URL set, the deployments
register with that server instead.

Exactly one Prefect server: PREFECT_API_URL is put in this process's environment before
anything imports Prefect, so every thread (the API's flow calls run in uvicorn's thread, where
a context-local setting does not reach: they used to start a second, ephemeral server) and
every flow-run process uses the one server. On SIGTERM or SIGINT the scheduled flows stop,
then uvicorn, then the local server's process group, then every process still below this one
(flow runs start their own sessions); if a clean stop hangs, the same happens after a grace
time.
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
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import httpx

from models.settings import get_settings

log = logging.getLogger(__name__)
STOP_GRACE_SECONDS = 30.0
_runner: Any = None  # the Prefect runner once it exists: a signal then stops it gracefully
_grace: threading.Timer | None = None


def deployments() -> list[Any]:
    """Every scheduled flow as a deployment with its interval (the same list `relief deploy`
    registers in a work pool: flows/deploy.py)."""
    from flows.deploy import SCHEDULED

    settings = get_settings()
    return [
        spec.load().to_deployment(name=spec.deployment, interval=spec.interval(settings))
        for spec in SCHEDULED
    ]


def server_options(host: str, port: int, workers: int = 1) -> dict[str, Any]:
    """uvicorn's options for every way `relief serve` runs the API (one place for the proxy
    and keep-alive settings)."""
    settings = get_settings()
    return {
        "factory": True, "host": host, "port": port, "workers": workers,
        "proxy_headers": True, "forwarded_allow_ips": settings.trusted_proxies,
        "timeout_keep_alive": settings.http_keep_alive_seconds,
    }  # fmt: skip


def serve(host: str, port: int) -> None:
    """Run the API and the scheduled flows until SIGTERM or SIGINT; never returns."""
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    url = os.environ.get("PREFECT_API_URL")
    local = not url
    if local:
        url = f"http://127.0.0.1:{get_settings().prefect_port}/api"
        os.environ["PREFECT_API_URL"] = url  # before Prefect reads its settings
    _refresh_prefect_settings()
    import uvicorn

    _warn_unconfigured_channels()
    server = uvicorn.Server(uvicorn.Config("api.main:create_app", **server_options(host, port)))
    web = threading.Thread(target=server.run, name="api", daemon=True)
    try:
        web.start()  # the pages answer while the Prefect server starts
        with local_prefect_server(url) if local else nullcontext():  # type: ignore[arg-type]
            _run_deployments()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        _start_grace_timer()
        server.should_exit = True
        web.join(timeout=10)
        stop_descendants()
        log.warning("relief serve stopped")
    # Prefect's background log/event workers are non-daemon threads that can keep retrying
    # against the server just stopped; everything of ours is committed, so leave now.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _refresh_prefect_settings() -> None:
    """If Prefect was imported already, make its global settings read the environment again."""
    if "prefect.context" in sys.modules:
        from prefect.context import refresh_global_settings_context

        refresh_global_settings_context()


def _warn_unconfigured_channels() -> None:
    settings = get_settings()
    if not settings.smtp_host:
        log.warning("RELIEF_SMTP_HOST is not set: e-mail notices wait (awaiting_channel)")
    if not settings.sms_webhook_url:
        log.warning("RELIEF_SMS_WEBHOOK_URL is not set: SMS notices wait (awaiting_channel)")


def _run_deployments() -> None:
    global _runner
    from prefect.runner import Runner

    class StoppingRunner(Runner):
        """Prefect's runner, whose SIGTERM handler also arms our grace timer."""

        def handle_sigterm(self, *args: Any, **kwargs: Any) -> None:
            _start_grace_timer()
            super().handle_sigterm(*args, **kwargs)

    scheduled = deployments()
    # one flow-run process per scheduled flow at most: on a busy machine runs that come due
    # while others still work wait, instead of piling up as processes that slow each other
    # (60 were seen, and a stop took minutes)
    runner = StoppingRunner(limit=len(scheduled), pause_on_shutdown=True)
    for deployment in scheduled:
        runner.add_deployment(deployment)
    names = ", ".join(d.name for d in scheduled)
    print(f"relief serve: scheduled flows {names} on {os.environ['PREFECT_API_URL']}", flush=True)
    _runner = runner
    import asyncio

    asyncio.run(runner.start())


def _on_signal(signum: int, frame: Any) -> None:
    """SIGTERM or SIGINT: stop the runner gracefully once it runs, else unwind at once."""
    _start_grace_timer()
    if _runner is not None and getattr(_runner, "started", False):
        _runner.handle_sigterm()
        return
    raise KeyboardInterrupt


def _start_grace_timer() -> None:
    global _grace
    if _grace is None:
        _grace = threading.Timer(STOP_GRACE_SECONDS, _hard_stop)
        _grace.daemon = True
        _grace.start()


def _hard_stop() -> None:
    log.warning(
        "relief serve: clean stop took over %.0f s; stopping its processes", STOP_GRACE_SECONDS
    )
    stop_descendants(grace=5)
    sys.stdout.flush()
    os._exit(0)


@contextmanager
def local_prefect_server(url: str) -> Iterator[None]:
    """A `prefect server` for this serve alone, in its own session (a Ctrl-C meant for us must
    not kill it under our feet), stopped with its whole process group."""
    port = url.rsplit(":", 1)[1].split("/")[0]
    home = Path(os.environ.get("PREFECT_HOME", Path.home() / ".prefect"))
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    argv = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1"]
    with (home / "relief-server.log").open("ab") as logfile:
        proc = subprocess.Popen(
            [*argv, "--port", port],
            stdout=logfile,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        try:
            _wait_healthy(url, proc, timeout=180)
            yield
        finally:
            _stop_group(proc)


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


def _stop_group(proc: subprocess.Popen[bytes], grace: float = 15) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=5)


def descendants(root: int) -> list[int]:
    """Every living process whose parent chain leads to `root`, whatever its session."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if state != "Z":
            children.setdefault(int(ppid), []).append(int(entry.name))
    found: list[int] = []
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def stop_descendants(grace: float = 10) -> None:
    """SIGTERM every process below this one, SIGKILL what is left after `grace` seconds.

    All are signalled together, so a grandchild is reached before its parent's death hands it
    to init; a second sweep catches what was started meanwhile."""
    seen: set[int] = set()
    for _ in range(2):
        pids = [p for p in descendants(os.getpid()) if p not in seen]
        seen.update(pids)
        _signal(pids, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_alive(p) for p in seen):
        _reap()
        time.sleep(0.2)
    _signal([p for p in seen if _alive(p)], signal.SIGKILL)
    _reap()


def _signal(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _reap() -> None:
    """Collect our own exited children (their zombies would look alive to a pid check)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
