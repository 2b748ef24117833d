"""An agent whose worker is down: what never reached the worker goes back without a retry; the agent waits.

A real polling agent and real SDK worker processes (the worker of `test_polling_agent_run`), the backend a
recording fake. The worker is SIGKILLed between tasks: the next task's Process call cannot be sent, and is
given back (RELEASED: queued again, no retry) instead of failing as a crash, and the agent takes no task until
a worker answers again. Killed while it runs a task, the worker costs that task a crash (retried by the
control plane), and the agent waits for the worker all the same.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from armonik_core.domain.outcomes import OutcomeKind
from armonik_core.polling_agent.task_runner import never_reached
from tests.integration.test_polling_agent_run import (
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


async def test_a_worker_killed_with_the_task_in_hand_costs_that_task_a_crash(tmp_path: Path) -> None:
    own = Sockets(tmp_path)
    worker = start_worker(own)
    running = await start_agent(agent_settings(tmp_path, own, worker_check_retries=50))
    try:
        marker = tmp_path / "never"
        long = await running.backend.submit({"action": "sleep", "seconds": 30, "marker": str(marker)})
        while running.agent.current_task_id != long.task.task_id:
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)  # the worker has the call
        stop_worker(worker)
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
