"""Views of a graph for people: the session's frontier (what runs or may run now) and rich tables.

`Frontier` is serialisable like the other reports, so the watch view of the CLI and a web console show the same.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from rich.table import Table

from armonik_graph.analysis import FAILED, PAUSED, QUEUED, RUNNING, Summary
from armonik_graph.model import Kind, SessionGraph


@dataclass
class Frontier:
    """Tasks running now, queued (runnable, waiting for an agent), and how many still wait for inputs."""

    running: list[str] = field(default_factory=list)
    queued: list[str] = field(default_factory=list)
    waiting: int = 0
    paused: int = 0
    failed: int = 0
    shown: int = 20

    @property
    def done(self) -> bool:
        return not (self.running or self.queued or self.waiting or self.paused)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "done": self.done}

    def table(self) -> Table:
        table = Table(
            "running",
            "queued",
            title=f"frontier: {len(self.running)} running, {len(self.queued)} "
            f"queued, {self.waiting} waiting for inputs, {self.paused} paused, {self.failed} failed",
        )
        rows = max(min(len(self.running), self.shown), min(len(self.queued), self.shown))
        for i in range(rows):
            table.add_row(
                self.running[i] if i < len(self.running) else "",
                self.queued[i] if i < len(self.queued) else "",
            )
        return table


def frontier(graph: SessionGraph) -> Frontier:
    view = Frontier()
    status, kind = graph.status, graph.kind
    for node in range(len(graph)):
        if kind[node] != Kind.TASK:
            continue
        s = status[node]
        if s in RUNNING:
            view.running.append(graph.ids[node])
        elif s in QUEUED:
            view.queued.append(graph.ids[node])
        elif s in PAUSED:
            view.paused += 1
        elif s in FAILED:
            view.failed += 1
        elif graph.status_name(node) in ("PENDING", "CREATING"):
            view.waiting += 1
    return view


def status_table(view: Summary) -> Table:
    table = Table("", "count", title=f"session {view.session_id}: {view.tasks} tasks, {view.results} results")
    for name, count in sorted(view.task_statuses.items()):
        table.add_row(f"tasks {name}", str(count))
    for name, count in sorted(view.result_statuses.items()):
        table.add_row(f"results {name}", str(count))
    return table


def level_table(view: Summary) -> Table:
    names = sorted({name for level in view.levels for name in level["statuses"]})
    table = Table("level", "width", "done", *names, title=f"{view.depth} levels")
    for level in view.levels:
        statuses = level["statuses"]
        done = statuses.get("COMPLETED", 0)
        table.add_row(
            str(level["level"]),
            str(level["width"]),
            f"{100 * done / level['width']:.0f}%",
            *(str(statuses.get(n, "")) for n in names),
        )
    return table
