"""Rebuild and follow sessions of 100k and 1M tasks with `armonik_graph`: build time, event rate, memory.

    python benchmarks/graph.py [--tasks 100000 1000000] [--endpoint HOST:PORT --session ID]

Synthetic mode (the default) feeds the library the API's own messages, generated in this process in the
shapes the gRPC stubs return: pages of 1,000 `TaskDetailed` and `ResultRaw` serialised to bytes and parsed
back (as a channel would), then `EventSubscriptionResponse`s that run every task to completion. The session
has the shapes of real ones: each task has a payload and an output; a task depends on the outputs of two
earlier tasks (a tree of levels); one task in ten is a subtask that took its parent's output over
(delegation); one in a hundred is a retry of a failed attempt. Each size runs in a child process of its own,
so that its peak resident memory (`ru_maxrss`) is the library's plus one page, not an earlier run's.

With `--endpoint`, the rebuild runs against a real cluster instead: of `--session`, or of a session of
`--submit` tasks (default 100,000) it submits first.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from armonik.protogen.common.events_common_pb2 import EventSubscriptionResponse as Event  # noqa: E402
from armonik.protogen.common.result_status_pb2 import ResultStatus  # noqa: E402
from armonik.protogen.common.results_common_pb2 import ListResultsResponse, ResultRaw  # noqa: E402
from armonik.protogen.common.task_status_pb2 import TaskStatus  # noqa: E402
from armonik.protogen.common.tasks_common_pb2 import ListTasksDetailedResponse, TaskDetailed  # noqa: E402

from armonik_graph import SessionGraph, blocking, summary  # noqa: E402

PAGE = 1000


class Ids:
    """The i-th UUID of a family, made on demand."""

    def __init__(self, family: int, n: int) -> None:
        self.base, self.n = family << 100, n

    def __getitem__(self, i: int) -> str:
        return str(uuid.UUID(int=self.base + i))


class Synthetic:
    """Ids and relations of a synthetic session of `n` tasks (deterministic)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.session = str(uuid.UUID(int=n))
        # ids are made when needed, so that the generator holds no copy of them beside the graph's
        self.task_ids = Ids(1, n)
        self.outputs = Ids(2, n)
        self.payloads = Ids(3, n)

    def deps(self, i: int) -> list[str]:
        return [self.outputs[j] for j in {(i - 1) // 2, (i - 2) // 2} if 0 <= j < i and i % 10 != 0]

    def parent(self, i: int) -> int | None:
        return i - 1 if i % 10 == 0 and i > 0 else None

    def task_pages(self) -> Iterator[bytes]:
        for start in range(0, self.n, PAGE):
            tasks = []
            for i in range(start, min(start + PAGE, self.n)):
                parent = self.parent(i)
                outputs = [self.outputs[i]] + ([self.outputs[parent]] if parent is not None else [])
                task = TaskDetailed(
                    id=self.task_ids[i],
                    session_id=self.session,
                    status=TaskStatus.TASK_STATUS_PENDING if i % 3 else TaskStatus.TASK_STATUS_SUBMITTED,
                    payload_id=self.payloads[i],
                    expected_output_ids=outputs,
                    data_dependencies=self.deps(i),
                    parent_task_ids=[self.session] + ([self.task_ids[parent]] if parent is not None else []),
                    retry_of_ids=[self.task_ids[i - 1]] if i % 100 == 99 else [],
                )
                task.created_at.FromSeconds(1_700_000_000 + i // 100)
                tasks.append(task)
            yield ListTasksDetailedResponse(tasks=tasks, total=self.n).SerializeToString()

    def owner(self, i: int) -> int:
        """Who owns task i's output: the subtask that took it over, if any."""
        return i + 1 if i + 1 < self.n and self.parent(i + 1) == i else i

    def result_pages(self) -> Iterator[bytes]:
        total = 2 * self.n
        for start in range(0, total, PAGE):
            results = []
            for k in range(start, min(start + PAGE, total)):
                uploaded = k < self.n  # payloads first, then outputs
                results.append(
                    ResultRaw(
                        result_id=self.payloads[k] if uploaded else self.outputs[k - self.n],
                        session_id=self.session,
                        owner_task_id=self.session if uploaded else self.task_ids[self.owner(k - self.n)],
                        status=ResultStatus.RESULT_STATUS_COMPLETED
                        if uploaded
                        else ResultStatus.RESULT_STATUS_CREATED,
                    )
                )
            yield ListResultsResponse(results=results, total=total).SerializeToString()

    def events(self) -> Iterator[Event]:
        """Every task processed then completed, its output completed."""
        for i in range(self.n):
            tid = self.task_ids[i]
            for status in (TaskStatus.TASK_STATUS_PROCESSING, TaskStatus.TASK_STATUS_COMPLETED):
                yield Event(
                    session_id=self.session,
                    task_status_update=Event.TaskStatusUpdate(task_id=tid, status=status),
                )
            yield Event(
                session_id=self.session,
                result_status_update=Event.ResultStatusUpdate(
                    result_id=self.outputs[i], status=ResultStatus.RESULT_STATUS_COMPLETED
                ),
            )


def rss_mib() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize() / 2**20


def run_synthetic(n: int) -> dict[str, Any]:
    source = Synthetic(n)
    graph = SessionGraph(source.session)
    base = rss_mib()
    build = 0.0
    for blob in source.task_pages():
        started = time.perf_counter()
        graph.add_task_records(ListTasksDetailedResponse.FromString(blob).tasks)
        build += time.perf_counter() - started
    for blob in source.result_pages():
        started = time.perf_counter()
        graph.add_result_records(ListResultsResponse.FromString(blob).results)
        build += time.perf_counter() - started
    built_rss = rss_mib()
    built_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    view = summary(graph)
    summary_s = time.perf_counter() - started
    started = time.perf_counter()
    report = blocking(graph, source.outputs[n - 1])
    blocking_s = time.perf_counter() - started
    count, follow = 0, 0.0
    for event in source.events():
        started = time.perf_counter()
        graph.apply_event(event)
        follow += time.perf_counter() - started
        count += 1
    assert view.tasks == n and len(report.blocking_tasks) > 0
    return {
        "tasks": n,
        "nodes": len(graph),
        "edges": graph.graph.num_edges(),
        "build_seconds": round(build, 2),
        "graph_mib": round(built_rss - base, 1),
        "rss_after_events_mib": round(rss_mib() - base, 1),
        "summary_seconds": round(summary_s, 2),
        "depth": view.depth,
        "blocking_seconds": round(blocking_s, 3),
        "blocking_tasks": len(report.blocking_tasks),
        "events": count,
        "events_per_second": round(count / follow),
        "peak_rss_after_build_mib": round(built_peak, 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def submit_session(channel: Any, n: int, batch: int = 1000) -> str:
    """A session of `n` tasks, each with an output of its own and one shared payload, no dependencies
    (with no agent running, they stay queued: the listing is what is measured)."""
    from datetime import timedelta

    from armonik.client import ArmoniKResults, ArmoniKSessions, ArmoniKTasks
    from armonik.common import TaskDefinition, TaskOptions

    options = TaskOptions(max_duration=timedelta(seconds=60), priority=1, max_retries=1)
    session = ArmoniKSessions(channel).create_session(options)
    results, tasks = ArmoniKResults(channel), ArmoniKTasks(channel)
    payload = results.create_results({"payload": b"x"}, session)["payload"].result_id
    for start in range(0, n, batch):
        names = [f"out-{i}" for i in range(start, min(start + batch, n))]
        outputs = results.create_results_metadata(names, session, batch_size=batch)
        definitions = [
            TaskDefinition(payload, expected_output_ids=[outputs[name].result_id]) for name in names
        ]
        tasks.submit_tasks(session, definitions, chunk_size=batch)
    return session


def run_cluster(endpoint: str, session: str | None, submit: int, page_size: int) -> dict[str, Any]:
    import grpc

    from armonik_graph import ApiSource, rebuild

    with grpc.insecure_channel(endpoint) as channel:
        if session is None:
            started = time.perf_counter()
            session = submit_session(channel, submit)
            print(f"submitted {submit} tasks in {time.perf_counter() - started:.1f}s", file=sys.stderr)
        started = time.perf_counter()
        graph = rebuild(ApiSource(channel, page_size), session)
        build = time.perf_counter() - started
    view = summary(graph)
    return {
        "session": session,
        "tasks": view.tasks,
        "nodes": len(graph),
        "page_size": page_size,
        "build_seconds": round(build, 2),
        "depth": view.depth,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--endpoint")
    parser.add_argument("--session", help="session to rebuild (default: submit one of --submit tasks)")
    parser.add_argument("--submit", type=int, default=100_000)
    parser.add_argument("--page-size", type=int, default=1000)
    args = parser.parse_args()
    if args.endpoint:
        print(json.dumps(run_cluster(args.endpoint, args.session, args.submit, args.page_size)))
        return
    if args.one:
        print(json.dumps(run_synthetic(args.tasks[0])))
        return
    for n in args.tasks:
        done = subprocess.run(
            [sys.executable, __file__, "--one", "--tasks", str(n)], capture_output=True, text=True, check=True
        )
        print(done.stdout.strip(), flush=True)


if __name__ == "__main__":
    main()
