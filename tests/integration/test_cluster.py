"""relief on several machines, on loopback: PostgreSQL for relief and for Prefect, a Prefect
server on it, two workers and two API processes, all started and stopped here by process id.

A batch goes in through one API process, bureaus decide through both, and from then on only
the scheduled flows (run by the workers) carry the cases to payout and notices. In the middle
of the payouts the treasury kills the worker whose flow run is calling it (SIGKILL, its whole
tree, just after the treasury recorded the payment and before relief heard the answer). The
test checks that every case reached its end exactly once, that the treasury paid every key
once, that the SMTP server received every notice once, and that both workers ran flow runs.

No code differs from the single-machine case: only settings (docs/deploy.md).
"""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import scenarios as S
from aiosmtpd.controller import Controller
from processes import (
    Proc,
    ancestors,
    descendants,
    free_port,
    http_ok,
    pid_of_client,
    wait_for,
)
from smtp_sink import Sink
from sqlalchemy import text
from sqlmodel import Session, col, func, select
from treasury_server import Treasury

from base.identifiers import USCC_CHARS, uscc_check_char
from flows.deploy import ZOMBIE_AUTOMATION
from models.db import make_engine
from models.tables import Case, CaseEvent, Notice, Payout, PayoutAttempt
from notifications.channels import message_id

pytestmark = pytest.mark.postgres

RELIEF = [sys.executable, "-c", "from cli.main import app; app()"]
PREFECT = [sys.executable, "-m", "prefect"]
CASES = 10
NOW = "2022-12-30T10:00:00+08:00"


def applications(n: int) -> list[dict[str, Any]]:
    """`n` incubator subsidy applications (review → confirm → decide → payout), each from its
    own enterprise, each with an e-mail address for its notices."""
    out = []
    for i in range(n):
        first17 = "91110101MA0" + "".join(USCC_CHARS[(i * 7 + k) % 31] for k in range(6))
        app = copy.deepcopy(S.application("RENT-07"))
        app["applicant"]["uscc"] = first17 + uscc_check_char(first17)
        app["applicant"]["email"] = f"incubator{i}@example.cn"
        out.append(app)
    return out


@pytest.fixture
def cluster_dbs(postgres_server: Any) -> Iterator[tuple[str, str]]:
    """Two databases in the throwaway cluster: relief's and the Prefect server's."""
    suffix = uuid.uuid4().hex[:10]
    app_url = postgres_server.create_database(f"relief_{suffix}")
    prefect_db = f"prefect_{suffix}"
    postgres_server.create_database(prefect_db)
    prefect_url = (
        f"postgresql+asyncpg://{postgres_server.user}@{postgres_server.host}:"
        f"{postgres_server.port}/{prefect_db}"
    )
    yield app_url, prefect_url
    postgres_server.drop_database(f"relief_{suffix}")
    postgres_server.drop_database(prefect_db)


def submissions(proc: Proc) -> list[str]:
    """Flow run ids a worker took, from its log ("Worker 'x' submitting flow run '<id>'")."""
    text = proc.log.read_text(encoding="utf-8", errors="replace")
    return re.findall(rf"Worker '{proc.name}' submitting flow run '([0-9a-f-]+)'", text)


def completions(proc: Proc) -> int:
    """Flow runs of this worker that finished Completed (their logs go to the worker's)."""
    text = proc.log.read_text(encoding="utf-8", errors="replace")
    return len(re.findall(r"Flow run '[^']+' - Finished in state Completed\(\)", text))


