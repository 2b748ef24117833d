"""What a session's graph says: levels, what blocks a result, and the critical path after a run.

Every answer is a plain dataclass with `to_dict()` (ids and numbers only), so that a CLI prints it, a web
console serves it as JSON, and a test compares it, from the same code.
"""

from __future__ import annotations

import time
from array import array
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import rustworkx as rx
from armonik.protogen.common.result_status_pb2 import ResultStatus
from armonik.protogen.common.task_status_pb2 import TaskStatus

from armonik_graph.model import (
    CREATED,
    ENDED,
    NONE,
    RESULT_STATUS_NAMES,
    STARTED,
    SUBMITTED,
    TASK_STATUS_NAMES,
    Edge,
    Kind,
    SessionGraph,
)

TS = TaskStatus
RUNNING = frozenset({TS.TASK_STATUS_DISPATCHED, TS.TASK_STATUS_PROCESSING, TS.TASK_STATUS_PROCESSED})
QUEUED = frozenset({TS.TASK_STATUS_SUBMITTED})
WAITING = frozenset({TS.TASK_STATUS_CREATING, TS.TASK_STATUS_PENDING, TS.TASK_STATUS_UNSPECIFIED})
PAUSED = frozenset({TS.TASK_STATUS_PAUSED})
FAILED = frozenset(
    {TS.TASK_STATUS_ERROR, TS.TASK_STATUS_TIMEOUT, TS.TASK_STATUS_CANCELLED, TS.TASK_STATUS_CANCELLING}
)
#: Which timestamp says since when a task is in its status.
SINCE = {
    TS.TASK_STATUS_CREATING: CREATED,
    TS.TASK_STATUS_PENDING: CREATED,
    TS.TASK_STATUS_SUBMITTED: SUBMITTED,
    TS.TASK_STATUS_PAUSED: SUBMITTED,
    TS.TASK_STATUS_DISPATCHED: STARTED,
    TS.TASK_STATUS_PROCESSING: STARTED,
    TS.TASK_STATUS_PROCESSED: STARTED,
}


# -- levels ---------------------------------------------------------------------------------------------------
def levels_of(graph: SessionGraph) -> array[int]:
    """Level of every node, in one flat array (a million-task graph's levels cost 12 MB, not a dict's 300).

    A task is at level 0 when it needs nothing another task makes; else one more than the tasks it waits
    for (producers of its inputs, its parent); a retry keeps the level of the attempt it replaces. A result
    is at the level of the tasks that make it (-1 when uploaded by the client).
    """
    g = graph.graph
    try:
        order: Iterable[int] = rx.topological_sort(g)
    except rx.DAGHasCycle:  # not produced by the API; fall back on insertion order
        order = range(len(graph))
    level = array("i", [-1]) * len(graph)
    kind = graph.kind
    for node in order:
        best = -1
        if kind[node] == Kind.TASK:
            for source, _, edge in g.in_edges(node):
                if edge == Edge.INPUT or edge == Edge.SUBTASK:
                    best = max(best, level[source] + 1)
                elif edge == Edge.RETRY:
                    best = max(best, level[source])
            level[node] = max(best, 0)
        else:
            for source, _, edge in g.in_edges(node):
                if edge == Edge.OUTPUT:
                    best = max(best, level[source])
            level[node] = best
    return level


def task_levels(graph: SessionGraph) -> dict[int, int]:
    """Level of each task node (see `levels_of`), for small graphs and tests."""
    levels = levels_of(graph)
    return {n: levels[n] for n in range(len(graph)) if graph.kind[n] == Kind.TASK}


@dataclass
class Summary:
    """Counts of a session's graph: per status, and per level (width and statuses)."""

    session_id: str
    tasks: int
    results: int
    task_statuses: dict[str, int]
    result_statuses: dict[str, int]
    depth: int
    levels: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def summary(graph: SessionGraph, levels: array[int] | None = None) -> Summary:
    levels = levels_of(graph) if levels is None else levels
    per_level: dict[int, Counter[int]] = {}
    tasks: Counter[int] = Counter()
    results: Counter[int] = Counter()
    kind, status = graph.kind, graph.status
    for node in range(len(graph)):
        if kind[node] == Kind.TASK:
            per_level.setdefault(levels[node], Counter())[status[node]] += 1
            tasks[status[node]] += 1
        else:
            results[status[node]] += 1
    return Summary(
        session_id=graph.session_id,
        tasks=sum(tasks.values()),
        results=sum(results.values()),
        task_statuses=_named(tasks, TASK_STATUS_NAMES),
        result_statuses=_named(results, RESULT_STATUS_NAMES),
        depth=max(per_level) + 1 if per_level else 0,
        levels=[
            {"level": lvl, "width": sum(c.values()), "statuses": _named(c, TASK_STATUS_NAMES)}
            for lvl, c in sorted(per_level.items())
        ],
    )


def _named(counts: Counter[int], names: dict[int, str]) -> dict[str, int]:
    return {names.get(s, str(s)): n for s, n in counts.items()}


# -- what blocks a result -------------------------------------------------------------------------------------
@dataclass
class TaskState:
    task_id: str
    status: str
    #: seconds spent in this status so far (None when the graph does not know since when)
    for_seconds: float | None = None
    #: inputs not there yet (waiting tasks)
    missing_inputs: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass
