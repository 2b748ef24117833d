"""Hello world: one task turns its payload "World" into the result "Hello World!".

The client follows the C# HelloWorld sample: the result's metadata and the payload (created with its data
in one call) first, then one task, a wait on the result's events, and the download.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from armonik.common import Output

from armonik_samples import cli, common
from armonik_samples.common import Handler

SAMPLE = "hello_world"


def greeting(name: str) -> str:
    return f"Hello {name}!"


def process(handler: Handler) -> Any:
    """Worker side: send "Hello <payload>!" to the task's expected result."""
    name = handler.payload.decode("utf-8")
    handler.send_results({common.only_result(handler): greeting(name).encode("utf-8")})
    return Output()


def run(client: common.Client, partition: str, name: str, timeout: float) -> None:
    session_id = client.create_session(common.session_options(SAMPLE, partition), partition)
    (result_id,) = cli.submit_task(client, session_id, name.encode("utf-8"), ["output"])
    common.wait_for_results(client, session_id, [result_id], timeout=timeout, label="hello world")
    answer = client.download(session_id, result_id).decode("utf-8", errors="replace")
    print(answer)
    common.check(answer == greeting(name), f"expected {greeting(name)!r}, got {answer!r}")
    common.close_ok(client, session_id, "hello world")


@cli.client_command
def command(
    partition: common.PartitionOption = "default",
    name: Annotated[str, typer.Option(help="The payload: who to greet")] = "World",
    timeout: common.TimeoutOption = 300.0,
) -> cli.Body:
    """Submit one task that says hello, and print its answer."""
    return lambda client: run(client, partition, name, timeout)


def main() -> None:
    typer.run(command)


if __name__ == "__main__":
    main()
