"""Test behaviours for end-to-end tests of the compute plane (retries, errors, crashes, long tasks).

Task options (a session's defaults, or a task's own options, which override them):

| option | meaning |
|---|---|
| `action` | what the task does (below); default `echo` |
| `sleep` | seconds to sleep first, whatever the action (`"0.5"`) |
| `exit_code` | status of `exit` / `exit_once` (default 3) |

| action | behaviour |
|---|---|
| `echo` | every expected result receives the payload |
| `sleep` | sleep `sleep` seconds (default 1), then echo |
| `fail` | return an error output (`Output(error=...)`), sending nothing |
| `fail_once` | `fail` on the first attempt, `echo` on the retries |
| `crash` | raise an exception: the worker answers the agent with a gRPC error |
| `crash_once` | `crash` on the first attempt, `echo` on the retries |
| `exit` | end the worker process at once (`os._exit`), as a worker dying mid-task |
| `exit_once` | `exit` on the first attempt, `echo` on the retries |
| `delegate` | hand the expected results over to a subtask (same payload, action `echo`) |

The attempt is read from the task id: a retry is `<initial id>###<n>` (n >= 1), the first attempt has no
suffix.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Annotated, Any

import typer
from armonik.common import Output, TaskDefinition

from armonik_samples import cli, common
from armonik_samples.common import Handler

SAMPLE = "testing"
ACTIONS = ("echo", "sleep", "fail", "fail_once", "crash", "crash_once", "exit", "exit_once", "delegate")


def _echo(handler: Handler) -> Any:
    payload = handler.payload
    handler.send_results({result_id: payload for result_id in handler.expected_results})
    return Output()


def _delegate(handler: Handler) -> Any:
    payload = handler.create_results({"delegated payload": handler.payload})["delegated payload"]
    options = handler.task_options
    sub_options = dataclasses.replace(options, options={**common.task_options_of(handler), "action": "echo"})
    handler.submit_tasks(
        [
            TaskDefinition(
                payload.result_id, expected_output_ids=list(handler.expected_results), options=sub_options
            )
        ]
    )
    return Output()


def process(handler: Handler) -> Any:
    """Worker side: run the `action` of the task's options (see the module docstring)."""
    options = common.task_options_of(handler)
    action = options.get("action", "echo") or "echo"
    if action not in ACTIONS:
        return Output(f"unknown testing action {action!r} (known: {', '.join(ACTIONS)})")
    first = common.attempt_of(handler.task_id) == 0
    delay = float(options.get("sleep", "1" if action == "sleep" else "0") or 0)
    if delay > 0:
        time.sleep(delay)
    if action == "fail" or (action == "fail_once" and first):
        return Output(f"deliberate failure (action {action}) of task {handler.task_id}")
    if action == "crash" or (action == "crash_once" and first):
        raise common.WorkerCrash(f"deliberate crash (action {action}) of task {handler.task_id}")
    if action == "exit" or (action == "exit_once" and first):
        os._exit(int(options.get("exit_code", "3")))
    if action == "delegate":
        return _delegate(handler)
    return _echo(handler)


# -- client --------------------------------------------------------------------------------------------------
def run(
    client: common.Client,
    partition: str,
    action: str,
    text: str,
    count: int,
    extra: dict[str, str],
    max_retries: int,
    expect_failure: bool,
    timeout: float,
) -> None:
    options = common.session_options(SAMPLE, partition, {**extra, "action": action}, max_retries=max_retries)
    session_id = client.create_session(options, partition)
    names = [f"result {i}" for i in range(count)]
    created = client.results.create_results_metadata(names, session_id)
    result_ids = [created[name].result_id for name in names]
    payloads = client.results.create_results(
        {f"payload {i}": text.encode("utf-8") for i in range(count)}, session_id, batch_size=100
    )
    client.tasks.submit_tasks(
        session_id,
        [
            TaskDefinition(payloads[f"payload {i}"].result_id, expected_output_ids=[result_ids[i]])
            for i in range(count)
        ],
    )
    try:
        common.wait_for_results(client, session_id, result_ids, timeout=timeout, label=f"{count} x {action}")
    except common.SampleFailure as exc:
        print(f"Tasks: {common.count_by_status(client, session_id)}")
        if expect_failure:
            common.ok(f"failed as expected: {exc}")
            return
        raise
    print(f"Tasks: {common.count_by_status(client, session_id)}")
    common.check(not expect_failure, "every result completed, but a failure was expected")
    for name, result_id in zip(names, result_ids, strict=True):
        value = client.download(session_id, result_id)
        common.check(value == text.encode("utf-8"), f"{name}: expected {text!r}, got {value!r}")
    common.close_ok(client, session_id, f"{count} tasks with action {action}")


@cli.client_command
def command(
    partition: common.PartitionOption = "default",
    action: Annotated[str, typer.Option(help=f"One of {', '.join(ACTIONS)}")] = "echo",
    text: Annotated[str, typer.Option("--payload", help="Payload of each task")] = "ping",
    count: Annotated[int, typer.Option("--count", "-n", help="Number of tasks", min=1)] = 1,
    option: Annotated[list[str] | None, typer.Option("--option", help="Extra task option key=value")] = None,
    max_retries: Annotated[int, typer.Option("--max-retries", help="Retries per task", min=0)] = 2,
    expect_failure: Annotated[
        bool, typer.Option("--expect-failure", help="Succeed only if a result aborts")
    ] = False,
    timeout: common.TimeoutOption = 300.0,
) -> cli.Body:
    """Submit tasks with a test behaviour and check the outcome."""
    if action not in ACTIONS:
        raise typer.BadParameter(f"unknown action {action!r}", param_hint="--action")
    extra = common.parse_key_values(option or [])
    return lambda client: run(
        client, partition, action, text, count, extra, max_retries, expect_failure, timeout
    )


def main() -> None:
    typer.run(command)


if __name__ == "__main__":
    main()
