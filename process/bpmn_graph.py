"""The process model the export passes along: nodes, sequence flows, messages and errors,
each node and flow carrying the table rows it stands for.

The builder writes it; the layout and the XML only read it. It lives apart so that they can
all import it without importing one another.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from states.labels import NOTICE_ZH, STATE_ZH, TRIGGER_ZH
from states.lifecycle import Row


@dataclass
class Node:
    id: str
    kind: str  # the BPMN element's local name
    name: str
    parent: str | None  # the subprocess it sits in
    doc: str = ""
    rows: tuple[Row, ...] = ()  # the table rows it stands for (relief:row)
    event: tuple[str, str] | None = None  # (message | timer | error, its ref or duration)
    attached_to: str | None = None
    interrupting: bool = True
    script: str | None = None
    service: tuple[str, str, dict[str, str]] | None = None  # operation, result, parameters


@dataclass
class Flow:
    id: str
    source: str
    target: str
    name: str = ""
    condition: str | None = None
    rows: tuple[Row, ...] = ()


@dataclass(frozen=True)
class Way:
    """A flow still to be drawn, into a node not made yet."""

    source: str
    name: str = ""
    condition: str | None = None
    rows: tuple[Row, ...] = ()


@dataclass
class Graph:
    process_id: str
    nodes: dict[str, Node] = field(default_factory=dict)
    flows: list[Flow] = field(default_factory=list)
    messages: dict[str, str] = field(default_factory=dict)  # id -> name
    errors: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> (name, code)

    def flow(self, source: str, target: str, name: str = "", when: str | None = None,
             rows: tuple[Row, ...] = ()) -> None:  # fmt: skip
        fid, n = f"Flow_{source}_{target}", 2
        while any(f.id == fid for f in self.flows):
            fid, n = f"Flow_{source}_{target}_{n}", n + 1
        self.flows.append(Flow(fid, source, target, name, when, rows))

    def way(self, w: Way, target: str) -> None:
        self.flow(w.source, target, w.name, w.condition, w.rows)

    def message(self, key: str, name: str) -> tuple[str, str]:
        self.messages[f"Message_{key}"] = name
        return ("message", f"Message_{key}")

    def error(self, key: str, name: str) -> tuple[str, str]:
        self.errors[f"Error_{key}"] = (name, key)
        return ("error", f"Error_{key}")


def _guard(c: Any) -> str:
    """A guard's name and the Chinese of its docstring (before any English gloss)."""
    zh = (c.__doc__ or "").split("\n")[0].split(" (")[0].rstrip(".").strip()
    return f"{c.__name__}（{zh}）"


def row_doc(rows: Iterable[Row]) -> str:
    lines = []
    for r in rows:
        src = "、".join(STATE_ZH[s.value] for s in r.sources())
        line = f"{TRIGGER_ZH.get(r.trigger, r.trigger)}（{r.trigger}）：{src} → {STATE_ZH[r.dest]}"
        if r.conditions:
            line += "；守卫：" + "、".join(_guard(c) for c in r.conditions)
        if r.effects.notices:
            line += "；通知书：" + "、".join(NOTICE_ZH[k] for k in r.effects.notices)
        lines.append(line)
    return "\n".join(lines)
