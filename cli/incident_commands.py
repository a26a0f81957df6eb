"""relief incident — list the incidents an operator must look at, retry one now, or resolve
one with a note: the engine's steps (CaseEngine.act_on_incident), as on the dashboard."""

from __future__ import annotations

from typing import Annotated

import typer

incident_app = typer.Typer(
    help="Incidents: failed payouts and notices, unmet 容缺 commitments.", no_args_is_help=True
)
STATUSES = ("open", "retrying", "resolved", "all")


@incident_app.command("list")
def incident_list(
    status: Annotated[str, typer.Option(help="open, retrying, resolved or all")] = "open",
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="at most this many")] = 200,
) -> None:
    """Incidents, oldest first, with their case and what failed."""
    from cli import render
    from cli.main import _engine, _fail_input
    from models.input_errors import FieldError
    from reports.dashboard import incident_rows
    from states.labels import INCIDENT_STATUS_ZH, INCIDENT_ZH

    if status not in STATUSES:
        choices = "、".join(STATUSES)
        _fail_input([FieldError("--status", "status.unknown", f"状态只能是：{choices}", "unknown")])
    engine = _engine(read_only=True)
    rows, total = incident_rows(engine.read_db, None if status == "all" else (status,), limit=limit)
    tz = engine.clock.now().tzinfo
    render.table(
        f"异常 incidents（{len(rows)} / {total}）",
        ["编号 id", "类型 kind", "案件 case", "说明 message", "时间 at", "状态 status"],
        [
            (str(i.id), INCIDENT_ZH.get(i.kind, i.kind), case_no or "—", i.message,
             f"{i.created_at.astimezone(tz):%Y-%m-%d %H:%M}",
             INCIDENT_STATUS_ZH.get(i.status, i.status))
            for i, case_no in rows
        ],
    )  # fmt: skip


@incident_app.command("retry")
def incident_retry(
    incident_id: Annotated[
        int, typer.Argument(help="the incident's number (relief incident list)")
    ],
    account: Annotated[str, typer.Option("--as", envvar="RELIEF_AS", help="an operator")],
) -> None:
    """Retry now: a failed notice is delivered at once, a failed payout goes back to the
    payment queue with its key (paid by the next payout run). An audit event on the case."""
    from cli import render
    from cli.main import _actor, _engine, _engine_step
    from notifications.incident_retry import retry_now

    engine = _engine()
    done = _engine_step(lambda: retry_now(engine, incident_id, _actor(engine, account)))
    render.console.print(
        f"{done['case_no']}: 已重试 retried（{done['outcome']}，{done['status']}）"
    )


@incident_app.command("resolve")
def incident_resolve(
    incident_id: Annotated[
        int, typer.Argument(help="the incident's number (relief incident list)")
    ],
    note: Annotated[str, typer.Option(help="how it was handled (required)")],
    account: Annotated[str, typer.Option("--as", envvar="RELIEF_AS", help="an operator")],
) -> None:
    """Close an incident handled outside relief, with a note. An audit event on the case."""
    from cli import render
    from cli.main import _actor, _engine, _engine_step

    engine = _engine()
    done = _engine_step(
        lambda: engine.act_on_incident(
            incident_id, action="resolve", actor=_actor(engine, account), note=note
        )
    )
    render.console.print(f"{done.case_no}: 异常已办结 resolved")
