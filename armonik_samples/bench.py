"""Bench: throughput of independent tasks, modelled on ArmoniK.Core's `Tests/Bench`.

The client creates `NTasks` tasks in batches of `BatchSize` (results metadata, payloads of `PayloadSize` KiB
created with their data, or uploaded when larger than `SwitchToStreamSize` KiB, then `SubmitTasks`), from
`DegreeOfParallelism` threads; waits for every result with events; downloads them and checks their size;
counts the session's tasks by status; closes the session. Each task sleeps `TaskDurationMs` and writes
`ResultSize` KiB of random bytes to each of its results.

Like upstream it reports the timing of each phase (`ExecutionStats`) and the session's throughput: tasks
ended COMPLETED, ERROR or RETRIED over the time from the first one's creation to the last one's end. The
last line on stdout is JSON, with `sessionThroughput` at its top level as upstream's log line has it, so
`jq -r .sessionThroughput` reads it as upstream's perf test does.

The options are upstream's, as flags or as `BenchOptions__<Name>` environment variables.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Annotated, Any

import grpc
import typer
from armonik.common import Output, TaskDefinition
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from armonik_samples import cli, common
from armonik_samples.common import Handler

SAMPLE = "bench"
ENV = "BenchOptions__"
KiB = 1024


@dataclass(frozen=True)
class BenchOptions:
    n_tasks: int = 100
    task_duration_ms: int = 100
    payload_size: int = 1
    result_size: int = 1
    switch_to_stream_size: int = 10
    batch_size: int = 100
    task_rpc_exception: str = ""
    task_error: str = ""
    partition: str = "default"
    max_retries: int = 1
    degree_of_parallelism: int = 1
    purge_data: bool = True
    download_results: bool = True
    exit_after_submission: bool = False
    pause_session_during_submission: bool = False
    max_duration: float = 3600.0
    task_priority: int = 1
    options: dict[str, str] = field(default_factory=dict)

    def task_options(self) -> dict[str, str]:
        """What the worker reads, under upstream's keys."""
        return {
            **self.options,
            "TaskDurationMs": str(self.task_duration_ms),
            "TaskError": self.task_error,
            "TaskRpcException": self.task_rpc_exception,
            "PayloadSize": str(self.payload_size),
            "ResultSize": str(self.result_size),
        }


# -- worker --------------------------------------------------------------------------------------------------
def process(handler: Handler) -> Any:
    """Worker side: check the payload size, sleep, write random results; upstream's deterministic failures."""
    options = common.task_options_of(handler)
    if "PayloadSize" not in options:
        return Output("PayloadSize should be defined in task options")
    if len(handler.payload) != int(options["PayloadSize"]) * KiB:
        return Output("Payload should have the same size as the one specified")
    time.sleep(int(options.get("TaskDurationMs", "100")) / 1000)
    if "ResultSize" not in options:
        return Output("ResultSize should be defined in task options")
    size = int(options["ResultSize"]) * KiB
    handler.send_results({result_id: os.urandom(size) for result_id in handler.expected_results})
    return common.deterministic_outcome(handler)


# -- client --------------------------------------------------------------------------------------------------
@dataclass
class ExecutionStats:
    """Upstream's `ExecutionStats`, durations in seconds."""

    ElapsedTime: float = 0.0
    SubmissionTime: float = 0.0
    TasksExecutionTime: float = 0.0
    ResultRetrievingTime: float = 0.0
    CountExecutionTime: float = 0.0
    TotalTasks: int = 0
    ErrorTasks: int = 0
    CompletedTasks: int = 0
    CancelledTasks: int = 0


def batches(n_tasks: int, batch_size: int) -> list[range]:
    return [range(start, min(start + batch_size, n_tasks)) for start in range(0, n_tasks, batch_size)]


