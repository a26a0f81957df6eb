"""How the command line shows assessments, cases, events and errors (rich).

Nothing is ever cut: a reason, an error's explanation or a list of choices is the point of the
output. `table` draws a table only when every cell fits on one line at the console's width
(a pipe counts as 80 columns); otherwise it prints one block per row with each value whole on
its own line, which the terminal wraps and grep finds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from states.labels import DECISION_ZH, TASK_ZH, state_zh

if TYPE_CHECKING:  # only named: a command that prints neither needn't load pydantic
    from models.input_errors import FieldError
    from states.rules import Assessment

console = Console()
err_console = Console(stderr=True)

Cell = str | Text


def _text(cell: Cell) -> Text:
    return cell if isinstance(cell, Text) else Text(cell)  # data, never rich markup


def table(
    title: str,
    headers: Sequence[str],
    rows: Sequence[Sequence[Cell]],
    *,
    out: Console | None = None,
    lead: int = 1,
) -> None:
    """Rows as a table if it fits the width, else as blocks; `lead` columns head each block."""
    out = out or console
    grid = Table(title=title)
    for header in headers:
        grid.add_column(header, overflow="fold")
    for row in rows:
        grid.add_row(*(_text(c) for c in row))
    wide = out.options.update(max_width=10**6)
    if Measurement.get(out, wide, grid).maximum <= out.width:
        out.print(grid)
        return
    out.print(Text(title, style="bold"), soft_wrap=True)
    for row in rows:
        cells = [_text(c) for c in row]
        heading = Text(" ").join(
            Text.assemble(_label(h), c) for h, c in zip(headers[:lead], cells[:lead], strict=True)
        )
        out.print(Text.assemble("• ", heading), soft_wrap=True)
        for h, c in zip(headers[lead:], cells[lead:], strict=True):
            if c.plain:
                out.print(Text.assemble(f"    {h}: ", c), soft_wrap=True)


def _label(header: str) -> str:
    return "" if not header else "#" if header == "#" else f"{header}: "


def field_errors(errors: list[FieldError]) -> None:
    table(
        "申请书有误，未作任何记录（input rejected, nothing written）",
        ("字段 field", "规则 rule", "说明"),
        [(e.field, e.rule, e.message_zh) for e in errors],
        out=err_console,
    )


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
    rows: list[list[Cell]] = []
    for c in a.checks:
        mark = Text("✓", style="green") if c.passed else Text("✗", style="red")
        if c.manual_review:
            mark.append("!", style="yellow")
        rows.append([mark, c.code, c.reason_zh, c.clause])
    table("检查 checks", ("", "检查 check", "理由 reason", "依据 clause"), rows, lead=2)
    for comp in a.components:
        line(f"  {comp.label_zh}: {comp.ceiling} 元 = {comp.formula_zh}")
    for k, v in a.effect.items():
        line(f"  {k}: {v}")
    for r in a.routes:
        contacts = "、".join(f"{p} {t}" for p, t in r.contacts)
        line(f"  {TASK_ZH.get(r.kind, r.kind)}: {r.unit}" + (f"（{contacts}）" if contacts else ""))
    if a.manual_review_reasons:
        line("转人工复核: " + "；".join(a.manual_review_reasons), style="yellow")


def line(text: str, *, style: str = "", out: Console | None = None) -> None:
    """One line of data, whole (the terminal wraps it) and never read as rich markup."""
    (out or console).print(Text(text, style=style), soft_wrap=True)


def events(rows: list[Any]) -> None:
    lines: list[list[Cell]] = []
    for ev in rows:
        detail = {k: v for k, v in ev.payload.items() if v not in (None, [], {})}
        lines.append(
            [
                str(ev.seq),
                ev.at.strftime("%Y-%m-%d %H:%M"),
                ev.trigger,
                state_zh(ev.from_state or ""),
                state_zh(ev.to_state),
                ev.actor,
                ", ".join(f"{k}={v}" for k, v in detail.items()),
            ]
        )
    table(
        "办理记录 history",
        ("#", "时间 at", "操作 trigger", "从 from", "到 to", "操作人 actor", "说明"),
        lines,
    )
