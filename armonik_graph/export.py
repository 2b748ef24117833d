"""A session's graph (or the subgraph behind a result) as JSON, GraphML, DOT or an SVG picture.

The writers stream to a text file, one node or edge at a time, so that exporting a million-task graph needs no
second copy of it in memory (rustworkx's own writers want a dict of attributes per node first).

The picture is drawn here, by level (tasks of one level in a row, each result just below the task that makes
it), rather than by graphviz: a layered layout is what a task graph needs, it takes linear time where `dot`
takes minutes past ten thousand nodes, and it needs no system package on the machine running the CLI or a
console. Beyond `max_nodes` the picture collapses the graph to one box per level and status.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from typing import TextIO
from xml.sax.saxutils import escape, quoteattr

from armonik_graph.analysis import levels_of
from armonik_graph.model import Kind, SessionGraph

COLORS = {
    "COMPLETED": "#4caf50",
    "ERROR": "#e53935",
    "TIMEOUT": "#e53935",
    "ABORTED": "#e53935",
    "CANCELLED": "#9e9e9e",
    "CANCELLING": "#9e9e9e",
    "RETRIED": "#ff9800",
    "PROCESSING": "#2196f3",
    "DISPATCHED": "#64b5f6",
    "PROCESSED": "#2196f3",
    "SUBMITTED": "#ffeb3b",
    "PAUSED": "#ce93d8",
    "PENDING": "#e0e0e0",
    "CREATING": "#e0e0e0",
    "CREATED": "#ffffff",
}
FORMATS = ("json", "graphml", "dot", "svg")


def _selected(graph: SessionGraph, nodes: Iterable[int] | None) -> list[int]:
    return list(range(len(graph))) if nodes is None else sorted(nodes)


def _edges(graph: SessionGraph, nodes: list[int]) -> Iterable[tuple[int, int, str]]:
    keep = None if len(nodes) == len(graph) else set(nodes)
    for a, b, stored in graph.graph.weighted_edge_list():
        if keep is None or (a in keep and b in keep):
            yield a, b, graph.edge_kind(a, b, stored).name


def _kind(graph: SessionGraph, node: int) -> str:
    return "task" if graph.kind[node] == Kind.TASK else "result"


def write_json(graph: SessionGraph, out: TextIO, nodes: Iterable[int] | None = None) -> None:
    """Node-link JSON: {"session_id", "nodes": [{id, kind, status}], "edges": [{source, target, kind}]}."""
    chosen = _selected(graph, nodes)
    ids = graph.ids
    out.write(f'{{"session_id": {json.dumps(graph.session_id)}, "nodes": [')
    for i, node in enumerate(chosen):
        item = {"id": ids[node], "kind": _kind(graph, node), "status": graph.status_name(node)}
        if node in graph.errors:
            item["error"] = graph.errors[node]
        out.write((", " if i else "") + json.dumps(item))
    out.write('], "edges": [')
    for i, (a, b, kind) in enumerate(_edges(graph, chosen)):
        out.write((", " if i else "") + json.dumps({"source": ids[a], "target": ids[b], "kind": kind}))
    out.write("]}\n")


def write_graphml(graph: SessionGraph, out: TextIO, nodes: Iterable[int] | None = None) -> None:
    chosen = _selected(graph, nodes)
    ids = graph.ids
    out.write(
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<graphml xmlns="http://graphml.graphdrawing.org/xmlns">\n'
        '  <key id="kind" for="node" attr.name="kind" attr.type="string"/>\n'
        '  <key id="status" for="node" attr.name="status" attr.type="string"/>\n'
        '  <key id="edge" for="edge" attr.name="kind" attr.type="string"/>\n'
        f'  <graph id={quoteattr(graph.session_id)} edgedefault="directed">\n'
    )
    for node in chosen:
        out.write(
            f'    <node id={quoteattr(ids[node])}><data key="kind">{_kind(graph, node)}</data>'
            f'<data key="status">{graph.status_name(node)}</data></node>\n'
        )
    for a, b, kind in _edges(graph, chosen):
        out.write(
            f'    <edge source={quoteattr(ids[a])} target={quoteattr(ids[b])}><data key="edge">{kind}</data></edge>\n'
        )
    out.write("  </graph>\n</graphml>\n")


def write_dot(graph: SessionGraph, out: TextIO, nodes: Iterable[int] | None = None) -> None:
    chosen = _selected(graph, nodes)
    ids = graph.ids
    out.write(f"digraph {json.dumps(graph.session_id)} {{\n  rankdir=TB;\n")
    for node in chosen:
        shape = "box" if graph.kind[node] == Kind.TASK else "ellipse"
        status = graph.status_name(node)
        color = COLORS.get(status, "#ffffff")
        out.write(
            f'  {json.dumps(ids[node])} [shape={shape}, style=filled, fillcolor="{color}", '
            f'tooltip="{status}"];\n'
        )
    for a, b, kind in _edges(graph, chosen):
        style = ", style=dashed" if kind in ("SUBTASK", "RETRY", "DELEGATED") else ""
        out.write(f'  {json.dumps(ids[a])} -> {json.dumps(ids[b])} [label="{kind.lower()}"{style}];\n')
    out.write("}\n")


# -- picture --------------------------------------------------------------------------------------------------
BOX_W, BOX_H, GAP_X, ROW_H = 150, 26, 14, 90


def _layout(graph: SessionGraph, chosen: list[int]) -> dict[int, tuple[float, float]]:
    """Tasks in rows by level; a result under the task that owns it, or in the top row when uploaded."""
    levels = levels_of(graph)
    rows: dict[int, list[int]] = {}
    for node in chosen:
        if graph.kind[node] == Kind.TASK:
            rows.setdefault(levels[node], []).append(node)
    place: dict[int, tuple[float, float]] = {}
    for lvl, row in rows.items():
        for i, node in enumerate(row):
            place[node] = (GAP_X + i * (BOX_W + GAP_X), 60 + (2 * lvl + 1) * ROW_H)
    uploaded = 0
    for node in chosen:
        if graph.kind[node] == Kind.TASK:
            continue
        owner = graph.owner[node]
        if owner in place:
            x, y = place[owner]
            place[node] = (x + 8, y + ROW_H)
        else:
            place[node] = (GAP_X + uploaded * (BOX_W + GAP_X), 20)
            uploaded += 1
    return place


def _label(text: str) -> str:
    return escape(text if len(text) <= 20 else text[:8] + "…" + text[-10:])


def write_svg(
    graph: SessionGraph, out: TextIO, nodes: Iterable[int] | None = None, max_nodes: int = 2000
) -> None:
    chosen = _selected(graph, nodes)
    if len(chosen) > max_nodes:
        _write_collapsed_svg(graph, out)
        return
    place = _layout(graph, chosen)
    width = max((x for x, _ in place.values()), default=0) + BOX_W + GAP_X
    height = max((y for _, y in place.values()), default=0) + BOX_H + 20
    out.write(
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'font-family="sans-serif" font-size="11">\n'
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" markerHeight="6" '
        'orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>\n'
    )
    for a, b, kind in _edges(graph, chosen):
        (x1, y1), (x2, y2) = place[a], place[b]
        dash = ' stroke-dasharray="4 3"' if kind in ("SUBTASK", "RETRY", "DELEGATED") else ""
        out.write(
            f'<line class="edge {kind.lower()}" x1="{x1 + BOX_W / 2:.0f}" y1="{y1 + BOX_H:.0f}" '
            f'x2="{x2 + BOX_W / 2:.0f}" y2="{y2:.0f}" stroke="#555"{dash} marker-end="url(#arrow)"/>\n'
        )
    for node in chosen:
        x, y = place[node]
        status = graph.status_name(node)
        kind = _kind(graph, node)
        radius = 3 if kind == "task" else 12
        out.write(
            f'<g class="node {kind}" data-id={quoteattr(graph.ids[node])} data-status="{status}">'
            f"<title>{escape(graph.ids[node])} {status}</title>"
            f'<rect x="{x:.0f}" y="{y:.0f}" width="{BOX_W}" height="{BOX_H}" rx="{radius}" '
            f'fill="{COLORS.get(status, "#fff")}" stroke="#333"/>'
            f'<text x="{x + 6:.0f}" y="{y + 17:.0f}">{_label(graph.ids[node])}</text></g>\n'
        )
    out.write("</svg>\n")


def _write_collapsed_svg(graph: SessionGraph, out: TextIO) -> None:
    """One row per level, one box per status with its count, for graphs too large to draw node by node."""
    counts: dict[int, Counter[str]] = {}
    levels = levels_of(graph)
    for node in graph.tasks():
        counts.setdefault(levels[node], Counter())[graph.status_name(node)] += 1
    width = GAP_X + max((len(c) for c in counts.values()), default=1) * (BOX_W + GAP_X)
    out.write(
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{len(counts) * 50 + 20}" '
        'font-family="sans-serif" font-size="12">\n'
    )
    for row, lvl in enumerate(sorted(counts)):
        y = 10 + row * 50
        out.write(f'<text x="2" y="{y + 22}">{lvl}</text>\n')
        for i, (status, count) in enumerate(sorted(counts[lvl].items())):
            x = GAP_X + 10 + i * (BOX_W + GAP_X)
            out.write(
                f'<g class="level" data-level="{lvl}" data-status="{status}" data-count="{count}">'
                f'<rect x="{x}" y="{y}" width="{BOX_W}" height="34" rx="4" fill="{COLORS.get(status, "#fff")}" '
                f'stroke="#333"/><text x="{x + 6}" y="{y + 22}">{status}: {count}</text></g>\n'
            )
    out.write("</svg>\n")


WRITERS = {"json": write_json, "graphml": write_graphml, "dot": write_dot, "svg": write_svg}


def export(graph: SessionGraph, fmt: str, out: TextIO, nodes: Iterable[int] | None = None) -> None:
    if fmt not in WRITERS:
        raise ValueError(f"unknown format {fmt!r}: choose one of {', '.join(FORMATS)}")
    WRITERS[fmt](graph, out, nodes)
