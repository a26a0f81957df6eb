"""`relief flow run NAME …` — operators run any stage as a real Prefect flow run."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel

from cli import render

AsAccount = Annotated[
    str,
    typer.Option("--as", envvar="RELIEF_AS", help="the account the flow acts as; or RELIEF_AS"),
]
AsSystem = Annotated[
    str,
    typer.Option("--as", envvar="RELIEF_AS", help="the account the flow acts as (default: system)"),
]
flow_app = typer.Typer(help="Run the stages of casework as Prefect flows.", no_args_is_help=True)
run_app = typer.Typer(help="Run one flow now and print what it did.", no_args_is_help=True)
flow_app.add_typer(run_app, name="run")


@run_app.callback()
def _use_running_server() -> None:
    """Run on the Prefect server `relief serve` (or the deployment) runs, when there is one.

    Without PREFECT_API_URL, Prefect would start a temporary server of its own for every
    command (10-20 s, even for one row); a local server on RELIEF_PREFECT_PORT that answers its
    health check is used instead. Set before Prefect is imported, so every part of it sees it.
    """
    import os

    if os.environ.get("PREFECT_API_URL"):
        return
    import httpx

    from models.settings import get_settings

    url = f"http://127.0.0.1:{get_settings().prefect_port}/api"
    try:
        healthy = httpx.get(f"{url}/health", timeout=0.5).status_code == 200
    except httpx.HTTPError:
        healthy = False
    if healthy:
        os.environ["PREFECT_API_URL"] = url


def _run(label: str, call: Any) -> BaseModel:
    """Run a flow with heartbeats off and a progress spinner; print its summary."""
    import flows  # noqa: F401  (applies relief's Prefect defaults before Prefect loads)
    from flows.common import heartbeats_off

    with render.console.status(f"running flow {label} …"), heartbeats_off():
        summary: BaseModel = call()
    render.table(
        f"flow {label}",
        ("", ""),
        [(key, str(value)) for key, value in summary.model_dump(mode="json").items()],
    )
    return summary


@run_app.command("intake")
def intake(
    file: Annotated[Path, typer.Argument(help="JSON or CSV batch of applications")],
    account: AsAccount,
    batch_id: Annotated[str | None, typer.Option(help="default: name + content hash")] = None,
) -> None:
    """Validate and submit a batch (as an intake officer or operator); every row is recorded."""
    from flows.intake import IntakeParams, intake_flow

    params = IntakeParams(file=file, batch_id=batch_id, account=account)
    _run("intake", lambda: intake_flow(params))


@run_app.command("decisions")
def decisions(
    file: Annotated[Path, typer.Argument(help="JSON or CSV rows of bureau actions")],
    account: AsAccount,
    batch_id: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Apply your batch of review / confirm / approve / reject actions (as a reviewer)."""
    from flows.bureau_decisions import DecisionsParams, bureau_decisions_flow

    params = DecisionsParams(file=file, batch_id=batch_id, account=account)
    _run("bureau-decisions", lambda: bureau_decisions_flow(params))


@run_app.command("payout")
def payout(
    adapter: Annotated[str | None, typer.Option(help="file or http (default: setting)")] = None,
    endpoint: Annotated[str | None, typer.Option(help="treasury base URL (http)")] = None,
    out_dir: Annotated[Path | None, typer.Option(help="instruction folder (file)")] = None,
    account: AsSystem = "system",
) -> None:
    """Pay every ordered payout exactly once."""
    from flows.payout import PayoutParams, payout_flow

    params = PayoutParams(adapter=adapter, endpoint=endpoint, out_dir=out_dir, account=account)  # type: ignore[arg-type]
    _run("payout", lambda: payout_flow(params))


@run_app.command("reconcile")
def reconcile(
    file: Annotated[Path, typer.Argument(help="CSV: idempotency_key,status,reference")],
    account: AsSystem = "system",
) -> None:
    """Read the treasury's reconciliation file."""
    from flows.reconcile import ReconcileParams, reconcile_flow

    _run("reconcile", lambda: reconcile_flow(ReconcileParams(file=file, account=account)))


@run_app.command("sla")
def sla(
    now: Annotated[datetime | None, typer.Option(help="sweep as of (ISO, with offset)")] = None,
    account: AsSystem = "system",
) -> None:
    """Remind sections of tasks coming due; escalate overdue ones."""
    from flows.sla import SlaParams, sla_flow

    _run("sla-sweep", lambda: sla_flow(SlaParams(now=now, account=account)))


@run_app.command("licence-grant")
def licence_grant(
    file: Annotated[Path, typer.Argument(help="register of licences, JSON or CSV")],
    account: AsSystem = "system",
) -> None:
    """Grant the ex-officio +6-month extension to every licence in scope."""
    from flows.licence_grant import LicenceGrantParams, licence_grant_flow

    params = LicenceGrantParams(file=file, account=account)
    _run("licence-grant", lambda: licence_grant_flow(params))


@run_app.command("outbox")
def outbox(
    now: Annotated[datetime | None, typer.Option(help="deliver as of (ISO)")] = None,
) -> None:
    """Deliver every pending notice that is due."""
    from flows.outbox import OutboxParams, outbox_flow

    _run("outbox", lambda: outbox_flow(OutboxParams(now=now)))
