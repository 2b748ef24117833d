"""After a run: the critical path by the tasks' timestamps, where the time went (waiting, queue, running), and
the activity over time (tasks started and ended per bucket, their latency).

A task is released by whatever came last among the tasks it waited for: the producers of its inputs (when
they ended) and its parent (when it submitted the task). Walking back from the task that ended last, always
to the predecessor that released it, gives the chain that set the session's makespan. Each step splits into
waiting (until submitted, counted from when the step before it ended, or from its creation for the first),
queue (submitted -> started) and running (started -> ended).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from armonik_graph.model import CREATED, ENDED, NONE, STARTED, SUBMITTED, Edge, Kind, SessionGraph


@dataclass
class Step:
    task_id: str
    status: str
    created: float
    submitted: float
    started: float
    ended: float
    waiting_seconds: float
    queue_seconds: float
    running_seconds: float


@dataclass
class CriticalPath:
    session_id: str
    steps: list[Step] = field(default_factory=list)
    span_seconds: float = 0.0
    #: along the path
    waiting_seconds: float = 0.0
    queue_seconds: float = 0.0
    running_seconds: float = 0.0
    #: over every finished task of the session
    total_queue_seconds: float = 0.0
    total_running_seconds: float = 0.0
    finished_tasks: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _gap(start: float, end: float) -> float:
    return max(end - start, 0.0) if start and end else 0.0


def _step(graph: SessionGraph, node: int) -> Step:
    created, submitted, started, ended = (graph.times[c][node] for c in (CREATED, SUBMITTED, STARTED, ENDED))
    return Step(
        task_id=graph.ids[node],
        status=graph.status_name(node),
        created=created,
        submitted=submitted,
        started=started,
        ended=ended,
        waiting_seconds=_gap(created, submitted),
        queue_seconds=_gap(submitted, started),
        running_seconds=_gap(started, ended),
    )


def _releaser(graph: SessionGraph, task: int) -> int:
    """The predecessor that released `task` last (NONE for a task that waited for no other task)."""
    best, best_time = NONE, -1.0
    g, ended = graph.graph, graph.times[ENDED]
    for source, _, edge in g.in_edges(task):
        if edge == Edge.INPUT:
            producer = graph.producer(source)
            if producer != NONE and ended[producer] > best_time:
                best, best_time = producer, ended[producer]
        elif edge == Edge.SUBTASK or edge == Edge.RETRY:
            # the parent submitted it (or the failed attempt handed over) when the task was created
            if graph.times[CREATED][task] > best_time:
                best, best_time = source, graph.times[CREATED][task]
    return best


def critical_path(graph: SessionGraph, end_result: str | None = None) -> CriticalPath:
    """The chain of tasks that set the session's makespan (or the time `end_result` became ready)."""
    ended = graph.times[ENDED]
    report = CriticalPath(graph.session_id)
    last, last_end = NONE, 0.0
    for node in range(len(graph)):
        if graph.kind[node] != Kind.TASK or not ended[node]:
            continue
        step = _step(graph, node)
        report.total_queue_seconds += step.queue_seconds
        report.total_running_seconds += step.running_seconds
        report.finished_tasks += 1
        if ended[node] >= last_end:  # on a tie, the task created later (events stamped together)
            last, last_end = node, ended[node]
    if end_result is not None:
        result = graph.index(end_result)
        if result is None:
            raise KeyError(f"result {end_result} is not in the graph of session {graph.session_id}")
        last = graph.producer(result)
    path: list[int] = []
    seen: set[int] = set()
    while last != NONE and last not in seen:
        seen.add(last)
        path.append(last)
        last = _releaser(graph, last)
    report.steps = [_step(graph, n) for n in reversed(path)]
    for before, step in zip(report.steps, report.steps[1:], strict=False):
        # on the path, a task waits from when its releaser ended (it may have been created long before)
        step.waiting_seconds = _gap(max(step.created, before.ended), step.submitted)
    if report.steps:
        first, final = report.steps[0], report.steps[-1]
        report.span_seconds = _gap(first.created, final.ended)
        report.waiting_seconds = sum(s.waiting_seconds for s in report.steps)
        report.queue_seconds = sum(s.queue_seconds for s in report.steps)
        report.running_seconds = sum(s.running_seconds for s in report.steps)
    return report


@dataclass
class Throughput:
    """Tasks ended and started per time bucket over a session's life, and their latency (created -> ended)."""

    session_id: str
    start: float = 0.0
    bucket_seconds: float = 1.0
    ended: list[int] = field(default_factory=list)
    started: list[int] = field(default_factory=list)
    #: mean created -> ended of the tasks ended in each bucket (0 when none)
    mean_latency_seconds: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def throughput(graph: SessionGraph, buckets: int = 60) -> Throughput:
    """Activity over time in at most `buckets` buckets, from the tasks' timestamps."""
    created, started, ended = graph.times[CREATED], graph.times[STARTED], graph.times[ENDED]
    tasks = [n for n in range(len(graph)) if graph.kind[n] == Kind.TASK and created[n]]
    report = Throughput(graph.session_id)
    if not tasks:
        return report
    first = min(created[n] for n in tasks)
    last = max(max(ended[n], started[n], created[n]) for n in tasks)
    width = max((last - first) / buckets, 1e-3)
    count = min(buckets, int((last - first) / width) + 1)
    report.start, report.bucket_seconds = first, width
    report.ended, report.started = [0] * count, [0] * count
    latency = [0.0] * count
    for node in tasks:
        if started[node]:
            report.started[min(int((started[node] - first) / width), count - 1)] += 1
        if ended[node]:
            slot = min(int((ended[node] - first) / width), count - 1)
            report.ended[slot] += 1
            latency[slot] += ended[node] - created[node]
    report.mean_latency_seconds = [
        latency[i] / report.ended[i] if report.ended[i] else 0.0 for i in range(count)
    ]
    return report
