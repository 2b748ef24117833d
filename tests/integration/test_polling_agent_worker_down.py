"""An agent whose worker is down: what never reached the worker goes back without a retry; the agent waits.

A real polling agent and real SDK worker processes (the worker of `agent_worker`), the backend a
recording fake. The worker is SIGKILLed between tasks: the next task's Process call cannot be sent, and is
given back (RELEASED: queued again, no retry) instead of failing as a crash, and the agent takes no task until
a worker answers again. Killed while it runs a task, the worker costs that task a crash (retried by the
control plane), and the agent waits for the worker all the same.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from armonik.client import ArmoniKResults, ArmoniKSessions, ArmoniKTasks
from armonik.common import Task as SdkTask
from armonik.common import TaskDefinition, TaskOptions, TaskStatus

from armonik_core.adapters.objects.filesystem import FilesystemObjectStorage
from armonik_core.domain.outcomes import OutcomeKind
from armonik_core.polling_agent.agent import PollingAgent
from armonik_core.polling_agent.backend import AcquiredTask
from armonik_core.polling_agent.gateway_backend import GatewayBackend
from armonik_core.polling_agent.task_runner import never_reached
from tests.integration.agent_harness import (
    Running,
    Sockets,
    agent_settings,
    start_agent,
    start_worker,
    stop_worker,
)


async def _acquisitions_stop(running: Running) -> None:
    await asyncio.sleep(0.3)
    before = len(running.backend.acquisitions)
    await asyncio.sleep(0.5)
    assert len(running.backend.acquisitions) == before, "the agent kept taking tasks without a worker"


async def _worker_has_sleeping_task(running: Running, marker: Path) -> AcquiredTask:
    """A task that sleeps until `marker` exists, once the worker has its call."""
    acquired = await running.backend.submit({"action": "sleep", "seconds": 30, "marker": str(marker)})
    while running.agent.current_task_id != acquired.task.task_id:
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.3)
    return acquired


async def test_a_task_that_never_reached_the_dead_worker_goes_back_without_a_retry(tmp_path: Path) -> None:
    own = Sockets(tmp_path)
    worker = start_worker(own)
    running = await start_agent(agent_settings(tmp_path, own, worker_check_retries=50))
    try:
        first = await running.backend.submit({"action": "inspect"})
        assert (await running.backend.outcome(first)).kind is OutcomeKind.SUCCESS

        stop_worker(worker)  # between tasks: the worker answered a moment ago, no health check is due
        second = await running.backend.submit({"action": "inspect"})
        given_back = await running.backend.outcome(second)
        assert given_back.kind is OutcomeKind.RELEASED, given_back.message
        assert "could not be reached" in given_back.message or "not ready" in given_back.message
        await _acquisitions_stop(running)
        running.backend.forget(second.task.task_id)

        worker = start_worker(own)  # back: the agent resumes and runs the task it gave back
        outcome = await running.backend.outcome(second, timeout=20)
        assert outcome.kind is OutcomeKind.SUCCESS, outcome.message
        kinds = [o.kind for task_id, o in running.backend.finished if task_id == second.task.task_id]
        assert OutcomeKind.CRASH not in kinds, kinds
    finally:
        await running.stop()
        stop_worker(worker)


async def test_a_worker_that_does_not_come_back_in_time_costs_the_task_a_crash(tmp_path: Path) -> None:
    own = Sockets(tmp_path)
    worker = start_worker(own)
    running = await start_agent(agent_settings(tmp_path, own, worker_check_retries=3))
    try:
        marker = tmp_path / "never"
        long = await _worker_has_sleeping_task(running, marker)
        stop_worker(worker)  # not restarted: one round of health checks (0.3 s) goes by without it
        crashed = await running.backend.outcome(long)
        assert crashed.kind is OutcomeKind.CRASH, crashed.message
        assert "UNAVAILABLE" in crashed.message
        await _acquisitions_stop(running)
    finally:
        await running.stop()
        stop_worker(worker)


def test_the_rule_reads_grpcs_details() -> None:
    class Failure:
        def __init__(self, details: str) -> None:
            self._details = details

        def details(self) -> str:
            return self._details

    unreached = [
        "failed to connect to all addresses; last error: UNKNOWN: unix:/w.sock: No such file or directory",
        "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:1: Connection refused",
        "Stream removed (sendmsg: Broken pipe (32))",
    ]
    for details in unreached:
        assert never_reached(Failure(details)), details  # type: ignore[arg-type]
    for details in ("Stream removed (Socket closed)", "recvmsg:Connection reset by peer", ""):
        assert not never_reached(Failure(details)), details  # type: ignore[arg-type]


class Restarter:
    """Restarts the worker whenever it dies, as the local target's supervisor does, counting its deaths."""

    def __init__(self, sockets: Sockets, delay: float = 0.3) -> None:
        self._sockets = sockets
        self._delay = delay
        self.deaths = 0
        self.process = start_worker(sockets)
        self._watch = asyncio.create_task(self._restart_dead())

    async def _restart_dead(self) -> None:
        while True:
            await asyncio.sleep(0.05)
            if self.process.poll() is not None:
                self.deaths += 1
                await asyncio.sleep(self._delay)
                self.process = start_worker(self._sockets)

    async def close(self) -> None:
        self._watch.cancel()
        await asyncio.gather(self._watch, return_exceptions=True)
        stop_worker(self.process)


