"""`relief deploy` and `relief worker` — relief on several machines (docs/deploy.md)."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from cli import render


def deploy(
    pool: Annotated[
        str | None, typer.Option(help="process work pool (default: RELIEF_WORK_POOL)")
    ] = None,
) -> None:
    """Register the work pool and a deployment for every flow on PREFECT_API_URL (idempotent)."""
    import flows  # noqa: F401  (relief's Prefect defaults before Prefect loads)
    from flows.deploy import deploy_all
    from models.settings import get_settings

    settings = get_settings()
    if pool:
        settings = settings.model_copy(update={"work_pool": pool})
    try:
        names = deploy_all(settings)
    except RuntimeError as exc:
        render.console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    render.console.print(f"work pool {settings.work_pool}: {len(names)} deployments")
    for name in names:
        typer.echo(name)


def worker(
    pool: Annotated[
        str | None, typer.Option(help="process work pool (default: RELIEF_WORK_POOL)")
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="worker name (default: relief-<host>-<pid>)")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="most flow runs at once")] = None,
    healthcheck: Annotated[
        bool,
        typer.Option(help="serve GET /health on PREFECT_WORKER_WEBSERVER_HOST:PORT (0.0.0.0:8080)"),
    ] = False,
) -> None:
    """Run flow runs from the work pool: `prefect worker start --type process` in this process."""
    import flows  # noqa: F401  (relief's Prefect defaults, inherited by the worker)
    from flows.deploy import worker_command
    from models.settings import get_settings

    if not os.environ.get("PREFECT_API_URL"):
        render.console.print("[red]PREFECT_API_URL is not set (see docs/deploy.md)[/red]")
        raise typer.Exit(2)
    cmd = worker_command(pool=pool or get_settings().work_pool, name=name, limit=limit)
    if healthcheck:
        cmd.append("--with-healthcheck")
    # exec, not a child: the service manager's pid and signals reach the worker itself
    os.execv(cmd[0], cmd)
