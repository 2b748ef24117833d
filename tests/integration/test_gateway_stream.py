"""The agents' exchanges with a real control plane process, over the gateway's long-lived stream.

Each test drives `GatewayBackend` (what every polling agent of the local target uses) against the control
plane as a user runs it, with tasks submitted through the official SDK; the control plane is killed,
restarted, stopped and frozen (SIGSTOP) to show that a broken stream costs nothing but a new one."""

from __future__ import annotations

import asyncio
import signal
import time
from datetime import timedelta
from typing import Any

import grpc
import pytest
from armonik.client import ArmoniKResults, ArmoniKSessions, ArmoniKTasks
from armonik.common import TaskDefinition, TaskOptions, TaskStatus

from armonik_core.domain.outcomes import OutcomeKind, TaskOutcome
from armonik_core.polling_agent.backend import AcquireRequest
from armonik_core.polling_agent.gateway_backend import GatewayBackend

AGENT = "stream-agent"


def request(max_tasks: int = 1, wait_seconds: float = 5.0) -> AcquireRequest:
    return AcquireRequest("default", AGENT, "test-host", wait_seconds, max_tasks)


def submit(endpoint: str, count: int) -> list[str]:
    """`count` ready tasks of a new session, submitted with the SDK; their ids in submission order."""
    with grpc.insecure_channel(endpoint) as channel:
        options = TaskOptions(max_duration=timedelta(seconds=60), max_retries=1, priority=1)
        session = ArmoniKSessions(channel).create_session(options, partition_ids=["default"])
        results = ArmoniKResults(channel)
        payload = results.create_results({"payload": b"p"}, session)["payload"].result_id
        outputs = results.create_results_metadata([f"out-{i}" for i in range(count)], session)
        definitions = [TaskDefinition(payload, [outputs[f"out-{i}"].result_id]) for i in range(count)]
        return [task.id for task in ArmoniKTasks(channel).submit_tasks(session, definitions)]


def status_of(endpoint: str, task_id: str) -> Any:
    with grpc.insecure_channel(endpoint) as channel:
        return ArmoniKTasks(channel).get_task(task_id)


async def takes_a_new_task_on_a_second_stream(backend: GatewayBackend, endpoint: str) -> None:
    (task_id,) = submit(endpoint, 1)
    (taken,) = await backend.exchange([], request())
    assert taken.task.task_id == task_id
    assert backend.streams_opened == 2


async def test_exchanges_travel_on_one_stream(control_plane: Any) -> None:
    first, second, third = submit(control_plane.endpoint, 3)
    backend = GatewayBackend(control_plane.gateway_endpoint, AGENT, credential=control_plane.credential())
    try:
        taken = await backend.exchange([], request(max_tasks=3))
        assert sorted(a.task.task_id for a in taken) == sorted([first, second, third])
        by_id = {a.task.task_id: a for a in taken}

        # Outcomes and the next acquisition in one exchange: the released task comes straight back.
        again = await backend.exchange(
            [
                (by_id[first], TaskOutcome(OutcomeKind.ERROR, "the worker said no")),
                (by_id[second], TaskOutcome(OutcomeKind.RELEASED, "given back")),
            ],
            request(max_tasks=2, wait_seconds=1.0),
        )
        assert [a.task.task_id for a in again] == [second]
        # Nothing left to take: the long poll returns empty-handed after its wait.
        assert (
            await backend.exchange([(by_id[third], TaskOutcome(OutcomeKind.ERROR, "no"))], request(1, 0.2))
            == []
        )
        assert backend.streams_opened == 1
    finally:
        await backend.close()

    failed = status_of(control_plane.endpoint, first)
    assert failed.status == TaskStatus.ERROR and "the worker said no" in failed.output.error
    assert status_of(control_plane.endpoint, second).status == TaskStatus.DISPATCHED


async def test_a_restarted_control_plane_gets_a_new_stream(control_plane: Any) -> None:
    backend = GatewayBackend(control_plane.gateway_endpoint, AGENT, credential=control_plane.credential())
    try:
        assert await backend.exchange([], request(wait_seconds=0.0)) == []
        control_plane.kill()
        control_plane.start()
        await takes_a_new_task_on_a_second_stream(backend, control_plane.endpoint)
    finally:
        await backend.close()


async def test_a_stopping_control_plane_ends_streams_and_long_polls_at_once(control_plane: Any) -> None:
    """SIGTERM gives the server a grace period of 5 s for calls under way; an idle stream and a long poll
    must not hold it that long."""
    idle = GatewayBackend(control_plane.gateway_endpoint, "idle-agent", credential=control_plane.credential())
    polling = GatewayBackend(
        control_plane.gateway_endpoint, "polling-agent", credential=control_plane.credential()
    )
    try:
        assert await idle.exchange([], request(wait_seconds=0.0)) == []
        poll = asyncio.ensure_future(polling.exchange([], request(wait_seconds=60.0)))
        await asyncio.sleep(0.5)  # the long poll is waiting on the control plane
        started = time.monotonic()
        assert control_plane.process is not None
        control_plane.process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(poll, 10.0) == []
        exit_code = await asyncio.to_thread(control_plane.process.wait, 15)
        assert exit_code == 0
        assert time.monotonic() - started < 4.0, "the server waited out its grace period"
    finally:
        await idle.close()
        await polling.close()


async def test_an_unanswered_exchange_times_out_and_the_next_one_uses_a_new_stream(
    control_plane: Any,
) -> None:
    backend = GatewayBackend(
        control_plane.gateway_endpoint, AGENT, credential=control_plane.credential(), reply_margin=0.5
    )
    assert control_plane.process is not None
    try:
        assert await backend.exchange([], request(wait_seconds=0.0)) == []
        control_plane.process.send_signal(signal.SIGSTOP)
        try:
            with pytest.raises(asyncio.TimeoutError, match="no exchange reply"):
                await backend.exchange([], request(wait_seconds=0.0))
        finally:
            control_plane.process.send_signal(signal.SIGCONT)
        await takes_a_new_task_on_a_second_stream(backend, control_plane.endpoint)
    finally:
        await backend.close()
