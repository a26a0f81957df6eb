"""How the command line shows assessments, cases, events and errors (rich)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from models.input_errors import FieldError
from states.labels import DECISION_ZH, TASK_ZH, state_zh
from states.rules import Assessment

console = Console()
err_console = Console(stderr=True)


def field_errors(errors: list[FieldError]) -> None:
    table = Table(title="申请书有误，未作任何记录（input rejected, nothing written）")
    table.add_column("字段 field")
    table.add_column("规则 rule")
    table.add_column("说明")
    for e in errors:
        table.add_row(e.field, e.rule, e.message_zh)
    err_console.print(table)


def assessment(a: Assessment, *, index: int | None = None) -> None:
    title = f"{a.case_type}" + (f" · {a.subject_key}" if a.subject_key else "")
    if index is not None:
        title = f"[{index}] {title}"
    console.rule(title)
    console.print(
        f"结论 decision: [bold]{DECISION_ZH.get(a.decision, a.decision)}[/bold]"
        f" ({a.decision.value})"
        f"    金额 amount: [bold]{a.amount}[/bold] 元    政策版本 edition: {a.edition_id}"
    )
    checks = Table(show_lines=False)
    checks.add_column("")
    checks.add_column("检查 check")
    checks.add_column("理由 reason")
    checks.add_column("依据 clause", overflow="fold", max_width=50)
    for c in a.checks:
        mark = "[green]✓[/green]" if c.passed else "[red]✗[/red]"
        if c.manual_review:
            mark += "[yellow]![/yellow]"
        checks.add_row(mark, c.code, c.reason_zh, c.clause)
    console.print(checks)
    for comp in a.components:
        console.print(f"  {comp.label_zh}: {comp.ceiling} 元 = {comp.formula_zh}")
    for k, v in a.effect.items():
        console.print(f"  {k}: {v}")
    for r in a.routes:
        contacts = "、".join(f"{p} {t}" for p, t in r.contacts)
        console.print(
            f"  {TASK_ZH.get(r.kind, r.kind)}: {r.unit}" + (f"（{contacts}）" if contacts else "")
        )
    if a.manual_review_reasons:
        console.print("[yellow]转人工复核: " + "；".join(a.manual_review_reasons))


def events(rows: list[Any]) -> None:
    table = Table(title="办理记录 history")
    for col in ("#", "时间 at", "操作 trigger", "从 from", "到 to", "操作人 actor", "说明"):
        table.add_column(col)
    for ev in rows:
        detail = {k: v for k, v in ev.payload.items() if v not in (None, [], {})}
        table.add_row(
            str(ev.seq),
            ev.at.strftime("%Y-%m-%d %H:%M"),
            ev.trigger,
            state_zh(ev.from_state or ""),
            state_zh(ev.to_state),
            ev.actor,
            ", ".join(f"{k}={v}" for k, v in detail.items()),
        )
    console.print(table)
