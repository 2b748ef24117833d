"""Linear subtasking: a chain of ownership transfers (the C# LinearSubTasking sample, with an explicit depth).

The payload is JSON `{"level": i, "levels": n, "value": v}`. A task at level i < n adds i to the value and
submits one subtask for level i + 1 that takes over its own expected output; the task at level n adds n
and writes the value. The client's single result thus holds 0 + 1 + ... + n = n(n+1)/2 only if each of the
n + 1 tasks of the chain ran exactly once.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from armonik.common import Output, TaskDefinition

from armonik_samples import cli, common
from armonik_samples.common import Handler

SAMPLE = "linear_subtasking"


def payload_of(level: int, levels: int, value: int) -> bytes:
    return json.dumps({"level": level, "levels": levels, "value": value}).encode("utf-8")


def expected_value(levels: int) -> int:
    return levels * (levels + 1) // 2


def process(handler: Handler) -> Any:
    """Worker side: delegate to the next level, or write the accumulated value at the last one."""
    step = json.loads(handler.payload)
    level, levels = int(step["level"]), int(step["levels"])
    value = int(step["value"]) + level
    if level >= levels:
        handler.send_results({common.only_result(handler): str(value).encode("utf-8")})
        return Output()
    name = f"payload level {level + 1}"
    payload = handler.create_results({name: payload_of(level + 1, levels, value)})[name]
    handler.submit_tasks(
        [TaskDefinition(payload.result_id, expected_output_ids=list(handler.expected_results))]
    )
    return Output()


def run(client: common.Client, partition: str, levels: int, timeout: float) -> None:
    session_id = client.create_session(common.session_options(SAMPLE, partition), partition)
    (result_id,) = cli.submit_task(client, session_id, payload_of(0, levels, 0), ["result"])
    common.wait_for_results(
        client, session_id, [result_id], timeout=timeout, label=f"chain of {levels + 1} tasks"
    )
    value = client.download(session_id, result_id).decode("utf-8", errors="replace")
    print(f"Result: {value}, Expected: {expected_value(levels)}")
    print(f"Tasks: {common.count_by_status(client, session_id)}")
    common.check(value == str(expected_value(levels)), f"expected {expected_value(levels)}, got {value!r}")
    common.close_ok(client, session_id, f"the output was handed over {levels} times")


@cli.client_command
def command(
    partition: common.PartitionOption = "default",
    levels: Annotated[int, typer.Option("--levels", "-n", help="Number of hand-overs", min=0)] = 5,
    timeout: common.TimeoutOption = 300.0,
) -> cli.Body:
    """Submit a task that hands its output down a chain of subtasks."""
    return lambda client: run(client, partition, levels, timeout)


def main() -> None:
    typer.run(command)


if __name__ == "__main__":
    main()
