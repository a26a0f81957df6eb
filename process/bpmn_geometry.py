"""The diagram's geometry: shape sizes and gaps, boxes, a container's grid and the finished
layout (BPMNDI's Bounds and waypoints, before they are written).

Shared by the layout that makes it, the router that reads it and the XML that writes it, so
it sits below all three.
"""

from __future__ import annotations

from dataclasses import dataclass

SIZES: dict[str, tuple[float, float]] = {"task": (100, 80), "gateway": (50, 50), "event": (36, 36)}
COL_GAP, ROW_GAP = 60, 76
BAND, EDGE_BAND = 104, 40  # room below a task for its SLA timers' ends, below a host's labels
PAD, PAD_TOP = 40, 40
Point = tuple[float, float]


@dataclass(frozen=True)
class Box:
    x: float
    y: float
    w: float
    h: float

    @property
    def cx(self) -> float:
        return self.x + self.w / 2

    @property
    def cy(self) -> float:
        return self.y + self.h / 2

    @property
    def right(self) -> float:
        return self.x + self.w

    @property
    def bottom(self) -> float:
        return self.y + self.h


def shape_of(kind: str) -> str:
    if kind.endswith("Gateway"):
        return "gateway"
    if kind.endswith("Event"):
        return "event"
    return "task"


@dataclass
class Grid:
    """One container's columns (layers) and rows, relative to the container's content."""

    col: dict[str, int]
    row: dict[str, int]
    xs: list[float]
    widths: list[float]
    ys: list[float]
    heights: list[float]
    axis: list[float]  # each row's centre line (shapes sit on it; SLA ends hang below)
    dx: float = 0
    dy: float = 0

    def gap_after_col(self, c: int) -> float:
        return self.dx + self.xs[c] + self.widths[c] + COL_GAP / 2

    def gap_below_row(self, r: int) -> float:
        return self.dy + self.ys[r] + self.heights[r] + ROW_GAP / 2


@dataclass
class Layout:
    boxes: dict[str, Box]
    edges: dict[str, list[Point]]
    labels: dict[str, Box]