def test_cluster_two_workers_two_apis_survives_a_killed_worker(
    cluster_dbs: tuple[str, str], tmp_path: Path
) -> None:
    started = time.monotonic()
    app_url, prefect_db_url = cluster_dbs
    prefect_port, api_ports = free_port(), [free_port(), free_port()]
    treasury = Treasury().start()
    treasury.delay = 0.3  # a payout run takes a few seconds: long enough to die in
    sink = Sink()
    smtp = Controller(sink, hostname="127.0.0.1", port=free_port())
    smtp.start()
    logs = tmp_path / "logs"
    logs.mkdir()

    base = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "RELIEF_"))}
    base.update(
        {
            "DO_NOT_TRACK": "1",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_LOGGING_LEVEL": "WARNING",
        }
    )
    relief_env = {
        **base,
        "PREFECT_API_URL": f"http://127.0.0.1:{prefect_port}/api",
        "RELIEF_DATABASE_URL": app_url,
        "RELIEF_NOW": NOW,
        "RELIEF_WORK_POOL": "relief-cluster-test",
        "RELIEF_TREASURY_ADAPTER": "http",
        "RELIEF_TREASURY_URL": treasury.url,
        "RELIEF_PAYOUT_RETRY_SECONDS": "0",
        "RELIEF_SMTP_HOST": "127.0.0.1",
        "RELIEF_SMTP_PORT": str(smtp.port),
        "RELIEF_SCHEDULE_OUTBOX_MINUTES": "0.15",
        "RELIEF_SCHEDULE_PAYOUT_MINUTES": "0.15",
        "RELIEF_SCHEDULE_SLA_MINUTES": "1",
    }

    def env_for(name: str, **extra: str) -> dict[str, str]:
        """Each process its own PREFECT_HOME, as on its own machine."""
        home = tmp_path / f"home-{name}"
        home.mkdir(exist_ok=True)
        return {**relief_env, "PREFECT_HOME": str(home), **extra}

    procs: list[Proc] = []
    seen_pids: set[int] = set()

    def start(name: str, argv: list[str], env: dict[str, str]) -> Proc:
        proc = Proc(name, argv, env=env, logdir=logs)
        procs.append(proc)
        return proc

    def run(argv: list[str], name: str) -> str:
        done = subprocess.run(
            [*RELIEF, *argv], env=env_for(name), capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    victim: dict[str, Any] = {}
    try:
        # 1. the schema, once, before anything else runs against the database
        run(["db", "upgrade"], "upgrade")
        _create_accounts(app_url)

        # 2. the Prefect server on PostgreSQL
        server = start(
            "prefect-server",
            [*PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(prefect_port)],
            {
                **env_for("prefect-server"),
                "PREFECT_API_DATABASE_CONNECTION_URL": prefect_db_url,
                "PREFECT_UI_ENABLED": "false",
                "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "5",
            },
        )
        wait_for(
            "the Prefect server",
            lambda: http_ok(f"http://127.0.0.1:{prefect_port}/api/health"),
            timeout=180,
            procs=[server],
        )

        # 3. work pool and deployments, then two workers and two API processes
        deployed = run(["deploy"], "deploy")
        assert "outbox/outbox-delivery" in deployed and "intake/intake" in deployed
        worker_env = {"PREFECT_LOGGING_LEVEL": "INFO", "PREFECT_WORKER_QUERY_SECONDS": "1"}
        workers = [
            start(
                name,
                [*RELIEF, "worker", "--name", name, "--limit", "1"],
                env_for(name, **worker_env),
            )
            for name in ("worker-a", "worker-b")
        ]
        apis = [
            start(
                f"api-{i}",
                [*RELIEF, "serve", "--no-flows", "--host", "127.0.0.1", "--port", str(port)],
                env_for(f"api-{i}"),
            )
            for i, port in enumerate(api_ports)
        ]
        urls = [f"http://127.0.0.1:{port}" for port in api_ports]
        for url in urls:
            wait_for(
                f"{url}/healthz", lambda u=url: http_ok(f"{u}/healthz"), timeout=120, procs=procs
            )
        api_pids = {httpx.get(f"{u}/healthz", timeout=10).json()["pid"] for u in urls}
        assert api_pids == {p.pid for p in apis}  # two processes, each answering on its own

        # 4. both workers complete scheduled runs before anything is submitted
        wait_for(
            "both workers to complete flow runs",
            lambda: all(completions(w) for w in workers),
            timeout=240,
            procs=procs,
        )

        # an operator-run deployment, started the documented way, runs on a worker too (started
        # now, while both workers live; checked at the end)
        started_run = subprocess.run(
            [
                *PREFECT,
                "deployment",
                "run",
                "sla-sweep/sla",
                "--param",
                f'params={{"now": "{NOW}"}}',
            ],
            env=env_for("operator-cli", COLUMNS="200"),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert started_run.returncode == 0, started_run.stdout + started_run.stderr
        [operator_run] = re.findall(r"UUID: ([0-9a-f-]{36})", started_run.stdout)

        # 5. a batch through API 0; a page session made on API 0 works on API 1
        op = {"Authorization": f"Bearer {ACCOUNTS['operator']}"}
        batch = httpx.post(
            f"{urls[0]}/api/operator/batches",
            json={"applications": applications(CASES), "batch_id": "cluster-1"},
            headers=op,
            timeout=180,
        )
        assert batch.status_code == 200, batch.text
        assert batch.json()["submitted"] == CASES, batch.json()
        web = httpx.Client(timeout=30)  # the login form from API 1, posted to API 0
        form = web.get(f"{urls[1]}/login")
        [token] = re.findall(r'name="csrf_token" value="([^"]+)"', form.text)
        login = web.post(
            f"{urls[0]}/login",
            data={"username": "zgc_a", "password": "pw-zgc_a", "csrf_token": token},
        )
        assert login.status_code == 303 and "relief_session" in web.cookies
        page = httpx.get(f"{urls[1]}/bureau/tasks", cookies=dict(web.cookies), timeout=30)
        assert page.status_code == 200 and "DC-2022-" in page.text

        # 6. the treasury kills the caller's worker at the 4th payment, after recording it
        def kill_callers_worker(client: tuple[str, int]) -> None:
            caller = pid_of_client(client[1], treasury_port)
            for w in workers:
                if caller is not None and (caller == w.pid or w.pid in ancestors(caller)):
                    victim["worker"] = w
                    victim["runs_before"] = {x.name: len(submissions(x)) for x in workers}
                    victim["flow_run"] = submissions(w)[-1]
                    victim["pids"] = w.kill_tree()
                    return
            victim["error"] = f"POST from pid {caller}, not a worker's flow run"

        treasury_port = int(treasury.url.rsplit(":", 1)[1])
        treasury.killer = kill_callers_worker
        treasury.kill_at = {4: "after"}

        # 7. bureaus decide through both API processes; reviewer and decider differ
        rev_a = {"Authorization": f"Bearer {ACCOUNTS['zgc_a']}"}
        rev_b = {"Authorization": f"Bearer {ACCOUNTS['zgc_b']}"}
        tasks = httpx.get(f"{urls[1]}/api/tasks", headers=rev_a, timeout=30).json()
        assert len(tasks) == CASES
        for i, t in enumerate(tasks):
            a, b = urls[i % 2], urls[(i + 1) % 2]
            r = httpx.post(
                f"{a}/api/tasks/{t['id']}/review",
                json={"decision": "pass"},
                headers=rev_a,
                timeout=60,
            )
            assert r.status_code == 200, r.text
            r = httpx.post(
                f"{b}/api/cases/{t['case_no']}/confirm", json={}, headers=rev_b, timeout=60
            )
            assert r.status_code == 200, r.text
            r = httpx.post(
                f"{a}/api/cases/{t['case_no']}/decide",
                json={"action": "approve"},
                headers=rev_b,
                timeout=60,
            )
            assert r.status_code == 200 and r.json()["state"] == "payout_ordered", r.text

        # 8. from here on only the scheduled flows work: every case paid, closed, notified
        db = make_engine(app_url)
        notices_total = 3 * CASES  # acceptance, decision, payment notice

        def all_done() -> bool:
            with Session(db) as s:
                open_cases = s.exec(
                    select(func.count()).select_from(Case).where(col(Case.state) != "closed")
                ).one()
                delivered = s.exec(
                    select(func.count())
                    .select_from(Notice)
                    .where(col(Notice.status) == "delivered")
                ).one()
            return open_cases == 0 and delivered == notices_total

        def state_of_things() -> str:
            with Session(db) as s:
                cases = s.exec(select(Case.state, func.count()).group_by(col(Case.state))).all()
                pays = s.exec(
                    select(Payout.status, func.count()).group_by(col(Payout.status))
                ).all()
                sent = s.exec(
                    select(Notice.status, func.count()).group_by(col(Notice.status))
                ).all()
                locks = s.exec(
                    text(
                        "select l.pid, a.state, a.client_port, now() - a.state_change"
                        " from pg_locks l join pg_stat_activity a using (pid)"
                        " where l.locktype = 'advisory'"
                    )
                ).all()
            return (
                f"cases {dict(cases)}; payouts {dict(pays)}; notices {dict(sent)}; "
                f"advisory locks {locks}; treasury posts {treasury.posts}, "
                f"payments {len(treasury.payments)}; mails {len(sink.messages)}; "
                f"victim {victim}\n"
            )

        wait_for(
            "every case closed and notified",
            all_done,
            timeout=300,
            procs=procs,
            every=1,
            context=state_of_things,
        )
        assert "error" not in victim, victim.get("error")
        assert "worker" in victim, "the treasury never saw its 4th payment"
        dead: Proc = victim["worker"]
        assert not dead.alive()
        assert not [
            p
            for p in victim["pids"]
            if Path(f"/proc/{p}").exists()
            and "zombie" not in Path(f"/proc/{p}/status").read_text().lower()
        ]
        survivor = next(w for w in workers if w is not dead)

        with Session(db) as s:
            cases = s.exec(select(Case)).all()
            closed = Counter(
                s.exec(select(CaseEvent.case_id).where(col(CaseEvent.to_state) == "closed")).all()
            )
            paid_events = Counter(
                s.exec(
                    select(CaseEvent.case_id).where(col(CaseEvent.trigger) == "record_payment")
                ).all()
            )
            payouts = s.exec(select(Payout)).all()
            found = s.exec(select(PayoutAttempt).where(col(PayoutAttempt.status) == "found")).all()
            notices = s.exec(select(Notice)).all()
        assert len(cases) == CASES and {c.state for c in cases} == {"closed"}
        assert closed == {c.id: 1 for c in cases}  # each case reached its end exactly once
        assert paid_events == {c.id: 1 for c in cases}
        # the treasury paid each key exactly once, the killed run's payment included
        assert treasury.paid_count() == {p.idempotency_key: 1 for p in payouts}
        assert {p.status for p in payouts} == {"paid"}
        # the run that died never heard the treasury's answer: a later run asked and found it
        assert len(found) == 1
        # each notice reached the SMTP server exactly once
        assert len(notices) == notices_total
        assert sink.message_ids() == Counter(message_id(n) for n in notices)

        # both workers ran flow runs; the survivor kept running them after the kill
        def operator_run_state() -> str:
            url = f"{relief_env['PREFECT_API_URL']}/flow_runs/{operator_run}"
            return str(httpx.get(url, timeout=30).json()["state_type"])

        wait_for(
            "the operator-run sla deployment",
            lambda: operator_run_state() in {"COMPLETED", "FAILED", "CRASHED"},
            timeout=180,
            procs=procs,
        )
        assert operator_run_state() == "COMPLETED"

        # what an operator watches (docs/deploy.md) says the same, from the other API process
        counts = httpx.get(f"{urls[1]}/api/operator/counts", headers=op, timeout=30).json()
        assert counts["by_state"] == {"closed": CASES}
        assert counts["outbox_pending"] == 0 and counts["payouts_waiting"] == {}
        assert counts["incidents_open"] == 0
        runs = {w.name: len(submissions(w)) for w in workers}
        done = {w.name: completions(w) for w in workers}
        assert all(done.values()), done
        assert runs[survivor.name] > victim["runs_before"][survivor.name], (runs, victim)
        db.dispose()
        # Prefect's view: the killed run stays Running until the zombie automation that
        # `relief deploy` registered sees three heartbeats missed (minutes; not waited for here)
        prefect_api = relief_env["PREFECT_API_URL"]
        killed_run = httpx.get(f"{prefect_api}/flow_runs/{victim['flow_run']}", timeout=30).json()
        automations = httpx.post(f"{prefect_api}/automations/filter", json={}, timeout=30).json()
        assert ZOMBIE_AUTOMATION in {a["name"] for a in automations}
        print(
            f"\ncluster: {time.monotonic() - started:.0f} s; flow runs taken per worker {runs}, "
            f"completed {done} (killed {dead.name} after {victim['runs_before'][dead.name]}; its "
            f"run is {killed_run['state_type']} in Prefect); API pids {sorted(api_pids)}; "
            f"payments {len(treasury.payments)}; mails {len(sink.messages)}"
        )
    finally:
        for proc in reversed(procs):
            seen_pids.update([proc.pid, *descendants(proc.pid)])
            proc.stop()
        smtp.stop()
        treasury.stop()
    left = [p for p in seen_pids if Path(f"/proc/{p}").exists() and _not_zombie(p)]
    assert not left, f"processes left running: {left}"


def _not_zombie(pid: int) -> bool:
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()
    except OSError:
        return False


ACCOUNTS: dict[str, str] = {}


def _create_accounts(url: str) -> None:
    """An operator and two reviewers of 东城园管委会企业处 (one reviews, the other confirms and
    decides: separation of duties)."""
    from conftest import FIXED_NOW

    from api.security import create_account

    db = make_engine(url)
    specs = {
        "operator": {"role": "operator"},
        "zgc_a": {"role": "reviewer", "bureau": "zgc_dongcheng", "section": "enterprise"},
        "zgc_b": {"role": "reviewer", "bureau": "zgc_dongcheng", "section": "enterprise"},
    }
    for name, spec in specs.items():
        _, ACCOUNTS[name] = create_account(
            db, username=name, now=FIXED_NOW, password=f"pw-{name}", **spec
        )
    db.dispose()
