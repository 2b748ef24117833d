"""HtcMock: a tree of computing tasks with aggregation tasks, modelled on ArmoniK.Core's `Tests/HtcMock`.

The client submits one root task; the tree grows as the tasks run. Its shape: `NTasks` computing tasks over
`SubTasksLevels` levels below the root (level 0 has the root alone, the others share the rest evenly); node
k of level l + 1 is a child of node k mod width(l) of level l. A computing task busy-works for
`TotalCalculationTime / NTasks` (CPU spinning, touching `MemorySize` KiB), then

- if its node has children, it submits one task per child and an aggregation task that depends on the
  children's results and takes over its own expected output;
- otherwise it writes its result.

A result is the number of computing tasks per level of the subtree it covers, dotted (`0.0.1` from a leaf of
level 2), followed by a newline and padding up to `DataSize` KiB; an aggregation adds its children's counts
and its own node. The root's result is therefore the tree's shape, `1.<width 1>.<width 2>...`, which the
client checks, as upstream's "Expected result is 1.<shape>".

As upstream, the task options `FastCompute`, `UseLowMem` and `SmallOutput` (set by the client) skip the busy
work, the memory and the padding; unlike upstream they default to false, so that the time and sizes given
are honoured. `TaskError` / `TaskRpcException`: a task whose id ends with that text returns an error output /
raises (the worker answers the agent with an error).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import Annotated, Any

import typer
from armonik.common import TaskDefinition
from rich.table import Table

from armonik_samples import cli, common
from armonik_samples.common import Handler

SAMPLE = "htcmock"
ENV = "HtcMock__"


@dataclass(frozen=True)
class RunConfiguration:
    n_tasks: int = 100
    #: Seconds of busy work of all the computing tasks together.
    total_calculation_time: float = 0.1
    #: KiB of each result.
    data_size: int = 1
    #: KiB of memory each computing task uses.
    memory_size: int = 1
    sub_tasks_levels: int = 4

    @property
    def widths(self) -> list[int]:
        return tree_widths(self.n_tasks, self.sub_tasks_levels)

    @property
    def task_time(self) -> float:
        return self.total_calculation_time / self.n_tasks

    @property
    def aggregation_tasks(self) -> int:
        widths = self.widths
        return sum(min(widths[level], widths[level + 1]) for level in range(len(widths) - 1))

    @property
    def total_tasks(self) -> int:
        return self.n_tasks + self.aggregation_tasks

    def shape(self) -> str:
        return ".".join(str(w) for w in self.widths)


def tree_widths(n_tasks: int, levels: int) -> list[int]:
    """Computing tasks per level: the root, then the others spread evenly over at most `levels` levels (at
    least one, so that there are always `n_tasks` in all)."""
    if n_tasks < 1:
        raise ValueError("NTasks must be at least 1")
    rest = n_tasks - 1
    depth = min(max(levels, 1), rest)
    if depth == 0:
        return [1]
    base, extra = divmod(rest, depth)
    return [1] + [base + (1 if i < extra else 0) for i in range(depth)]


def children(widths: list[int], level: int, index: int) -> list[int]:
    """Indices, in level + 1, of the children of node `index` of `level`."""
    if level + 1 >= len(widths):
        return []
    return list(range(index, widths[level + 1], widths[level]))


# -- payloads and results ------------------------------------------------------------------------------------
def node_payload(config: RunConfiguration, level: int, index: int, aggregate: bool = False) -> bytes:
    return json.dumps(
        {"config": asdict(config), "level": level, "index": index, "aggregate": aggregate}
    ).encode("utf-8")


def encode_counts(counts: list[int], size_kib: int, small_output: bool) -> bytes:
    text = (".".join(str(c) for c in counts) + "\n").encode("ascii")
    if small_output:
        return text
    return text.ljust(size_kib * 1024, b"#")


def decode_counts(data: bytes) -> list[int]:
    head = data.split(b"\n", 1)[0].decode("ascii")
    return [int(c) for c in head.split(".")] if head else []


def _add(into: list[int], counts: list[int]) -> None:
    if len(counts) > len(into):
        into.extend([0] * (len(counts) - len(into)))
    for i, c in enumerate(counts):
        into[i] += c


def busy_work(seconds: float, memory_kib: int) -> int:
    """Spin the CPU for `seconds`, writing over `memory_kib` KiB as it goes; returns the loop count."""
    memory = bytearray(memory_kib * 1024)
    deadline = time.perf_counter() + seconds
    loops = 0
    while True:
        if memory:
            memory[(loops * 4096) % len(memory)] = loops & 0xFF
        loops += 1
        if time.perf_counter() >= deadline:
            return loops


def process(handler: Handler) -> Any:
    """Worker side: compute a node (and grow its children), or aggregate the children's counts."""
    request = json.loads(handler.payload)
    config = RunConfiguration(**request["config"])
    level, index = int(request["level"]), int(request["index"])
    small_output = common.option_bool(handler, "SmallOutput", False)
    output = common.only_result(handler)
    widths = config.widths
    if request.get("aggregate"):
        counts = [0] * (level + 1)
        for data in handler.data_dependencies.values():
            _add(counts, decode_counts(data))
        counts[level] += 1
        handler.send_results({output: encode_counts(counts, config.data_size, small_output)})
        return common.deterministic_outcome(handler)

    if not common.option_bool(handler, "FastCompute", False):
        low_mem = common.option_bool(handler, "UseLowMem", False)
        busy_work(config.task_time, 0 if low_mem else config.memory_size)
    kids = children(widths, level, index)
    if not kids:
        counts = [0] * (level + 1)
        counts[level] = 1
        handler.send_results({output: encode_counts(counts, config.data_size, small_output)})
        return common.deterministic_outcome(handler)

    children_payloads = {f"htcmock {level + 1}.{k}": node_payload(config, level + 1, k) for k in kids}
    cli.fork_join(handler, children_payloads, node_payload(config, level, index, aggregate=True))
    return common.deterministic_outcome(handler)


