"""The polling agent's life around a task on a real SDK worker (`agent_harness`): timeouts, the start it reports
and when, cancellation seen in a heartbeat, shutdown within and past the grace delay, waiting for a healthy
worker, and the command refusing an invalid configuration."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from armonik_core.adapters.objects.filesystem import FilesystemObjectStorage
from armonik_core.domain.outcomes import OutcomeKind
from armonik_core.polling_agent.task_runner import START_REPORT_DELAY
from tests.integration.agent_harness import (
    ROOT,
    FakeBackend,
    Running,
    Sockets,
    agent_settings,
    files_left,
    spare_files,
    start_agent,
    start_worker,
    stop_worker,
)


async def test_a_task_longer_than_max_duration_times_out(running: Running, tmp_path: Path) -> None:
    marker = tmp_path / "wake-up"
    acquired = await running.backend.submit(
        {"action": "sleep", "seconds": 5, "marker": str(marker)}, max_duration=0.4
    )
    began = time.monotonic()
    outcome = await running.backend.outcome(acquired)
    elapsed = time.monotonic() - began
    marker.touch()  # free the worker
    assert outcome.kind is OutcomeKind.TIMEOUT, outcome.message
    assert "DEADLINE_EXCEEDED" in outcome.message
    assert elapsed < 3


async def test_a_long_task_reports_its_start_with_the_agents_own_times(
    running: Running, tmp_path: Path
) -> None:
    """A task still running after a moment has its start reported on its own, a little after the worker was
    called: the report carries when the inputs were staged and the worker called, not the moment it left."""
    marker = tmp_path / "never"
    acquired = await running.backend.submit({"action": "sleep", "seconds": 0.5, "marker": str(marker)})
    outcome = await running.backend.outcome(acquired)
    assert outcome.kind is OutcomeKind.SUCCESS
    [(task_id, fetched_at, started_at, reported_at)] = running.backend.start_reports
    assert task_id == acquired.task.task_id
    assert fetched_at is not None and started_at is not None
    assert fetched_at <= started_at < reported_at
    assert reported_at - started_at >= 0.05, "the report leaves a moment after the start it records"


async def test_a_start_due_while_the_inputs_are_staged_waits_for_the_workers_call(
    running: Running, tmp_path: Path
) -> None:
    """Staging slower than START_REPORT_DELAY: the task is reported started once the worker has it (as
    upstream, after its inputs are fetched), with the times of that call, not when the report came due."""
    running.backend.results_delay = 3 * START_REPORT_DELAY
    submitted = time.time()
    acquired = await running.backend.submit(
        {"action": "sleep", "seconds": 0.5, "marker": str(tmp_path / "no")}
    )
    outcome = await running.backend.outcome(acquired)
    running.backend.results_delay = 0.0
    assert outcome.kind is OutcomeKind.SUCCESS
    [(_, fetched_at, started_at, reported_at)] = running.backend.start_reports
    assert fetched_at is not None and started_at is not None and outcome.processed_at is not None
    assert submitted + 3 * START_REPORT_DELAY <= fetched_at <= started_at <= reported_at
    assert outcome.processed_at - started_at >= 0.5


async def test_cancellation_seen_in_a_heartbeat_cancels_the_run(running: Running, tmp_path: Path) -> None:
    marker = tmp_path / "wake-up"
    acquired = await running.backend.submit({"action": "sleep", "seconds": 5, "marker": str(marker)})
    deadline = time.monotonic() + 5
    while acquired.task.task_id not in running.backend.started and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.2)
    assert [acquired.task.task_id] in running.backend.heartbeats
    running.backend.cancelled.add(acquired.task.task_id)
    began = time.monotonic()
    outcome = await running.backend.outcome(acquired)
    assert time.monotonic() - began < 1.0
    marker.touch()
    assert outcome.kind is OutcomeKind.CANCELLED
    await running.idle()
    assert files_left(running.shared) == []
    assert spare_files(running) == [], "a worker still busy may use its files: they are not kept"


async def test_an_agent_takes_no_task_while_its_worker_is_busy_with_a_cancelled_one(
    running: Running, tmp_path: Path
) -> None:
    """The worker goes on with a cancelled task until it returns; a task taken meanwhile would wait for it
    while another agent could run it."""
    marker = tmp_path / "wake-up"
    long = await running.backend.submit({"action": "sleep", "seconds": 5, "marker": str(marker)})
    deadline = time.monotonic() + 5
    while long.task.task_id not in running.backend.started and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    running.backend.cancelled.add(long.task.task_id)
    assert (await running.backend.outcome(long)).kind is OutcomeKind.CANCELLED

    quick = await running.backend.submit({"action": "inspect"})
    await asyncio.sleep(0.5)
    assert running.backend.queue.qsize() == 1, "the agent took a task its worker cannot run yet"
    marker.touch()  # the worker returns from the cancelled task: the agent takes the next one
    assert (await running.backend.outcome(quick)).kind is OutcomeKind.SUCCESS


async def test_shutdown_releases_a_task_still_running_after_the_grace_delay(
    tmp_path: Path, sockets: Sockets
) -> None:
    from armonik_core.polling_agent.__main__ import serve

    settings = agent_settings(tmp_path, sockets, grace_delay=0.3)
    objects = FilesystemObjectStorage(settings.objects_directory, fsync=False)
    backend = FakeBackend(objects)
    backend.requeue_released = False
    marker = tmp_path / "wake-up"
    acquired = await backend.submit({"action": "sleep", "seconds": 5, "marker": str(marker)})
    job = asyncio.create_task(serve(settings, backend, objects))
    deadline = time.monotonic() + 5
    while acquired.task.task_id not in backend.started and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert acquired.task.task_id in backend.started  # so `serve` has installed its signal handlers
    await asyncio.sleep(0.1)
    os.kill(os.getpid(), signal.SIGTERM)
    began = time.monotonic()
    await asyncio.wait_for(job, 5)
    marker.touch()
    assert time.monotonic() - began < 2
    [(task_id, outcome)] = backend.finished
    assert (task_id, outcome.kind) == (acquired.task.task_id, OutcomeKind.RELEASED)
    assert not settings.agent_channel.socket_path.exists()  # type: ignore[union-attr]
    assert not any(settings.shared_cache_folder.iterdir())


async def test_shutdown_lets_a_task_end_within_the_grace_delay(tmp_path: Path, sockets: Sockets) -> None:
    running = await start_agent(agent_settings(tmp_path, sockets, grace_delay=5))
    marker = tmp_path / "wake-up"
    acquired = await running.backend.submit({"action": "sleep", "seconds": 0.5, "marker": str(marker)})
    while acquired.task.task_id not in running.backend.started:
        await asyncio.sleep(0.02)
    running.agent.stop()
    await asyncio.sleep(0.1)
    await running.backend.submit({"action": "inspect"})  # not taken any more
    await asyncio.wait_for(running.job, 5)
    assert [(tid, o.kind) for tid, o in running.backend.finished] == [
        (acquired.task.task_id, OutcomeKind.SUCCESS)
    ]
    assert not running.settings.agent_channel.socket_path.exists()  # type: ignore[union-attr]


async def test_the_agent_waits_for_a_healthy_worker_and_gives_tasks_back_meanwhile(tmp_path: Path) -> None:
    own = Sockets(tmp_path)
    gate = tmp_path / "serving"
    gate.touch()
    worker = start_worker(own, gate)
    try:
        # Validity 0: the health check right before each task, as upstream (not the one started early).
        running = await start_agent(agent_settings(tmp_path, own, worker_check_validity=0))
        try:
            first = await running.backend.submit({"action": "inspect"})
            assert (await running.backend.outcome(first)).kind is OutcomeKind.SUCCESS

            gate.unlink()  # the worker stops serving: the next task goes back, the agent waits
            second = await running.backend.submit({"action": "inspect"})
            released = await running.backend.outcome(second)
            assert released.kind is OutcomeKind.RELEASED
            await asyncio.sleep(0.3)
            acquisitions = len(running.backend.acquisitions)
            await asyncio.sleep(0.3)
            assert len(running.backend.acquisitions) == acquisitions  # not acquiring while unhealthy
            running.backend.forget(second.task.task_id)

            gate.touch()
            outcome = await running.backend.outcome(second)
            assert outcome.kind is OutcomeKind.SUCCESS, outcome.message
        finally:
            await running.stop()
    finally:
        stop_worker(worker)


def test_the_command_refuses_an_invalid_configuration(tmp_path: Path) -> None:
    env = {**os.environ, "ComputePlane__WorkerChannel__SocketType": "carrier-pigeon"}
    done = subprocess.run(
        [sys.executable, "-m", "armonik_core.polling_agent"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert b"ComputePlane__WorkerChannel__SocketType" in done.stderr
