"""Deterministic layered layout for BPMNDI, in pure Python: columns by longest path, rows by a
depth-first walk, each subprocess laid out first and placed as one shape of the process around
it, boundary events on their host's border.

Its own module because a modeller opens the export laid out only if the coordinates are
there, and the same table must give the same bytes every run (no layout engine, no randomness).
The edges and labels are bpmn_routing's.
"""

from __future__ import annotations

from process.bpmn_geometry import (
    BAND,
    COL_GAP,
    EDGE_BAND,
    PAD,
    PAD_TOP,
    ROW_GAP,
    SIZES,
    Box,
    Grid,
    Layout,
    shape_of,
)
from process.bpmn_graph import Graph
from process.bpmn_routing import Router, label_boxes


def _satellites(g: Graph) -> dict[str, str]:
    """End events hanging from a non-interrupting timer (SLA): drawn under their task."""
    into: dict[str, int] = {}
    for f in g.flows:
        into[f.target] = into.get(f.target, 0) + 1
    return {
        f.target: f.source
        for f in g.flows
        if g.nodes[f.source].kind == "boundaryEvent"
        and not g.nodes[f.source].interrupting
        and g.nodes[f.target].kind == "endEvent"
        and into[f.target] == 1
    }


def _grid(
    g: Graph, parent: str | None, sizes: dict[str, tuple[float, float]], hangs: set[str]
) -> Grid:
    """Columns by longest path (loops broken by a DFS), rows by a DFS that keeps the first
    way out of a node on its row and puts the others below, never two shapes in one cell."""
    sat = _satellites(g)
    ids = [
        n.id
        for n in g.nodes.values()
        if n.parent == parent and n.kind != "boundaryEvent" and n.id not in sat
    ]
    host = {n.id: n.attached_to for n in g.nodes.values() if n.attached_to}
    out: dict[str, list[str]] = {i: [] for i in ids}
    later: dict[str, list[str]] = {i: [] for i in ids}  # ways out through boundary events
    for f in g.flows:
        src = host.get(f.source, f.source)
        if src in out and f.target in out:
            (later if f.source in host else out)[src].append(f.target)
    for i in ids:
        out[i] += later[i]
    back: set[tuple[str, str]] = set()
    seen: dict[str, int] = {}

    def dfs(v: str) -> None:
        seen[v] = 1
        for w in out[v]:
            if seen.get(w) == 1:
                back.add((v, w))
            elif w not in seen:
                dfs(w)
        seen[v] = 2

    fed = {w for v in ids for w in out[v]}
    for v in [i for i in ids if i not in fed] + ids:
        if v not in seen:
            dfs(v)
    col = {i: 0 for i in ids}
    for v in _topo(ids, out, back):
        for w in out[v]:
            if (v, w) not in back:
                col[w] = max(col[w], col[v] + 1)
    row: dict[str, int] = {}
    taken: set[tuple[int, int]] = set()

    def reach(w: str) -> set[int]:
        """The columns a branch will take, up to where it meets placed shapes."""
        cols, todo, met = set(), [w], set()
        while todo:
            u = todo.pop()
            if u in met or u in row:
                continue
            met.add(u)
            cols.add(col[u])
            todo += [x for x in out[u] if (u, x) not in back]
        return cols

    def place(v: str, want: int) -> None:
        r = want
        while (col[v], r) in taken:
            r += 1
        taken.add((col[v], r))
        row[v] = r
        for k, w in enumerate(out[v]):
            if w in row or (v, w) in back:
                continue
            if k == 0:
                place(w, r)
                continue
            # a side branch goes below whatever already sits in the columns it will take
            cols = reach(w)
            below = [row[u] for u in row if col[u] in cols and row[u] >= r]
            place(w, max([r + 1, *(b + 1 for b in below)]))

    for v in [i for i in ids if i not in fed] + ids:
        if v not in row:
            place(v, max(row.values(), default=-1) + 1)
    ncols, nrows = max(col.values()) + 1, max(row.values()) + 1
    widths = [max([sizes[i][0] for i in ids if col[i] == c] or [36]) for c in range(ncols)]
    tall = [max([sizes[i][1] for i in ids if row[i] == r] or [36]) for r in range(nrows)]
    hosts = {h for h in host.values()}

    def band(r: int) -> float:
        here = [i for i in ids if row[i] == r]
        if any(i in hangs for i in here):
            return BAND
        return EDGE_BAND if any(i in hosts for i in here) else 0

    heights = [tall[r] + band(r) for r in range(nrows)]
    xs = [sum(widths[:c]) + COL_GAP * c for c in range(ncols)]
    ys = [sum(heights[:r]) + ROW_GAP * r for r in range(nrows)]
    axis = [ys[r] + tall[r] / 2 for r in range(nrows)]
    return Grid(col, row, xs, widths, ys, heights, axis)


