"""Subtasking: fork-join sum of 1..N (ArmoniK.Samples `python/subtasking`, same payloads and option).

The payload is N little-endian uint32 values. A task holding more than `split` values (task option "split",
from the session's defaults) splits them in two halves, submits a task for each and an aggregation task
that depends on both halves' results and takes over its own expected output; it sends no result itself. A
task holding at most `split` values sends their sum (8 bytes, little-endian); the aggregation task (empty
payload) sends the sum of its data dependencies.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from armonik.common import Output, TaskDefinition

from armonik_samples import cli, common
from armonik_samples.common import Handler

SAMPLE = "subtasking"
SPLIT_OPTION = "split"


def encode_values(values: range | list[int]) -> bytes:
    return b"".join(v.to_bytes(4, "little") for v in values)


def decode_values(payload: bytes) -> list[int]:
    return [int.from_bytes(payload[i : i + 4], "little") for i in range(0, len(payload), 4)]


def process(handler: Handler) -> Any:
    """Worker side: split, sum, or aggregate (see the module docstring)."""
    split = common.task_options_of(handler).get(SPLIT_OPTION)
    if split is None:
        return Output("Threshold is not specified")
    threshold = int(split)
    payload = handler.payload
    output = common.only_result(handler)
    if not payload:  # aggregation
        total = sum(int.from_bytes(data, "little") for data in handler.data_dependencies.values())
        handler.send_results({output: total.to_bytes(8, "little")})
        return Output()
    count = len(payload) // 4
    if count <= threshold:
        handler.send_results({output: sum(decode_values(payload)).to_bytes(8, "little")})
        return Output()
    pivot = (count // 2) * 4
    results = handler.create_results_metadata(["left_result", "right_result"])
    payloads = handler.create_results(
        {"left_payload": payload[:pivot], "right_payload": payload[pivot:], "aggregation_payload": b""}
    )
    left, right = results["left_result"].result_id, results["right_result"].result_id
    handler.submit_tasks(
        [
            TaskDefinition(payloads["left_payload"].result_id, expected_output_ids=[left]),
            TaskDefinition(payloads["right_payload"].result_id, expected_output_ids=[right]),
            TaskDefinition(
                payloads["aggregation_payload"].result_id,
                expected_output_ids=list(handler.expected_results),
                data_dependencies=[left, right],
            ),
        ]
    )
    return Output()


def run(client: common.Client, partition: str, n: int, split: int, timeout: float) -> None:
    options = common.session_options(SAMPLE, partition, {SPLIT_OPTION: str(split)}, max_retries=5)
    session_id = client.create_session(options, partition)
    created = client.results.create_results_metadata(["payload", "result"], session_id)
    payload_id, result_id = created["payload"].result_id, created["result"].result_id
    client.results.upload_result_data(payload_id, session_id, encode_values(range(1, n + 1)))
    client.tasks.submit_tasks(session_id, [TaskDefinition(payload_id, expected_output_ids=[result_id])])
    common.wait_for_results(client, session_id, [result_id], timeout=timeout, label=f"sum of 1..{n}")
    result = int.from_bytes(client.download(session_id, result_id), "little")
    expected = n * (n + 1) // 2
    print(f"Result: {result}, Expected: {expected}")
    print(f"Tasks: {common.count_by_status(client, session_id)}")
    common.check(result == expected, f"the sum is {result}, expected {expected}")
    client.sessions.close_session(session_id)
    client.sessions.purge_session(session_id)
    client.sessions.delete_session(session_id)
    common.ok("fork-join sum")


@cli.client_command
def command(
    n: Annotated[int, typer.Argument(help="Number of values to sum (1..N)", min=1)] = 100,
    partition: common.PartitionOption = "default",
    split: Annotated[int, typer.Option("--split", "-s", help="Most values a task sums itself", min=1)] = 10,
    timeout: common.TimeoutOption = 300.0,
) -> cli.Body:
    """Sum 1..N by splitting the values into subtasks and joining their results."""
    return lambda client: run(client, partition, n, split, timeout)


def main() -> None:
    typer.run(command)


if __name__ == "__main__":
    main()
