"""Reading a large session page by page, as `armonik-analytics` and the official SDK's users do.

1. start a control plane (embedded storage, a temporary data directory), unless `--endpoint` names one;
2. fill one session with `--tasks` tasks (one shared payload, one output each), submitted with the official
   `armonik` client in batches of 1,000, or use the session `--session` of that endpoint;
3. read every task of the session with `ArmoniKTasks.list_tasks` (filter `session_id == ...`, sorted by id,
   `--page-size` per page), page after page until an empty one, as `armonik-analytics` does;
4. then the same with `armonik-analytics` itself (`ArmoniKStatistics` with its throughput metric).

Prints the time of the first, median and last pages, the whole read, and the control plane's CPU during it;
the last line of standard output is the same figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
from armonik.client import ArmoniKResults, ArmoniKSessions, ArmoniKTasks
from armonik.common import Task, TaskDefinition, TaskOptions
from armonik_analytics import ArmoniKStatistics
from armonik_analytics.metrics import AvgThroughput
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _cluster import count_progress, cpu_seconds, start_control_plane_process  # noqa: E402

console = Console(stderr=True)


def fill(channel: grpc.Channel, tasks: int, show: bool) -> str:
    sessions, results, task_client = ArmoniKSessions(channel), ArmoniKResults(channel), ArmoniKTasks(channel)
    options = TaskOptions(
        max_duration=timedelta(seconds=60), max_retries=1, priority=1, partition_id="default"
    )
    session = sessions.create_session(options, partition_ids=["default"])
    payload = results.create_results({"payload": b""}, session)["payload"].result_id
    with count_progress(console, show) as progress:
        bar = progress.add_task("submitting", total=tasks)
        for start in range(0, tasks, 1000):
            names = [f"out-{i}" for i in range(start, min(start + 1000, tasks))]
            outputs = results.create_results_metadata(names, session, batch_size=1000)
            definitions = [TaskDefinition(payload, [r.result_id]) for r in outputs.values()]
            task_client.submit_tasks(session, definitions, chunk_size=1000)
            progress.update(bar, advance=len(names))
    return session


def read_pages(channel: grpc.Channel, session: str, page_size: int) -> tuple[int, list[float]]:
    """Every task of the session, page after page; returns how many and each page's seconds."""
    tasks = ArmoniKTasks(channel)
    seconds: list[float] = []
    seen = page = 0
    while True:
        started = time.perf_counter()
        _, found = tasks.list_tasks(Task.session_id == session, page=page, page_size=page_size)
        seconds.append(time.perf_counter() - started)
        if not found:
            return seen, seconds
        seen += len(found)
        page += 1


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument("--endpoint", help="a running control plane instead of one started here")
    parser.add_argument("--server-pid", type=int, help="with --endpoint: the process whose CPU to report")
    parser.add_argument(
        "--session", help="with --endpoint: an existing session to read instead of filling one"
    )
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args()

    handle = None
    endpoint, pid = args.endpoint, args.server_pid
    if endpoint is None:
        handle = start_control_plane_process(Path(tempfile.mkdtemp(prefix="listing-")))
        endpoint, pid = handle.endpoint, handle.pid
    try:
        with grpc.insecure_channel(endpoint) as channel:
            session = args.session or fill(channel, args.tasks, not args.no_progress)
            cpu_before = cpu_seconds(pid) if pid else None
            started = time.perf_counter()
            seen, pages = read_pages(channel, session, args.page_size)
            read_seconds = time.perf_counter() - started
            cpu_read = (cpu_seconds(pid) or 0.0) - cpu_before if cpu_before is not None else None
            started = time.perf_counter()
            stats = ArmoniKStatistics(channel, Task.session_id == session, [AvgThroughput()])
            stats.compute()
            analytics_seconds = time.perf_counter() - started
    finally:
        if handle is not None:
            handle.stop()

    figures: dict[str, Any] = {
        "tasks": seen,
        "page_size": args.page_size,
        "pages": len(pages),
        "first_page_ms": round(1000 * pages[0], 2),
        "median_page_ms": round(1000 * statistics.median(pages), 2),
        "last_full_page_ms": round(1000 * pages[-2], 2) if len(pages) > 1 else None,
        "read_seconds": round(read_seconds, 3),
        "control_plane_cpu_seconds": None if cpu_read is None else round(cpu_read, 3),
        "analytics_seconds": round(analytics_seconds, 3),
    }
    table = Table(title=f"Reading a session of {seen:,} tasks, {args.page_size} per page")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key, value in figures.items():
        table.add_row(key.replace("_", " "), "-" if value is None else f"{value:,}")
    Console().print(table)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
