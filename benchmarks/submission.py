"""Task submission throughput of the control plane, measured with the official `armonik` Python client.

One session; one shared payload (`create_results`); N output results (`create_results_metadata`, batched);
then N tasks through `ArmoniKTasks.submit_tasks` in batches, from several client threads, each with its own
channel, so that several calls are in flight. No compute plane is attached: every task stays SUBMITTED,
and the count is checked at the end with `count_tasks_by_status`.

    python benchmarks/submission.py                      # starts its own control plane, 100,000 tasks
    python benchmarks/submission.py --tasks 20000 --clients 8 --batch-size 500
    python benchmarks/submission.py --endpoint 127.0.0.1:5001 --server-pid 12345
    python benchmarks/submission.py --profile-out cp.prof   # control plane under cProfile

The last line of standard output is a JSON object with the figures of the table.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
from _cluster import (
    ControlPlaneHandle,
    cpu_seconds,
    own_cpu_seconds,
    peak_rss_bytes,
    start_control_plane_process,
)
from armonik.client import ArmoniKResults, ArmoniKSessions, ArmoniKTasks
from armonik.common import Task, TaskDefinition, TaskOptions, TaskStatus
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

MAX_MESSAGE = 64 * 1024 * 1024
CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE),
    ("grpc.max_send_message_length", MAX_MESSAGE),
]


@dataclass
class Figures:
    tasks: int
    batch_size: int
    clients: int
    output_seconds: float
    submit_seconds: float
    total_seconds: float
    submit_tasks_per_second: float
    total_tasks_per_second: float
    control_plane_peak_rss_mib: float | None
    #: CPU seconds (all threads) spent during each phase by the control plane and by this client process.
    output_server_cpu_seconds: float | None
    submit_server_cpu_seconds: float | None
    output_client_cpu_seconds: float
    submit_client_cpu_seconds: float
    submitted_count: int
    all_submitted: bool
    endpoint: str


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tasks", type=int, default=100_000, help="number of tasks to submit (default 100000)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=1000, help="tasks (and outputs) per RPC (default 1000)"
    )
    parser.add_argument("--clients", type=int, default=4, help="client threads, one channel each (default 4)")
    parser.add_argument(
        "--payload-size", type=int, default=64, help="bytes of the shared payload (default 64)"
    )
    parser.add_argument(
        "--endpoint", help="target a running control plane (host:port) instead of starting one"
    )
    parser.add_argument(
        "--server-pid", type=int, help="with --endpoint: the control plane's pid, to report its peak memory"
    )
    parser.add_argument(
        "--data-dir", type=Path, help="data directory of the started control plane (default: temp)"
    )
    parser.add_argument("--port", type=int, help="port of the started control plane (default: a free one)")
    parser.add_argument(
        "--profile-out", type=Path, help="run the started control plane under cProfile, to FILE"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (for logs and CI)")
    args = parser.parse_args(argv)
    if args.tasks <= 0 or args.batch_size <= 0 or args.clients <= 0:
        parser.error("--tasks, --batch-size and --clients must be positive")
    if args.endpoint and (args.profile_out or args.data_dir or args.port):
        parser.error("--profile-out, --data-dir and --port apply only to a control plane this script starts")
    return args


def shards(count: int, parts: int) -> list[range]:
    """`range(count)` cut into `parts` contiguous, nearly equal pieces (empty pieces dropped)."""
    size, extra = divmod(count, parts)
    pieces, start = [], 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        if end > start:
            pieces.append(range(start, end))
        start = end
    return pieces


@dataclass
class Phase:
    seconds: float
    server_cpu: float | None
    client_cpu: float


def in_parallel(
    clients: int, work: Callable[[int, range], None], count: int, server_pid: int | None
) -> Phase:
    """Run `work(client_index, shard)` on `clients` threads; return wall-clock and CPU seconds."""
    pieces = shards(count, clients)
    server_before = cpu_seconds(server_pid) if server_pid else None
    client_before = own_cpu_seconds()
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=len(pieces)) as pool:
        for future in [pool.submit(work, i, piece) for i, piece in enumerate(pieces)]:
            future.result()
    seconds = time.perf_counter() - started
    server_after = cpu_seconds(server_pid) if server_pid else None
    server_cpu = (
        round(server_after - server_before, 2)
        if server_before is not None and server_after is not None
        else None
    )
    return Phase(seconds, server_cpu, round(own_cpu_seconds() - client_before, 2))


def run(args: argparse.Namespace, endpoint: str, server_pid: int | None, console: Console) -> Figures:
    channels = [grpc.insecure_channel(endpoint, options=CHANNEL_OPTIONS) for _ in range(args.clients)]
    try:
        sessions = ArmoniKSessions(channels[0])
        options = TaskOptions(
            max_duration=timedelta(minutes=5), priority=1, max_retries=1, partition_id="default"
        )
        session_id = sessions.create_session(options, partition_ids=["default"])
        payload_id = (
            ArmoniKResults(channels[0])
            .create_results({"payload": b"x" * args.payload_size}, session_id)["payload"]
            .result_id
        )
        outputs: list[str] = [""] * args.tasks
        lock = threading.Lock()

        progress = Progress(
            TextColumn("{task.description:<18}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:>10}"),
            TimeElapsedColumn(),
            console=console,
            disable=args.no_progress,
        )

        def phase(label: str, work: Callable[[int, range], None]) -> Phase:
            """`work(client, batch)` over every batch of the tasks, the clients in parallel, under a bar."""
            bar = progress.add_task(label, total=args.tasks, rate="")
            started = time.perf_counter()

            def shard_work(client: int, shard: range) -> None:
                for begin in range(shard.start, shard.stop, args.batch_size):
                    batch = range(begin, min(begin + args.batch_size, shard.stop))
                    work(client, batch)
                    with lock:
                        progress.advance(bar, len(batch))
                        completed = progress.tasks[bar].completed
                    rate = completed / max(time.perf_counter() - started, 1e-9)
                    progress.update(bar, rate=f"{rate:,.0f}/s")

            return in_parallel(args.clients, shard_work, args.tasks, server_pid)

        results = [ArmoniKResults(channel) for channel in channels]
        tasks = [ArmoniKTasks(channel) for channel in channels]

        def create_outputs(client: int, batch: range) -> None:
            names = [f"out-{i}" for i in batch]
            created = results[client].create_results_metadata(names, session_id, batch_size=args.batch_size)
            for i, name in zip(batch, names, strict=True):
                outputs[i] = created[name].result_id

        def submit(client: int, batch: range) -> None:
            definitions = [
                TaskDefinition(payload_id=payload_id, expected_output_ids=[outputs[i]]) for i in batch
            ]
            submitted = tasks[client].submit_tasks(session_id, definitions, chunk_size=args.batch_size)
            if len(submitted) != len(definitions):
                raise RuntimeError(f"{len(submitted)} tasks accepted out of {len(definitions)}")

        with progress:
            output_phase = phase("creating outputs", create_outputs)
            submit_phase = phase("submitting tasks", submit)

        counts = ArmoniKTasks(channels[0]).count_tasks_by_status(Task.session_id == session_id)
    finally:
        for channel in channels:
            channel.close()

    peak = peak_rss_bytes(server_pid) if server_pid else None
    submitted_count = counts.get(TaskStatus.SUBMITTED, 0)
    output_seconds, submit_seconds = output_phase.seconds, submit_phase.seconds
    total_seconds = output_seconds + submit_seconds
    return Figures(
        tasks=args.tasks,
        batch_size=args.batch_size,
        clients=args.clients,
        output_seconds=round(output_seconds, 3),
        submit_seconds=round(submit_seconds, 3),
        total_seconds=round(total_seconds, 3),
        submit_tasks_per_second=round(args.tasks / submit_seconds, 1),
        total_tasks_per_second=round(args.tasks / total_seconds, 1),
        control_plane_peak_rss_mib=round(peak / 2**20, 1) if peak is not None else None,
        output_server_cpu_seconds=output_phase.server_cpu,
        submit_server_cpu_seconds=submit_phase.server_cpu,
        output_client_cpu_seconds=output_phase.client_cpu,
        submit_client_cpu_seconds=submit_phase.client_cpu,
        submitted_count=submitted_count,
        all_submitted=submitted_count == args.tasks and sum(counts.values()) == args.tasks,
        endpoint=endpoint,
    )


def report(figures: Figures, console: Console) -> None:
    table = Table(
        title=f"Task submission: {figures.tasks:,} tasks, batches of {figures.batch_size}, "
        f"{figures.clients} clients"
    )
    table.add_column("phase")
    table.add_column("tasks", justify="right")
    table.add_column("seconds", justify="right")
    table.add_column("tasks/s", justify="right")
    table.add_column("server CPU s", justify="right")
    table.add_column("client CPU s", justify="right")

    def cpu(value: float | None) -> str:
        return "?" if value is None else f"{value:.2f}"

    def add(name: str, seconds: float, server: float | None, client: float | None) -> None:
        table.add_row(
            name,
            f"{figures.tasks:,}",
            f"{seconds:.2f}",
            f"{figures.tasks / seconds:,.0f}",
            cpu(server),
            cpu(client),
        )

    add(
        "output creation",
        figures.output_seconds,
        figures.output_server_cpu_seconds,
        figures.output_client_cpu_seconds,
    )
    add(
        "submission alone",
        figures.submit_seconds,
        figures.submit_server_cpu_seconds,
        figures.submit_client_cpu_seconds,
    )
    both = (
        None
        if figures.output_server_cpu_seconds is None or figures.submit_server_cpu_seconds is None
        else figures.output_server_cpu_seconds + figures.submit_server_cpu_seconds
    )
    add(
        "outputs + submission",
        figures.total_seconds,
        both,
        figures.output_client_cpu_seconds + figures.submit_client_cpu_seconds,
    )
    console.print(table)
    peak = figures.control_plane_peak_rss_mib
    console.print(f"control plane peak RSS (VmHWM): {f'{peak:,.1f} MiB' if peak is not None else 'unknown'}")
    if figures.all_submitted:
        console.print(
            f"[green]check: all {figures.tasks:,} tasks are SUBMITTED (count_tasks_by_status)[/green]"
        )
    else:
        console.print(
            f"[red]check FAILED: {figures.submitted_count:,} SUBMITTED out of {figures.tasks:,}[/red]"
        )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console()
    handle: ControlPlaneHandle | None = None
    scratch: tempfile.TemporaryDirectory[str] | None = None
    try:
        if args.endpoint:
            endpoint, server_pid = args.endpoint, args.server_pid
        else:
            data_dir = args.data_dir
            if data_dir is None:
                scratch = tempfile.TemporaryDirectory(prefix="armonik-bench-")
                data_dir = Path(scratch.name) / "data"
            handle = start_control_plane_process(data_dir, args.port, profile_to=args.profile_out)
            endpoint, server_pid = handle.endpoint, handle.pid
            console.print(f"control plane pid {handle.pid} on {endpoint}, data in {data_dir}")
        figures = run(args, endpoint, server_pid, console)
    finally:
        if handle is not None:
            handle.stop()
            if args.profile_out:
                console.print(f"control plane profile written to {args.profile_out}")
        if scratch is not None:
            scratch.cleanup()
    report(figures, console)
    payload: dict[str, Any] = asdict(figures)
    print(json.dumps(payload), flush=True)
    return 0 if figures.all_submitted else 1


if __name__ == "__main__":
    sys.exit(main())
