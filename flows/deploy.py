"""`relief deploy` and `relief worker` — the flows on a Prefect server, run by any number of
workers on any number of machines.

`relief deploy` registers (idempotently: run it again after every upgrade) a process work pool
and one deployment per flow: the three scheduled sweeps with their intervals, and every
operator-run flow without a schedule (`prefect deployment run 'intake/intake' -p ...`). The
deployments name their flows by module path (`flows.outbox.outbox_flow`), not by file: a worker
imports them from the installed `relief` package, so nothing is pulled or copied, and every
machine that has the same version of relief installed can run every flow.

`relief worker` is `prefect worker start --pool <RELIEF_WORK_POOL> --type process`: it polls
the pool and runs each flow run as a child process with the worker's environment
(RELIEF_DATABASE_URL and the rest), so a worker needs the same settings as the API.
"""

from __future__ import annotations

import os
import socket
import sys
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from models.settings import Settings, get_settings


@dataclass(frozen=True)
class FlowSpec:
    """One deployment: the flow's import path, its deployment name, and its schedule setting."""

    module: str
    function: str
    deployment: str
    schedule_setting: str | None = None  # a Settings field in minutes; None: operator-run

    def interval(self, settings: Settings) -> timedelta | None:
        if self.schedule_setting is None:
            return None
        return timedelta(minutes=float(getattr(settings, self.schedule_setting)))

    def load(self) -> Any:
        import importlib

        return getattr(importlib.import_module(self.module), self.function)


SCHEDULED = [
    FlowSpec("flows.outbox", "outbox_flow", "outbox-delivery", "schedule_outbox_minutes"),
    FlowSpec("flows.sla", "sla_flow", "sla-sweep", "schedule_sla_minutes"),
    FlowSpec("flows.payout", "payout_flow", "payout-batches", "schedule_payout_minutes"),
]
OPERATOR_RUN = [
    FlowSpec("flows.intake", "intake_flow", "intake"),
    FlowSpec("flows.bureau_decisions", "bureau_decisions_flow", "bureau-decisions"),
    FlowSpec("flows.payout", "payout_flow", "payout"),
    FlowSpec("flows.reconcile", "reconcile_flow", "reconcile"),
    FlowSpec("flows.licence_grant", "licence_grant_flow", "licence-grant"),
    FlowSpec("flows.outbox", "outbox_flow", "outbox"),
    FlowSpec("flows.sla", "sla_flow", "sla"),
]


def cluster_deployments(settings: Settings | None = None) -> list[Any]:
    """Every flow as a deployment in the work pool, entrypoint by module path."""
    from prefect.deployments.runner import EntrypointType

    settings = settings or get_settings()
    out = []
    for spec in [*SCHEDULED, *OPERATOR_RUN]:
        interval = spec.interval(settings)
        out.append(
            spec.load().to_deployment(
                name=spec.deployment,
                interval=interval,
                work_pool_name=settings.work_pool,
                entrypoint_type=EntrypointType.MODULE_PATH,
                tags=["relief", "scheduled" if interval else "operator"],
            )
        )
    return out


def ensure_work_pool(name: str) -> bool:
    """Create the process work pool `name` unless it exists; True if it was created."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists
    from prefect.workers.process import ProcessWorker

    with get_client(sync_client=True) as client:
        try:
            client.create_work_pool(
                WorkPoolCreate(
                    name=name,
                    type="process",
                    base_job_template=ProcessWorker.get_default_base_job_template(),
                )
            )
        except ObjectAlreadyExists:
            return False
    return True


ZOMBIE_AUTOMATION = "relief: crash flow runs that stopped heartbeating"


def ensure_zombie_automation() -> bool:
    """Prefect's documented zombie detection (docs.prefect.io/v3/advanced/detect-zombie-flows):
    a flow run whose heartbeats stop (its worker machine died) is marked Crashed after three
    missed heartbeats. Cosmetic for relief (the database, not the run, holds the work: the next
    scheduled run takes it up), but it keeps Prefect's view honest. True if created."""
    from prefect.automations import Automation
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY

    with get_client(sync_client=True) as client:
        if client.read_automations_by_name(ZOMBIE_AUTOMATION):
            return False
    beat = PREFECT_FLOWS_HEARTBEAT_FREQUENCY.value() or 180
    Automation(
        name=ZOMBIE_AUTOMATION,
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={
                "prefect.flow-run.heartbeat",
                "prefect.flow-run.Completed",
                "prefect.flow-run.Failed",
                "prefect.flow-run.Cancelled",
                "prefect.flow-run.Crashed",
            },
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=3 * beat),
        ),
        actions=[
            ChangeFlowRunState(
                name="Crashed",
                state=StateType.CRASHED,
                force=False,
                message=f"No heartbeat for {3 * beat} s: its worker is gone (relief deploy)",
            )
        ],
    ).create()
    return True


def deploy_all(settings: Settings | None = None) -> list[str]:
    """Register the work pool and every deployment on PREFECT_API_URL; returns their names."""
    settings = settings or get_settings()
    if not os.environ.get("PREFECT_API_URL"):
        raise RuntimeError(
            "PREFECT_API_URL is not set: `relief deploy` registers deployments on a running "
            "Prefect server (see docs/deploy.md)"
        )
    ensure_work_pool(settings.work_pool)
    ensure_zombie_automation()
    names = []
    for deployment in cluster_deployments(settings):
        deployment.apply()
        names.append(f"{deployment.flow_name}/{deployment.name}")
    return names


def worker_command(*, pool: str, name: str | None = None, limit: int | None = None) -> list[str]:
    """The `prefect worker start` line `relief worker` runs (documented in docs/deploy.md)."""
    cmd = [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool, "--type", "process"]
    cmd += ["--name", name or f"relief-{socket.gethostname()}-{os.getpid()}"]
    if limit is not None:
        cmd += ["--limit", str(limit)]
    return cmd
