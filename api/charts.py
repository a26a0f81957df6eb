"""图表 — the dashboard's charts as SVG, rendered on the server by pygal.

No JavaScript and nothing from elsewhere: the pages show each chart as an <img> served by
relief itself, so the Content-Security-Policy stays as strict as for every other page. pygal
writes a small configuration <script> into every SVG for its optional tooltips; it is removed
here (an <img> would not run it anyway). Labels are Chinese, from states/labels.py.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import date
from decimal import Decimal

import pygal
from pygal.style import Style

from reports.dashboard import TypeStates, UnitTasks

# the states of a type grouped for the bar chart (the table beside it lists every state)
STATE_GROUPS: tuple[tuple[str, frozenset[str]], ...] = (
    ("受理中", frozenset({"draft", "submitted", "correction_requested", "resubmitted"})),
    ("审核中", frozenset({"accepted", "under_review", "more_info_requested",
                          "awaiting_confirmation", "confirmed"})),
    ("已准予（待拨付或生效）", frozenset({"approved", "partially_approved", "payout_ordered",
                                    "extended_pending_lift"})),
    ("已拨付或已生效、办结", frozenset({"paid", "effect_applied", "closed"})),
    ("不予、不予受理", frozenset({"rejected", "not_accepted"})),
    ("撤回、终止", frozenset({"withdrawn", "expired"})),
)  # fmt: skip
STYLE = Style(
    font_family='"WenQuanYi Micro Hei", "Noto Sans CJK SC", "Microsoft YaHei", sans-serif',
    background="white",
    plot_background="white",
    colors=("#8b1a1a", "#d08c3c", "#1b6e20", "#4a6fa5", "#777777", "#b3a27a", "#5b3c88"),
    title_font_size=15,
    legend_font_size=12,
    label_font_size=11,
    major_label_font_size=11,
)
# one colour per state group, in STATE_GROUPS order: waiting, working, granted, done, refused,
# withdrawn
STATE_STYLE = Style(
    **{k: getattr(STYLE, k) for k in ("font_family", "background", "plot_background",
                                       "title_font_size", "legend_font_size", "label_font_size",
                                       "major_label_font_size")},
    colors=("#9aa7b8", "#d08c3c", "#7fb77e", "#1b6e20", "#b00020", "#777777"),
)  # fmt: skip
CJK_PX = 12  # a Chinese character's width at the label size: pygal measures Latin letters
_SCRIPT = re.compile(rb"<script\b.*?</script>", re.DOTALL)


def _render(chart: pygal.graph.graph.Graph) -> bytes:
    return _SCRIPT.sub(b"", chart.render())


def _chart(kind: type, title: str, *, height: int = 360, **config: object) -> pygal.Graph:
    config.setdefault("style", STYLE)
    return kind(
        js=[], width=900, height=height, title=title, legend_at_bottom=True,
        legend_at_bottom_columns=3, print_values=False, no_data_text="暂无数据",
        truncate_label=-1, truncate_legend=-1, **config,
    )  # fmt: skip


def whole_numbers(top: int) -> list[int]:
    """Axis marks for counts: whole numbers only, at most about ten of them."""
    step = max(1, -(-top // 10))
    return list(range(0, max(top, 1) + step, step))


def cases_chart(types: Sequence[TypeStates]) -> bytes:
    """Cases of each type by state group (types with no case are left out of the bars)."""
    shown = [t for t in types if t.total]
    widest = max((len(t.label_zh) + 3 for t in shown), default=4)
    chart = _chart(
        pygal.HorizontalStackedBar, "各措施案件状态", height=140 + 30 * max(len(shown), 1),
        style=STATE_STYLE, margin_left=CJK_PX * widest // 2,
        y_labels=whole_numbers(max((t.total for t in shown), default=0)),
    )  # fmt: skip
    chart.x_labels = [f"第{t.measure}项 {t.label_zh}" if t.measure else t.label_zh for t in shown]
    for name, states in STATE_GROUPS:
        values = [sum(n for s, n in t.by_state.items() if s in states) or None for t in shown]
        chart.add(name, values)
    return _render(chart)


def money_chart(
    title: str, labels: Sequence[str], series: Mapping[str, Sequence[Decimal]]
) -> bytes:
    """Money granted / ordered / paid (元) over measures or months, one bar group each."""
    chart = _chart(pygal.Bar, title, value_formatter=lambda v: f"{v:,.2f}")
    chart.x_labels = list(labels)
    for name, values in series.items():
        chart.add(name, [float(v) if v else None for v in values])  # drawn only; sums stay Decimal
    return _render(chart)


def tasks_chart(
    title: str, days: Sequence[date], units: Sequence[UnitTasks], *, overdue: bool
) -> bytes:
    """Open (or overdue) tasks per bureau section at the end of each day."""
    top = max((max(u.overdue_by_day if overdue else u.open_by_day) for u in units), default=0)
    chart = _chart(pygal.Line, title, show_minor_x_labels=False, x_label_rotation=0,
                   dots_size=2, y_labels=whole_numbers(top))  # fmt: skip
    chart.x_labels = [f"{d.month}月{d.day}日" for d in days]
    chart.x_labels_major = [f"{d.month}月{d.day}日" for d in days[::7]]
    for u in units:
        chart.add(
            u.unit or f"{u.bureau}.{u.section}", u.overdue_by_day if overdue else u.open_by_day
        )
    return _render(chart)
