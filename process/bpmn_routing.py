"""Edge routing and label placement for BPMNDI, once the shapes are placed: orthogonal
waypoints (a direct line where it crosses no shape, else through the empty channels between
columns and rows), and where each name's label goes.

Apart from the layering because it reads only the placed boxes and grids, never how they were
chosen.
"""

from __future__ import annotations

import itertools

from process.bpmn_geometry import COL_GAP, Box, Grid, Point, shape_of
from process.bpmn_graph import Flow, Graph


def label_boxes(
    g: Graph, boxes: dict[str, Box], edges: dict[str, list[Point]], sat: dict[str, str]
) -> dict[str, Box]:
    labels: dict[str, Box] = {}
    timers = set(sat.values())
    for n in g.nodes.values():
        b = boxes[n.id]
        if shape_of(n.kind) == "task" or not n.name:
            continue
        if n.id in timers:  # beside the line down to its end: reminder left, escalation right
            first = n.id.endswith("reminder")
            labels[n.id] = Box(b.x - 84 if first else b.right + 4, b.bottom + 2, 80, 34)
        elif n.id in sat:
            labels[n.id] = Box(b.cx - 28, b.bottom + 4, 56, 16)
        else:
            w = min(150, max(60, 13 * len(n.name)))
            lines = -(-13 * len(n.name) // w)
            labels[n.id] = Box(b.cx - w / 2, b.bottom + 4, w, 16 * lines)
    for f in g.flows:
        if not f.name:
            continue
        pts = edges[f.id]
        segs = list(itertools.pairwise(pts))
        flat = [(a, c) for a, c in segs if abs(a[1] - c[1]) < 1 and abs(a[0] - c[0]) >= 30]
        (x1, y1), (x2, _) = (flat or segs)[0]
        labels[f.id] = Box(min(x1, x2) + 4, y1 - 20, 96, 16)
    return labels


class Router:
    """Orthogonal waypoints. A direct line (straight, L or Z) when it crosses no shape;
    otherwise through the empty channels: the gaps between columns and below rows."""

    def __init__(
        self, g: Graph, boxes: dict[str, Box], where: dict[str, Grid], sat: dict[str, str]
    ) -> None:
        self.g, self.boxes, self.where, self.sat = g, boxes, where, sat
        self.lanes: dict[tuple[int, float], int] = {}

    def route(self, f: Flow) -> list[Point]:
        g, s, t = self.g, self.boxes[f.source], self.boxes[f.target]
        src = g.nodes[f.source]
        if f.target in self.sat:
            return [(s.cx, s.bottom), (t.cx, t.y)]
        anchor = src.attached_to or f.source
        grid = self.where[anchor]
        cs, ct = grid.col[anchor], grid.col[f.target]
        rs, rt = grid.row[anchor], grid.row[f.target]
        gate_s = shape_of(src.kind) == "gateway"
        gate_t = shape_of(g.nodes[f.target].kind) == "gateway"
        tries: list[list[Point]] = []
        if src.kind == "boundaryEvent":
            tries.append([(s.cx, s.bottom), (s.cx, t.cy), (t.x, t.cy)])
        elif ct > cs:
            if abs(s.cy - t.cy) < 1:
                tries.append([(s.right, s.cy), (t.x, t.cy)])
            if gate_s:
                tries.append([(s.cx, s.bottom if t.cy > s.cy else s.y), (s.cx, t.cy), (t.x, t.cy)])
            if gate_t:
                tries.append(
                    [(s.right, s.cy), (t.cx, s.cy), (t.cx, t.bottom if s.cy > t.cy else t.y)]
                )
            mid = grid.gap_after_col(ct - 1)
            tries.append([(s.right, s.cy), (mid, s.cy), (mid, t.cy), (t.x, t.cy)])
        else:
            lane = self.lane(grid, max(rs, rt))
            tries.append([(s.cx, s.bottom), (s.cx, lane), (t.cx, lane), (t.cx, t.bottom)])
        for pts in tries:
            if not self.crosses(pts, f):
                return pts
        lane = self.lane(grid, max(rs, rt))
        into = grid.gap_after_col(ct - 1) if ct > 0 else t.x - COL_GAP / 2
        if src.kind == "boundaryEvent" or ct <= cs:
            start = [(s.cx, s.bottom), (s.cx, lane)]
        else:
            out = grid.gap_after_col(cs)
            start = [(s.right, s.cy), (out, s.cy), (out, lane)]
        return [*start, (into, lane), (into, t.cy), (t.x, t.cy)]

    def lane(self, grid: Grid, r: int) -> float:
        key = (r, grid.dy)
        k = self.lanes[key] = self.lanes.get(key, -1) + 1
        return grid.gap_below_row(r) + 8 * (k % 5) - 8

    def crosses(self, pts: list[Point], f: Flow) -> bool:
        g = self.g
        src = g.nodes[f.source]
        parent = src.parent
        skip = {f.source, f.target, src.attached_to}
        for (x1, y1), (x2, y2) in itertools.pairwise(pts):
            lo_x, hi_x, lo_y, hi_y = min(x1, x2), max(x1, x2), min(y1, y2), max(y1, y2)
            for i, b in self.boxes.items():
                n = g.nodes[i]
                if i in skip or n.attached_to == f.source or n.parent != parent:
                    continue
                if lo_x < b.right and hi_x > b.x and lo_y < b.bottom and hi_y > b.y:
                    return True
        return False