class BlockingReport:
    """Why a result is not ready: everything unfinished it transitively needs, classified."""

    result_id: str
    status: str
    ready: bool
    producer: str | None
    #: runnable now: taken by an agent, or queued for one
    running: list[TaskState] = field(default_factory=list)
    queued: list[TaskState] = field(default_factory=list)
    #: waiting for inputs (or paused with their session)
    waiting: list[TaskState] = field(default_factory=list)
    paused: list[TaskState] = field(default_factory=list)
    #: results no task will make: the client has to upload them
    awaiting_upload: list[str] = field(default_factory=list)
    #: tasks running or queued for longer than the threshold (a waiting task waits for something upstream)
    stuck: list[TaskState] = field(default_factory=list)
    #: failed tasks (and aborted results) on the way: the result will never be ready unless they are retried
    doomed_by: list[TaskState] = field(default_factory=list)
    #: failed tasks taken down by a failure upstream (the cause is in `doomed_by`)
    cascaded: list[TaskState] = field(default_factory=list)
    unfinished_results: list[str] = field(default_factory=list)
    estimate: dict[str, float | int | None] = field(default_factory=dict)

    @property
    def blocking_tasks(self) -> list[str]:
        return [t.task_id for t in self.running + self.queued + self.waiting + self.paused]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "blocking_tasks": self.blocking_tasks}


def _state(graph: SessionGraph, node: int, now: float) -> TaskState:
    status = graph.status[node]
    column = SINCE.get(status)  # type: ignore[call-overload]
    since = graph.times[column][node] if column is not None else 0.0
    return TaskState(graph.ids[node], graph.status_name(node), now - since if since else None)


def blocking(
    graph: SessionGraph, result_id: str, stuck_after: float = 60.0, now: float | None = None
) -> BlockingReport:
    """What `result_id` waits for (see `BlockingReport`); raises KeyError for a result the graph lacks."""
    root = graph.index(result_id)
    if root is None or graph.kind[root] != Kind.RESULT:
        raise KeyError(f"result {result_id} is not in the graph of session {graph.session_id}")
    now = time.time() if now is None else now
    producer = graph.producer(root)
    report = BlockingReport(
        result_id=result_id,
        status=graph.status_name(root),
        ready=graph.status[root] == ResultStatus.RESULT_STATUS_COMPLETED,
        producer=graph.ids[producer] if producer != NONE else None,
    )
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        if graph.kind[node] == Kind.RESULT:
            _visit_result(graph, node, report, stack)
        else:
            _visit_task(graph, node, report, stack, now)
    report.stuck = [
        t for t in report.running + report.queued if t.for_seconds is not None and t.for_seconds > stuck_after
    ]
    report.estimate = remaining_work(graph, len(report.blocking_tasks))
    return report


def _visit_result(graph: SessionGraph, node: int, report: BlockingReport, stack: list[int]) -> None:
    status = graph.status[node]
    if status == ResultStatus.RESULT_STATUS_COMPLETED:
        return
    report.unfinished_results.append(graph.ids[node])
    producer = graph.producer(node)
    if producer == NONE:
        if status == ResultStatus.RESULT_STATUS_ABORTED:
            report.doomed_by.append(TaskState(graph.ids[node], graph.status_name(node)))
        else:
            report.awaiting_upload.append(graph.ids[node])
        return
    stack.append(producer)


def _visit_task(graph: SessionGraph, node: int, report: BlockingReport, stack: list[int], now: float) -> None:
    status = graph.status[node]
    if status == TS.TASK_STATUS_COMPLETED:
        return
    state = _state(graph, node, now)
    inputs = graph.inputs(node)
    if status in FAILED:
        aborted = [r for r in inputs if graph.status[r] == ResultStatus.RESULT_STATUS_ABORTED]
        state.error = graph.errors.get(node)
        if aborted:  # taken down by an input that failed upstream: look for the cause there
            report.cascaded.append(state)
            stack.extend(aborted)
        else:
            report.doomed_by.append(state)
        return
    state.missing_inputs = [
        graph.ids[r] for r in inputs if graph.status[r] != ResultStatus.RESULT_STATUS_COMPLETED
    ]
    if status in RUNNING:
        report.running.append(state)
    elif status in QUEUED:
        report.queued.append(state)
    elif status in PAUSED:
        report.paused.append(state)
    else:
        report.waiting.append(state)
    stack.extend(inputs)


def remaining_work(graph: SessionGraph, unfinished: int) -> dict[str, float | int | None]:
    """Task-seconds left for `unfinished` tasks at the mean run time of the session's finished tasks, and a
    wall-clock estimate at the parallelism the session has now (tasks running at once)."""
    started, ended, status = graph.times[STARTED], graph.times[ENDED], graph.status
    total = 0.0
    count = running = 0
    for node in range(len(graph)):
        if graph.kind[node] != Kind.TASK:
            continue
        if status[node] == TS.TASK_STATUS_COMPLETED and started[node] and ended[node] >= started[node]:
            total += ended[node] - started[node]
            count += 1
        elif status[node] in RUNNING:
            running += 1
    mean = total / count if count else None
    left = mean * unfinished if mean is not None else None
    return {
        "unfinished_tasks": unfinished,
        "finished_tasks_measured": count,
        "mean_run_seconds": mean,
        "remaining_task_seconds": left,
        "running_now": running,
        "eta_seconds": left / max(running, 1) if left is not None else None,
    }


def ancestors(graph: SessionGraph, result_id: str) -> list[int]:
    """Nodes of the subgraph behind a result: the result and everything upstream of it."""
    node = graph.index(result_id)
    if node is None:
        raise KeyError(f"{result_id} is not in the graph of session {graph.session_id}")
    return sorted({node, *rx.ancestors(graph.graph, node)})
