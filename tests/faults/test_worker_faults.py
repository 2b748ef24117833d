"""A worker killed again and again under load costs no task a retry, and loses none.

A local deployment (`armonik-deploy deploy`, embedded backends) with two agent + worker pairs runs 1,500
short tasks (20 ms each), each echoing its own payload into its own result. Meanwhile the workers are SIGKILLed several
times, about a second apart, and the supervisor restarts each one after a second. An agent whose worker
cannot be reached gives back the task it was about to run and the tasks it held ahead, without using their
retries, takes no task while its worker is down, and resumes when the worker answers its health check.

The task a worker had in hand when it was killed is kept by its agent and run once more on the restarted
worker (`PollingAgent._run_again`): only a task that kills that second worker too is reported as a crash.
So no task uses a retry: no task of the session is RETRIED or a retry of another. Before, each kill cost the
task in hand a retry, and before that a worker down for a second burnt retries on most tasks of the run.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from armonik.client import ArmoniKEvents, ArmoniKResults, ArmoniKSessions, ArmoniKTasks
from armonik.common import Task, TaskDefinition, TaskStatus

from tests.support import free_port, local_deployment, sample_options, two_pairs_parameters

TASKS = 1500
KILLS = 4
WORKERS = ("default-0-worker", "default-1-worker")


@dataclass
class Deployment:
    endpoint: str
    generated: Path

    def worker_pid(self, name: str) -> int | None:
        state = json.loads((self.generated / "deploy" / "state.json").read_text())
        for process in state["processes"]:
            if process["name"] == name and process["status"] == "running":
                return int(process["pid"])
        return None

    def wait_worker(self, name: str, other_than: int | None, timeout: float = 30.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid = self.worker_pid(name)
            if pid is not None and pid != other_than:
                return pid
            time.sleep(0.1)
        raise TimeoutError(f"{name} was not restarted within {timeout:g} s")


@pytest.fixture
def deployment() -> Iterator[Deployment]:
    port = free_port()
    parameters = two_pairs_parameters(
        port, local={"restart_delay": 1, "max_restart_delay": 1, "stop_grace_period": 5}
    )
    with local_deployment(parameters, "akworker-") as generated:
        yield Deployment(f"127.0.0.1:{port}", generated)


def _submit(channel: grpc.Channel, session_id: str) -> dict[str, bytes]:
    """TASKS tasks, each echoing its own payload into its own result; returns result id -> expected data."""
    results = ArmoniKResults(channel)
    payloads = {f"payload-{i}": f"data {i}".encode() for i in range(TASKS)}
    created = results.create_results(payloads, session_id)
    outputs = results.create_results_metadata([f"out-{i}" for i in range(TASKS)], session_id)
    ArmoniKTasks(channel).submit_tasks(
        session_id,
        [
            TaskDefinition(created[f"payload-{i}"].result_id, [outputs[f"out-{i}"].result_id])
            for i in range(TASKS)
        ],
    )
    return {outputs[f"out-{i}"].result_id: payloads[f"payload-{i}"] for i in range(TASKS)}


def _all_tasks(tasks: ArmoniKTasks, session_id: str) -> list[Task]:
    found: list[Task] = []
    page = 0
    while True:
        total, listed = tasks.list_tasks(Task.session_id == session_id, page=page, page_size=1000)
        found.extend(listed)
        if not listed or len(found) >= total:
            return found
        page += 1


@pytest.mark.timeout(400)
def test_workers_killed_under_load_cost_no_retries_and_lose_no_task(deployment: Deployment) -> None:
    options = sample_options(
        "testing", max_retries=2, max_duration=timedelta(minutes=2), action="echo", sleep="0.02"
    )
    with grpc.insecure_channel(deployment.endpoint) as channel:
        session_id = ArmoniKSessions(channel).create_session(options, partition_ids=["default"])
        expected = _submit(channel, session_id)
        tasks = ArmoniKTasks(channel)
        kills = 0
        for round_ in range(KILLS):
            time.sleep(1.0)
            name = WORKERS[round_ % len(WORKERS)]
            pid = deployment.wait_worker(name, other_than=None)
            os.killpg(pid, signal.SIGKILL)  # the worker and anything it started
            kills += 1
            deployment.wait_worker(name, other_than=pid)
        during = tasks.count_tasks_by_status(Task.session_id == session_id)
        # The kills happened under load: tasks were still waiting when the last worker came back.
        assert during.get(TaskStatus.COMPLETED, 0) < TASKS, during
        ArmoniKEvents(channel).wait_for_result_availability(list(expected), session_id)

        counts = tasks.count_tasks_by_status(Task.session_id == session_id)
        retries = [t.id for t in _all_tasks(tasks, session_id) if t.retry_of_ids]
        results = ArmoniKResults(channel)
        outputs = {rid: results.download_result_data(rid, session_id) for rid in expected}
    logs = (deployment.generated / "logs" / "supervisor.log").read_text()
    assert logs.count("killed by signal 9") >= kills, logs
    assert outputs == expected, "every result holds its own task's output"
    agents = "".join(path.read_text() for path in (deployment.generated / "logs").glob("*agent*.log"))
    print(
        f"{kills} kills, {agents.count('waiting to run it again')} tasks run again on a restarted worker, "
        f"task statuses during the kills: {during}, at the end: {counts}"
    )
    assert counts == {TaskStatus.COMPLETED: TASKS}, f"no task retried, every one completed once: {counts}"
    assert retries == [], f"tasks that are retries of another: {retries}"