#: Starts an agent whose worker is restarted whenever it dies (the `restarted_agent` fixture).
StartRestarted = Callable[..., Awaitable[tuple[Running, Restarter]]]


@pytest.fixture
async def restarted_agent(
    tmp_path: Path,
) -> AsyncIterator[StartRestarted]:
    """Starts an agent and its worker on sockets of the test's own, the worker restarted whenever it dies
    (`delay` seconds later), the agent waiting for it long enough; both stopped after the test."""
    started: list[tuple[Running, Restarter]] = []

    async def start(delay: float = 0.3) -> tuple[Running, Restarter]:
        own = Sockets(tmp_path)
        workers = Restarter(own, delay)
        running = await start_agent(agent_settings(tmp_path, own, worker_check_retries=50))
        started.append((running, workers))
        return running, workers

    yield start
    for running, workers in started:
        await running.stop()
        await workers.close()


def _outcomes(running: Running, task_id: str) -> list[OutcomeKind]:
    return [outcome.kind for tid, outcome in running.backend.finished if tid == task_id]


async def test_a_worker_killed_with_the_task_in_hand_runs_it_again_without_a_retry(
    tmp_path: Path, restarted_agent: StartRestarted
) -> None:
    running, workers = await restarted_agent()
    marker = tmp_path / "second-run"
    long = await _worker_has_sleeping_task(running, marker)
    stop_worker(workers.process)
    marker.touch()  # the second run ends at once
    outcome = await running.backend.outcome(long, timeout=30)
    assert outcome.kind is OutcomeKind.SUCCESS, outcome.message
    assert await running.backend.data(outcome, long.task.expected_output_ids[0]) == b"slept"
    assert _outcomes(running, long.task.task_id) == [OutcomeKind.SUCCESS], "one report: no crash, no retry"
    assert workers.deaths == 1

    after = await running.backend.submit({"action": "inspect"})
    assert (await running.backend.outcome(after, timeout=20)).kind is OutcomeKind.SUCCESS


async def test_nothing_of_the_dead_run_is_kept(tmp_path: Path, restarted_agent: StartRestarted) -> None:
    running, workers = await restarted_agent()
    objects = running.settings.objects_directory
    task = await running.backend.submit({"action": "die_once", "marker": str(tmp_path / "died")})
    outcome = await running.backend.outcome(task, timeout=30)
    assert outcome.kind is OutcomeKind.SUCCESS, outcome.message
    assert workers.deaths == 1
    (output,) = task.task.expected_output_ids
    assert await running.backend.data(outcome, output) == b"written by the second run"
    # The dead run's created results, its subtask and its stored data are not recorded; its object is gone.
    assert outcome.created_results == [] and outcome.subtasks == []
    assert [c.result_id for c in outcome.completions] == [output]
    stored = {p.name for p in objects.rglob("*") if p.is_file()}
    wanted = {
        running.backend.results[task.task.payload_id].opaque_id.decode(),
        outcome.completions[0].opaque_id.decode(),
    }
    assert stored == {running.backend.objects.path_of(key).name for key in wanted}
    assert _outcomes(running, task.task.task_id) == [OutcomeKind.SUCCESS]


async def test_a_task_whose_lease_was_lost_meanwhile_is_dropped_unreported(
    tmp_path: Path, restarted_agent: StartRestarted
) -> None:
    running, workers = await restarted_agent(1.0)
    backend = running.backend
    marker = tmp_path / "second-run"
    long = await _worker_has_sleeping_task(running, marker)
    backend.lease_seconds = 0.5

    async def unreachable(acquired: Sequence[AcquiredTask]) -> set[str]:
        raise ConnectionError("the control plane cannot be reached")

    backend.heartbeat = unreachable  # type: ignore[method-assign]
    stop_worker(workers.process)  # back after more than a lease: the task may be another agent's now
    marker.touch()
    while workers.deaths == 0 or workers.process.poll() is not None:
        await asyncio.sleep(0.05)
    other = await backend.submit({"action": "inspect"})
    assert (await backend.outcome(other, timeout=30)).kind is OutcomeKind.SUCCESS
    assert _outcomes(running, long.task.task_id) == [], "dropped: neither run again nor reported"