def _submit_batch(client: common.Client, session_id: str, options: BenchOptions, batch: range) -> list[str]:
    stream = options.payload_size > options.switch_to_stream_size
    names = [f"result {i}" for i in batch]
    payload_names = [f"payload {i}" for i in batch]
    created = client.results.create_results_metadata(
        names + (payload_names if stream else []), session_id, batch_size=len(batch) * 2
    )
    result_ids = [created[name].result_id for name in names]
    size = options.payload_size * KiB
    if stream:
        payload_ids = [created[name].result_id for name in payload_names]
        for payload_id in payload_ids:
            client.results.upload_result_data(payload_id, session_id, os.urandom(size))
    else:
        payloads = client.results.create_results(
            {name: os.urandom(size) for name in payload_names}, session_id, batch_size=len(batch)
        )
        payload_ids = [payloads[name].result_id for name in payload_names]
    client.tasks.submit_tasks(
        session_id,
        [
            TaskDefinition(payload_id, expected_output_ids=[result_id])
            for payload_id, result_id in zip(payload_ids, result_ids, strict=True)
        ],
        chunk_size=len(batch),
    )
    return result_ids


def _parallel(
    options: BenchOptions, items: Sequence[Any], work: Callable[[Any], Any], label: str, total: int
) -> list[Any]:
    """Run `work` over `items` on DegreeOfParallelism threads with a progress bar counting `total` units
    (each item's `len`, or 1)."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=common.console) as progress:
        bar = progress.add_task(label, total=total)

        def run(item: Any) -> Any:
            value = work(item)
            progress.advance(bar, len(item) if isinstance(item, range) else 1)
            return value

        with ThreadPoolExecutor(max_workers=max(1, options.degree_of_parallelism)) as pool:
            return list(pool.map(run, items))


def _download(client: common.Client, session_id: str, options: BenchOptions, result_id: str) -> None:
    for attempt in range(max(1, options.max_retries)):
        try:
            data = client.download(session_id, result_id)
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.UNAVAILABLE or attempt + 1 >= max(1, options.max_retries):  # type: ignore[attr-defined]
                raise
            continue
        if len(data) != options.result_size * KiB:
            raise common.SampleFailure(
                f"result {result_id}: received {len(data)} bytes, expected {options.result_size * KiB}"
            )
        return


def run(client: common.Client, options: BenchOptions, timeout: float) -> None:
    common.console.print(f"[dim]bench options[/] {asdict(options)}")
    start = time.monotonic()
    session_options = common.session_options(
        SAMPLE,
        options.partition,
        options.task_options(),
        max_duration=timedelta(seconds=options.max_duration),
        max_retries=2,
        priority=max(options.task_priority, 1),
    )
    session_id = client.create_session(session_options, options.partition)
    if options.pause_session_during_submission:
        client.sessions.pause_session(session_id)
    session_created = time.monotonic()

    chunks = batches(options.n_tasks, max(1, options.batch_size))
    per_batch = _parallel(
        options,
        chunks,
        lambda batch: _submit_batch(client, session_id, options, batch),
        "submitting",
        options.n_tasks,
    )
    result_ids = [result_id for ids in per_batch for result_id in ids]
    tasks_created = time.monotonic()
    if options.pause_session_during_submission:
        client.sessions.resume_session(session_id)
    print(f"Tasks submitted in {tasks_created - session_created:.3f}s")
    if options.exit_after_submission:
        common.print_json({"session": session_id, "SubmissionTime": tasks_created - session_created})
        return

    common.wait_for_results(client, session_id, result_ids, timeout=timeout, label="tasks")
    results_available = time.monotonic()
    if options.download_results:
        _parallel(
            options,
            result_ids,
            lambda result_id: _download(client, session_id, options, result_id),
            "downloading",
            len(result_ids),
        )
        print(f"Results retrieved {len(result_ids)}")
    results_received = time.monotonic()
    counts = common.count_by_status(client, session_id)
    count_finished = time.monotonic()
    client.sessions.close_session(session_id)

    stats = ExecutionStats(
        ElapsedTime=results_received - start,
        SubmissionTime=tasks_created - session_created,
        TasksExecutionTime=results_available - tasks_created,
        ResultRetrievingTime=results_received - results_available,
        CountExecutionTime=count_finished - results_received,
        TotalTasks=sum(counts.values()),
        ErrorTasks=counts.get("ERROR", 0),
        CompletedTasks=counts.get("COMPLETED", 0),
        CancelledTasks=counts.get("CANCELLED", 0) + counts.get("CANCELLING", 0),
    )
    throughput = common.compute_throughput(client, session_id)
    if options.purge_data:
        client.sessions.purge_session(session_id)
    print(f"executions stats {asdict(stats)}")
    message = (
        f"Throughput for session {session_id} : {throughput.per_second:.2f} task/s "
        f"({throughput.tasks} tasks in {throughput.timespan()})"
    )
    print(message)
    common.print_json(
        {
            "@m": message,
            "session": session_id,
            "sessionThroughput": throughput.per_second,
            "nTasks": throughput.tasks,
            "timespan": throughput.seconds,
            "stats": asdict(stats),
            "benchOptions": asdict(options),
        }
    )
    common.check(
        stats.CompletedTasks >= options.n_tasks, f"{stats.CompletedTasks} of {options.n_tasks} completed"
    )
    common.ok(f"{options.n_tasks} tasks at {throughput.per_second:.1f} tasks/s")


_opt = cli.env_option(ENV)


@cli.client_command
def command(
    partition: Annotated[str, _opt("Partition", "Partition of the tasks", "--partition", "-p")] = "default",
    n_tasks: Annotated[int, _opt("NTasks", "Number of tasks", "--ntasks", min=1)] = 100,
    task_duration_ms: Annotated[
        int, _opt("TaskDurationMs", "Sleep of each task", "--task-duration-ms", min=0)
    ] = 100,
    payload_size: Annotated[int, _opt("PayloadSize", "KiB per payload", "--payload-size", min=0)] = 1,
    result_size: Annotated[int, _opt("ResultSize", "KiB per result", "--result-size", min=0)] = 1,
    switch_to_stream_size: Annotated[
        int,
        _opt("SwitchToStreamSize", "Upload payloads above this many KiB", "--switch-to-stream-size", min=0),
    ] = 10,
    batch_size: Annotated[int, _opt("BatchSize", "Tasks per submission", "--batch-size", min=1)] = 100,
    task_error: Annotated[str, _opt("TaskError", "Fail tasks whose id ends so", "--task-error")] = "",
    task_rpc_exception: Annotated[
        str, _opt("TaskRpcException", "Crash tasks whose id ends so", "--task-rpc-exception")
    ] = "",
    max_retries: Annotated[
        int, _opt("MaxRetries", "Download attempts per result", "--max-retries", min=1)
    ] = 1,
    degree_of_parallelism: Annotated[
        int,
        _opt("DegreeOfParallelism", "Threads submitting and downloading", "--degree-of-parallelism", min=1),
    ] = 1,
    purge_data: Annotated[
        bool, _opt("PurgeData", "Purge the session at the end", "--purge-data/--no-purge-data")
    ] = True,
    download_results: Annotated[
        bool,
        _opt("DownloadResults", "Download and check the results", "--download-results/--no-download-results"),
    ] = True,
    exit_after_submission: Annotated[
        bool,
        _opt(
            "ExitAfterSubmission", "Stop once submitted", "--exit-after-submission/--no-exit-after-submission"
        ),
    ] = False,
    pause_session_during_submission: Annotated[
        bool,
        _opt(
            "PauseSessionDuringSubmission",
            "Pause the session while submitting",
            "--pause-session-during-submission/--no-pause-session-during-submission",
        ),
    ] = False,
    max_duration: Annotated[
        str, _opt("MaxDuration", "Tasks' max duration (hh:mm:ss)", "--max-duration")
    ] = "01:00:00",
    task_priority: Annotated[int, _opt("TaskPriority", "Tasks' priority", "--task-priority")] = 1,
    option: Annotated[list[str] | None, typer.Option("--option", help="Extra task option key=value")] = None,
    timeout: common.TimeoutOption = 3600.0,
) -> cli.Body:
    """Submit NTasks independent tasks, wait, download, and report the session's throughput."""
    options = BenchOptions(
        n_tasks=n_tasks,
        task_duration_ms=task_duration_ms,
        payload_size=payload_size,
        result_size=result_size,
        switch_to_stream_size=switch_to_stream_size,
        batch_size=batch_size,
        task_rpc_exception=task_rpc_exception,
        task_error=task_error,
        partition=partition,
        max_retries=max_retries,
        degree_of_parallelism=degree_of_parallelism,
        purge_data=purge_data,
        download_results=download_results,
        exit_after_submission=exit_after_submission,
        pause_session_during_submission=pause_session_during_submission,
        max_duration=common.duration_option(max_duration),
        task_priority=task_priority,
        options=common.parse_key_values(option or []),
    )
    return lambda client: run(client, options, timeout)


def main() -> None:
    typer.run(command)


if __name__ == "__main__":
    main()
