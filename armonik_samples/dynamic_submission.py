"""Dynamic submission: a task decides from its input how many subtasks to submit (the C# DynamicSubmission
sample).

The payload is the JSON table `{"values": [...], "threshold": t}`. A task whose table holds more than t
values cuts it into ceil(size / t) chunks, submits one subtask per chunk, and one aggregation task
(payload `{"aggregate": true}`) that depends on the chunks' results and takes over its own expected
output. A task with at most t values sends their sum; the aggregation sends the sum of its data
dependencies (sums are 8-byte little-endian integers).
"""

from __future__ import annotations

import json
import random
from typing import Annotated, Any

import typer
from armonik.common import Output

from armonik_samples import cli, common
from armonik_samples.common import Handler

SAMPLE = "dynamic_submission"


def table(values: list[int], threshold: int) -> bytes:
    return json.dumps({"values": values, "threshold": threshold}).encode("utf-8")


def chunks(values: list[int], threshold: int) -> list[list[int]]:
    return [values[i : i + threshold] for i in range(0, len(values), threshold)]


def process(handler: Handler) -> Any:
    """Worker side: sum a small table, split a large one, or aggregate the parts' sums."""
    request = json.loads(handler.payload)
    output = common.only_result(handler)
    if request.get("aggregate"):
        total = sum(
            int.from_bytes(data, "little", signed=True) for data in handler.data_dependencies.values()
        )
        handler.send_results({output: total.to_bytes(8, "little", signed=True)})
        return Output()
    values = [int(v) for v in request["values"]]
    threshold = int(request["threshold"])
    if threshold < 1:
        return Output(f"threshold must be at least 1, got {threshold}")
    if len(values) <= threshold:
        handler.send_results({output: sum(values).to_bytes(8, "little", signed=True)})
        return Output()
    parts = {f"part {i}": table(part, threshold) for i, part in enumerate(chunks(values, threshold))}
    cli.fork_join(handler, parts, json.dumps({"aggregate": True}).encode("utf-8"))
    return Output()


def run(client: common.Client, partition: str, size: int, threshold: int, seed: int, timeout: float) -> None:
    values = random_values(size, seed)
    session_id = client.create_session(common.session_options(SAMPLE, partition), partition)
    (result_id,) = cli.submit_task(client, session_id, table(values, threshold), ["result"])
    subtasks = len(chunks(values, threshold)) if size > threshold else 0
    label = f"{size} values, {subtasks} subtasks" if subtasks else f"{size} values"
    common.wait_for_results(client, session_id, [result_id], timeout=timeout, label=label)
    result = int.from_bytes(client.download(session_id, result_id), "little", signed=True)
    expected = sum(values)
    print(f"Result: {result}, Expected: {expected}")
    print(f"Tasks: {common.count_by_status(client, session_id)}")
    common.check(result == expected, f"the sum is {result}, expected {expected}")
    common.close_ok(client, session_id, "dynamic submission")


def random_values(size: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    return [rng.randint(-1000, 1000) for _ in range(size)]


@cli.client_command
def command(
    partition: common.PartitionOption = "default",
    size: Annotated[int, typer.Option("--size", help="Number of values in the table", min=0)] = 100,
    threshold: Annotated[int, typer.Option("--threshold", help="Most values a task sums itself", min=1)] = 10,
    seed: Annotated[int, typer.Option(help="Seed of the random values")] = 0,
    timeout: common.TimeoutOption = 300.0,
) -> cli.Body:
    """Sum a table of random values with as many subtasks as the table needs."""
    return lambda client: run(client, partition, size, threshold, seed, timeout)


def main() -> None:
    typer.run(command)


if __name__ == "__main__":
    main()