# -- client --------------------------------------------------------------------------------------------------
def _show(config: RunConfiguration) -> None:
    table = Table(title="HtcMock run", show_header=False)
    for name, value in (
        ("computing tasks", config.n_tasks),
        ("aggregation tasks", config.aggregation_tasks),
        ("levels below the root", len(config.widths) - 1),
        ("tasks per level", config.shape()),
        ("busy work per task", f"{config.task_time * 1000:g} ms"),
        ("result size", f"{config.data_size} KiB"),
        ("memory per task", f"{config.memory_size} KiB"),
    ):
        table.add_row(name, str(value))
    common.console.print(table)


def run(
    client: common.Client,
    partition: str,
    config: RunConfiguration,
    task_options: dict[str, str],
    purge_data: bool,
    timeout: float,
) -> None:
    _show(config)
    started = time.monotonic()
    session_id = client.create_session(common.session_options(SAMPLE, partition, task_options), partition)
    result_id = client.results.create_results_metadata(["root"], session_id)["root"].result_id
    payload = client.results.create_results({"payload root": node_payload(config, 0, 0)}, session_id)
    client.tasks.submit_tasks(
        session_id, [TaskDefinition(payload["payload root"].result_id, expected_output_ids=[result_id])]
    )

    def completed() -> tuple[int, int]:
        counts = common.count_by_status(client, session_id)
        return counts.get("COMPLETED", 0), config.total_tasks

    common.wait_for_results(
        client, session_id, [result_id], timeout=timeout, label="root result", tasks_progress=completed
    )
    counts = decode_counts(client.download(session_id, result_id))
    elapsed = time.monotonic() - started
    final = ".".join(str(c) for c in counts)
    print(f"Final result is {final}")
    print(f"Expected result is {config.shape()}")
    print(f"Client was executed in {elapsed:.3f}s")
    client.sessions.close_session(session_id)
    statuses = common.count_by_status(client, session_id)
    throughput = common.compute_throughput(client, session_id)
    print(
        f"Throughput for session {session_id} : {throughput.per_second:.2f} task/s "
        f"({throughput.tasks} tasks in {throughput.timespan()})"
    )
    if purge_data:
        client.sessions.purge_session(session_id)
    common.print_json(
        {
            "session": session_id,
            "sessionThroughput": throughput.per_second,
            "nTasks": throughput.tasks,
            "timespan": throughput.seconds,
            "elapsed": elapsed,
            "result": final,
            "expected": config.shape(),
            "tasks": statuses,
            "configuration": asdict(config),
        }
    )
    common.check(final == config.shape(), f"the result {final} is not the tree's shape {config.shape()}")
    common.ok(f"{config.total_tasks} tasks")


_opt = cli.env_option(ENV)
_TOTAL_HELP = "Busy work of all the computing tasks together (hh:mm:ss, seconds, 100ms)"


@cli.client_command
def command(
    partition: Annotated[str, _opt("Partition", None, "--partition", "-p")] = "default",
    n_tasks: Annotated[int, _opt("NTasks", "Computing tasks", "--ntasks", min=1)] = 100,
    total_calculation_time: Annotated[
        str, _opt("TotalCalculationTime", _TOTAL_HELP, "--total-calculation-time")
    ] = "00:00:00.100",
    data_size: Annotated[int, _opt("DataSize", "KiB of each result", "--data-size", min=0)] = 1,
    memory_size: Annotated[int, _opt("MemorySize", "KiB used by each task", "--memory-size", min=0)] = 1,
    sub_tasks_levels: Annotated[
        int, _opt("SubTasksLevels", "Levels below the root", "--sub-tasks-levels", min=0)
    ] = 4,
    fast_compute: Annotated[
        bool, _opt("EnableFastCompute", None, "--fast-compute/--no-fast-compute")
    ] = False,
    use_low_mem: Annotated[bool, _opt("EnableUseLowMem", None, "--use-low-mem/--no-use-low-mem")] = False,
    small_output: Annotated[
        bool, _opt("EnableSmallOutput", None, "--small-output/--no-small-output")
    ] = False,
    task_error: Annotated[str, _opt("TaskError", "Fail tasks whose id ends so", "--task-error")] = "",
    task_rpc_exception: Annotated[
        str, _opt("TaskRpcException", "Crash tasks whose id ends so", "--task-rpc-exception")
    ] = "",
    purge_data: Annotated[bool, _opt("PurgeData", None, "--purge-data/--no-purge-data")] = True,
    option: Annotated[list[str] | None, typer.Option("--option", help="Extra task option key=value")] = None,
    timeout: common.TimeoutOption = 3600.0,
) -> cli.Body:
    """Grow a tree of tasks with busy work and aggregations; check its shape and print the throughput."""
    config = RunConfiguration(
        n_tasks=n_tasks,
        total_calculation_time=common.duration_option(total_calculation_time),
        data_size=data_size,
        memory_size=memory_size,
        sub_tasks_levels=sub_tasks_levels,
    )
    task_options = {
        **common.parse_key_values(option or []),
        "FastCompute": str(fast_compute).lower(),
        "UseLowMem": str(use_low_mem).lower(),
        "SmallOutput": str(small_output).lower(),
        "TaskError": task_error,
        "TaskRpcException": task_rpc_exception,
    }
    return lambda client: run(client, partition, config, task_options, purge_data, timeout)


def main() -> None:
    typer.run(command)


if __name__ == "__main__":
    main()
