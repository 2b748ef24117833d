"""Faults of a whole deployment on RabbitMQ + Redis: what a user would see, through the official SDK.

A local deployment (`armonik-deploy deploy`) selects RabbitMQ and Redis in its parameters file. While tasks run,
the broker is restarted (`rabbitmqctl stop_app` / `start_app`): every task still completes, none is retried
(a task whose message the broker delivers again while its agent still holds it stays with that agent, so no
task runs twice), and tasks submitted while the broker is down are published once it is back (the outbox).
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta

import grpc
import pytest
from armonik.client import ArmoniKEvents, ArmoniKResults, ArmoniKSessions, ArmoniKTasks
from armonik.common import Task, TaskDefinition, TaskStatus

from tests.contract.backends.service import require_service
from tests.support import free_port, local_deployment, sample_options, two_pairs_parameters, unavailable

TASKS = 24
TASK_SECONDS = 0.4


def _rabbitmqctl(*args: str) -> None:
    done = subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"rabbitmqctl {' '.join(args)} failed: {done.stdout}{done.stderr}"


@pytest.fixture
def deployment() -> Iterator[str]:
    """A deployment on RabbitMQ + Redis, its control plane's endpoint; destroyed afterwards."""
    require_service("RabbitMQ", "127.0.0.1", 5672)
    require_service("Redis", "127.0.0.1", 6379)
    if shutil.which("rabbitmqctl") is None:
        unavailable("rabbitmqctl is not installed: the broker cannot be restarted")
    run, port = uuid.uuid4().hex[:8], free_port()
    parameters = two_pairs_parameters(
        port,
        rabbitmq={"prefix": f"fault-{run}"},
        redis={"instance_name": f"fault-{run}"},
        local={
            "env": {"ComputeGateway__LeaseSeconds": "3", "Pollster__HeartbeatSeconds": "1"},
            "stop_grace_period": 5,
        },
    )
    with local_deployment(parameters, "akfault-"):
        yield f"127.0.0.1:{port}"


def _submit(channel: grpc.Channel, session_id: str, count: int, prefix: str) -> list[str]:
    results = ArmoniKResults(channel)
    outputs = results.create_results_metadata([f"{prefix}-{i}" for i in range(count)], session_id)
    payload = results.create_results({f"{prefix}-payload": b"x"}, session_id)[f"{prefix}-payload"].result_id
    ArmoniKTasks(channel).submit_tasks(
        session_id, [TaskDefinition(payload, [output.result_id]) for output in outputs.values()]
    )
    return [output.result_id for output in outputs.values()]


def _wait(endpoint: str, session_id: str, result_ids: list[str], timeout: float) -> None:
    failure: list[BaseException] = []

    def wait() -> None:
        with grpc.insecure_channel(endpoint) as channel:
            try:
                ArmoniKEvents(channel).wait_for_result_availability(result_ids, session_id)
            except BaseException as exc:  # reported by the caller
                failure.append(exc)

    thread = threading.Thread(target=wait, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"{len(result_ids)} results not available within {timeout:g} s"
    assert not failure, failure


@pytest.mark.timeout(300)
def test_broker_restart_while_tasks_run_loses_none_and_runs_none_twice(deployment: str) -> None:
    options = sample_options(
        "testing", max_retries=3, max_duration=timedelta(minutes=2), action="sleep", sleep=str(TASK_SECONDS)
    )
    with grpc.insecure_channel(deployment) as channel:
        session_id = ArmoniKSessions(channel).create_session(options, partition_ids=["default"])
        before = _submit(channel, session_id, TASKS, "before")
        time.sleep(2 * TASK_SECONDS)  # some done, some running, some queued
        _rabbitmqctl("stop_app")
        try:
            time.sleep(2)
            during = _submit(channel, session_id, 4, "during")  # committed; published once the broker is back
        finally:
            _rabbitmqctl("start_app")
            _rabbitmqctl("await_startup")
        _wait(deployment, session_id, before + during, 120)

        counts = ArmoniKTasks(channel).count_tasks_by_status(Task.session_id == session_id)
    assert counts.get(TaskStatus.COMPLETED) == TASKS + 4, counts
    assert set(counts) == {TaskStatus.COMPLETED}, f"no task retried, failed or left behind: {counts}"
