"""Multiple results: one task with N expected outputs writes every one of them (the C# MultipleResults
sample). Result i (in the order of the task's expected output ids) is "<payload> #<i>"."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from armonik.common import Output

from armonik_samples import cli, common
from armonik_samples.common import Handler

SAMPLE = "multiple_results"


def expected_value(payload: str, index: int) -> str:
    return f"{payload} #{index}"


def process(handler: Handler) -> Any:
    """Worker side: write "<payload> #<i>" to the i-th expected result."""
    if not handler.expected_results:
        return Output("the task has no expected result")
    text = handler.payload.decode("utf-8")
    handler.send_results(
        {
            result_id: expected_value(text, index).encode("utf-8")
            for index, result_id in enumerate(handler.expected_results)
        }
    )
    return Output()


def run(client: common.Client, partition: str, count: int, text: str, timeout: float) -> None:
    session_id = client.create_session(common.session_options(SAMPLE, partition), partition)
    names = [f"result {i}" for i in range(count)]
    result_ids = cli.submit_task(client, session_id, text.encode("utf-8"), names)
    common.wait_for_results(client, session_id, result_ids, timeout=timeout, label=f"{count} results")
    wrong = []
    for index, result_id in enumerate(result_ids):
        value = client.download(session_id, result_id).decode("utf-8", errors="replace")
        print(f"{names[index]}: {value}")
        if value != expected_value(text, index):
            wrong.append(f"{names[index]}: expected {expected_value(text, index)!r}, got {value!r}")
    common.check(not wrong, "; ".join(wrong))
    common.close_ok(client, session_id, f"one task produced {count} results")


@cli.client_command
def command(
    partition: common.PartitionOption = "default",
    count: Annotated[int, typer.Option("--count", "-n", help="Number of results of the task", min=1)] = 5,
    text: Annotated[str, typer.Option("--payload", help="Text the task writes into each result")] = "Hello",
    timeout: common.TimeoutOption = 300.0,
) -> cli.Body:
    """Submit one task that produces several results, and print each."""
    return lambda client: run(client, partition, count, text, timeout)


def main() -> None:
    typer.run(command)


if __name__ == "__main__":
    main()