def _topo(ids: list[str], out: dict[str, list[str]], back: set[tuple[str, str]]) -> list[str]:
    indeg = {i: 0 for i in ids}
    for v in ids:
        for w in out[v]:
            if (v, w) not in back:
                indeg[w] += 1
    ready = [i for i in ids if indeg[i] == 0]
    order: list[str] = []
    while ready:
        v = ready.pop(0)
        order.append(v)
        for w in out[v]:
            if (v, w) not in back:
                indeg[w] -= 1
                if indeg[w] == 0:
                    ready.append(w)
    return order


def layout(g: Graph) -> Layout:
    """Deterministic coordinates: the subprocess laid out first, then the process around it;
    boundary events on their host's lower border, an SLA timer's end right under it."""
    sat = _satellites(g)
    hangs = {g.nodes[b].attached_to or "" for b in sat.values()}
    sizes = {i: SIZES[shape_of(n.kind)] for i, n in g.nodes.items()}
    grids: dict[str | None, Grid] = {}
    subs = [n.id for n in g.nodes.values() if n.kind == "subProcess"]
    for s in subs:
        grid = grids[s] = _grid(g, s, sizes, hangs)
        sizes[s] = (
            grid.xs[-1] + grid.widths[-1] + 2 * PAD,
            grid.ys[-1] + grid.heights[-1] + PAD_TOP + PAD,
        )
    top = grids[None] = _grid(g, None, sizes, hangs)
    top.dx, top.dy = 40, 40
    boxes: dict[str, Box] = {}

    def put(grid: Grid, i: str) -> None:
        w, h = sizes[i]
        c, r = grid.col[i], grid.row[i]
        x = grid.dx + grid.xs[c] + (grid.widths[c] - w) / 2
        boxes[i] = Box(x, grid.dy + grid.axis[r] - h / 2, w, h)

    for i in top.col:
        put(top, i)
    for s in subs:
        grids[s].dx, grids[s].dy = boxes[s].x + PAD, boxes[s].y + PAD_TOP
        for i in grids[s].col:
            put(grids[s], i)
    for hid in list(boxes):
        attached = [n.id for n in g.nodes.values() if n.attached_to == hid]
        hb = boxes[hid]
        for k, bid in enumerate(attached):
            if hid in hangs:
                cx = hb.x + 20 + (hb.w - 40) * k / max(len(attached) - 1, 1)
            else:
                cx = hb.x + hb.w * (k + 1) / (len(attached) + 1)
            boxes[bid] = Box(cx - 18, hb.bottom - 18, 36, 36)
            for end, b in sat.items():
                if b == bid:
                    boxes[end] = Box(cx - 18, hb.bottom + 40, 36, 36)
    where = {i: grids[n.parent] for i, n in g.nodes.items()}
    router = Router(g, boxes, where, sat)
    edges = {f.id: router.route(f) for f in g.flows}
    return Layout(boxes, edges, label_boxes(g, boxes, edges, sat))
