"""What the end-to-end scenarios share, on any deployment that gives a channel (the local one of tests/e2e, the
podman one of tests/podman): the SDK's clients on one channel (the `clients` fixture of conftest), the
partitions the scenarios run on, and bounded waits that fail with the session's task statuses rather than hang."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
from armonik.client import ArmoniKEvents, ArmoniKResults, ArmoniKSessions, ArmoniKTasks
from armonik.common import Result, ResultStatus, Task, TaskDefinition, TaskOptions, TaskStatus

from tests.support import sample_options

if TYPE_CHECKING:
    from tests.e2e.conftest import Deployment

T = TypeVar("T")

RESULT_TIMEOUT = 60.0

#: The generic worker's partitions: a worker process per agent, and the same processor in the agents' own
#: process (`Worker__Module`); the SDK's and the samples' tests run on both, as PymoniK's on its two.
SAMPLE_PARTITIONS = ("default", "inprocess")
PYMONIK_PARTITIONS = ("pymonik", "pymonik-inprocess")


def session_key(name: str, partition: str) -> str:
    """The name a test's session is recorded under: the plain name on the separate-worker partitions."""
    return name if partition in ("default", "pymonik") else f"{name}@{partition}"


class Clients:
    """The SDK's clients on one channel."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.channel = channel
        self.sessions = ArmoniKSessions(channel)
        self.results = ArmoniKResults(channel)
        self.tasks = ArmoniKTasks(channel)


def run_with_timeout(function: Callable[[], T], timeout: float, what: str) -> T:
    """`function()` in a thread; TimeoutError naming `what` if it has not returned within `timeout` seconds."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = function()
        except BaseException as exc:  # re-raised in the caller
            box["error"] = exc

    thread = threading.Thread(target=target, name=what, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"{what}: no answer within {timeout:g}s")
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


def session_report(clients: Clients, session_id: str) -> str:
    """Task and result statuses of a session, for failure messages."""
    try:
        _, tasks = clients.tasks.list_tasks(Task.session_id == session_id, with_errors=True)
        _, results = clients.results.list_results(Result.session_id == session_id)
    except grpc.RpcError as exc:
        return f"(cannot list the session {session_id}: {exc})"
    lines = [f"session {session_id}:"]
    lines += [
        f"  task {t.id} {TaskStatus(t.status).name} owner={t.owner_pod_id} msg={t.status_message!r}"
        for t in tasks
    ]
    lines += [
        f"  result {r.result_id} {ResultStatus.name_from_value(r.status)} owner={r.owner_task_id} name={r.name}"
        for r in results
    ]
    return "\n".join(lines)


def wait_results(
    deployment: Deployment, clients: Clients, session_id: str, result_ids: list[str], timeout: float
) -> None:
    """`ArmoniKEvents.wait_for_result_availability`, bounded: it runs on a channel of its own, closed when
    the time is up (which ends the wait). Raises what the SDK raises (RuntimeError on an aborted result)."""
    channel = deployment.channel()
    events = ArmoniKEvents(channel)
    try:
        run_with_timeout(
            lambda: events.wait_for_result_availability(result_ids, session_id),
            timeout,
            f"waiting for {len(result_ids)} result(s) of session {session_id}",
        )
    except TimeoutError as exc:
        raise TimeoutError(f"{exc}\n{session_report(clients, session_id)}") from None
    finally:
        channel.close()


def poll(
    condition: Callable[[], T],
    timeout: float,
    what: str,
    interval: float = 0.1,
    details: Callable[[], str] | None = None,
) -> T:
    """The first truthy value of `condition()`, checked every `interval` seconds; TimeoutError after
    `timeout` seconds, with the last value seen and `details()` (computed then)."""
    deadline = time.monotonic() + timeout
    last: T = condition()
    while not last:
        if time.monotonic() > deadline:
            more = f"\n{details()}" if details is not None else ""
            raise TimeoutError(f"{what}: not within {timeout:g}s (last: {last!r}){more}")
        time.sleep(interval)
        last = condition()
    return last


def processing(clients: Clients, session_id: str, task_id: str, timeout: float = 30) -> Task:
    """The task once an agent runs it (PROCESSING); TimeoutError with the session's statuses otherwise."""
    return poll(
        lambda: (t := clients.tasks.get_task(task_id)).status == TaskStatus.PROCESSING and t,
        timeout,
        f"task {task_id} PROCESSING",
        details=lambda: session_report(clients, session_id),
    )


def behaviour_options(
    action: str,
    *,
    max_retries: int = 2,
    max_duration: timedelta = timedelta(minutes=1),
    partition: str = "default",
    **extra: str,
) -> TaskOptions:
    """Task options running the `testing` sample's behaviour `action` on the generic worker."""
    return sample_options(
        "testing",
        partition=partition,
        max_retries=max_retries,
        max_duration=max_duration,
        action=action,
        **extra,
    )


def new_session(clients: Clients, options: TaskOptions, partition: str = "default") -> str:
    session_id: str = clients.sessions.create_session(options, partition_ids=[partition])
    return session_id


def submit_one(
    clients: Clients,
    session_id: str,
    payload: bytes,
    *,
    options: TaskOptions | None = None,
    data_dependencies: list[str] | None = None,
    name: str = "task",
) -> tuple[str, str]:
    """One task with a payload and one expected output: (task id, output id)."""
    output = clients.results.create_results_metadata([f"{name} output"], session_id)[f"{name} output"]
    payload_id = clients.results.create_results({f"{name} payload": payload}, session_id)[f"{name} payload"]
    submitted = clients.tasks.submit_tasks(
        session_id,
        [
            TaskDefinition(
                payload_id.result_id,
                expected_output_ids=[output.result_id],
                data_dependencies=data_dependencies or [],
                options=options,
            )
        ],
    )
    assert len(submitted) == 1
    return submitted[0].id, output.result_id


def tasks_of(clients: Clients, session_id: str) -> dict[str, Task]:
    total, tasks = clients.tasks.list_tasks(Task.session_id == session_id, with_errors=True)
    assert total == len(tasks)
    return {t.id: t for t in tasks}


def task_status(clients: Clients, task_id: str) -> TaskStatus:
    return TaskStatus(clients.tasks.get_task(task_id).status)


def result_status(clients: Clients, result_id: str) -> int:
    return int(clients.results.get_result(result_id).status)


def error_text(t: Task) -> str:
    """What the task says about its failure (status message and output error)."""
    output_error = t.output.error if t.output is not None and t.output.error else ""
    return f"{t.status_message or ''} {output_error}"