def _submit(channel: grpc.Channel, specs: list[dict[str, Any]], max_retries: int) -> tuple[str, list[str]]:
    """A session whose tasks run `specs` (the worker's JSON payloads), submitted with the SDK."""
    options = TaskOptions(
        max_duration=timedelta(seconds=60), max_retries=max_retries, priority=1, partition_id="default"
    )
    session = ArmoniKSessions(channel).create_session(options, partition_ids=["default"])
    results = ArmoniKResults(channel)
    payloads = results.create_results({f"p{i}": json.dumps(s).encode() for i, s in enumerate(specs)}, session)
    outputs = results.create_results_metadata([f"out{i}" for i in range(len(specs))], session)
    definitions = [
        TaskDefinition(payloads[f"p{i}"].result_id, [outputs[f"out{i}"].result_id]) for i in range(len(specs))
    ]
    return session, [task.id for task in ArmoniKTasks(channel).submit_tasks(session, definitions)]


def _session_tasks(endpoint: str, session: str) -> list[SdkTask]:
    with grpc.insecure_channel(endpoint) as channel:
        return ArmoniKTasks(channel).list_tasks(SdkTask.session_id == session, with_errors=True)[1]


async def test_a_poison_task_crashes_after_two_runs_each_attempt_then_fails_and_the_agent_serves_on(
    tmp_path: Path, control_plane: Any
) -> None:
    """A real control plane counts the retries: the task that kills every worker costs two worker deaths
    per attempt, ends in error after `max_retries`, and the tasks around it complete."""
    own = Sockets(tmp_path)
    workers = Restarter(own)
    settings = agent_settings(
        tmp_path, own, worker_check_retries=50, data_directory=control_plane.data_dir, agent_id="poison-agent"
    )
    backend = GatewayBackend(
        control_plane.gateway_endpoint, settings.agent_id, credential=control_plane.credential()
    )
    agent = PollingAgent(settings, backend, FilesystemObjectStorage(settings.objects_directory, fsync=False))
    job = asyncio.create_task(agent.run())
    max_retries = 1
    try:
        with grpc.insecure_channel(control_plane.endpoint) as channel:
            specs = [{"action": "inspect"}, {"action": "die"}, {"action": "inspect"}, {"action": "inspect"}]
            session, (first, poison, *others) = _submit(channel, specs, max_retries)
        deadline = time.monotonic() + 120
        while True:
            tasks = await asyncio.to_thread(_session_tasks, control_plane.endpoint, session)
            if all(t.status in (TaskStatus.COMPLETED, TaskStatus.ERROR, TaskStatus.RETRIED) for t in tasks):
                break
            assert time.monotonic() < deadline, [(t.id, t.status) for t in tasks]
            await asyncio.sleep(0.2)
        by_status = {status: sorted(t.id for t in tasks if t.status == status) for status in TaskStatus}
        assert by_status[TaskStatus.COMPLETED] == sorted([first, *others]), by_status
        assert [t.retry_of_ids for t in tasks if t.id in (first, *others)] == [[], [], []]
        assert len(by_status[TaskStatus.RETRIED]) == max_retries, by_status
        (failed,) = [t for t in tasks if t.status == TaskStatus.ERROR]
        assert failed.retry_of_ids[0] == poison and len(failed.retry_of_ids) == max_retries
        assert "UNAVAILABLE" in (failed.status_message or ""), failed.status_message
        # The last death can be reported, and the task seen in ERROR, before the restarter has looked at the
        # worker it killed: its count is read once it has settled.
        settle = time.monotonic() + 10
        while workers.deaths < 2 * (max_retries + 1) and time.monotonic() < settle:
            await asyncio.sleep(0.1)
        assert workers.deaths == 2 * (max_retries + 1), "two runs per attempt, then the crash is reported"
    finally:
        agent.stop()
        await asyncio.wait_for(job, 30)
        await backend.close()
        await workers.close()


async def test_waiting_for_the_worker_the_agent_still_hears_a_stop_and_a_cancellation(tmp_path: Path) -> None:
    own = Sockets(tmp_path)
    worker = start_worker(own)
    running = await start_agent(agent_settings(tmp_path, own, worker_check_retries=50))
    backend = running.backend
    try:
        # Cancelled while the agent waits: the task is not run again once the worker is back.
        marker = tmp_path / "marker"
        cancelled = await _worker_has_sleeping_task(running, marker)
        stop_worker(worker)
        await asyncio.sleep(0.5)
        backend.cancelled.add(cancelled.task.task_id)
        await asyncio.sleep(0.5)  # a heartbeat or more
        worker = start_worker(own)
        outcome = await backend.outcome(cancelled, timeout=30)
        assert outcome.kind is OutcomeKind.CANCELLED, outcome.message
        assert outcome.started_at is None, "the second run never started"

        # Stopped while it waits: the task is given back, not counted as a crash.
        stopped = await _worker_has_sleeping_task(running, marker)
        stop_worker(worker)
        await asyncio.sleep(0.5)
        await running.stop()
        assert _outcomes(running, stopped.task.task_id) == [OutcomeKind.RELEASED]
    finally:
        await running.stop()
        stop_worker(worker)
