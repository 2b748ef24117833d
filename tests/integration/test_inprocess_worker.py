"""What only an in-process worker (`Worker__Module`) has: loading the processor, and a processor that runs on
after the agent gave up on its call. Everything the processor and the agent do together (outcomes, subtasks,
created results, delegation, timeouts, cancellations) runs in both modes in `test_polling_agent_run.py` and
`test_polling_agent_lifecycle.py`."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import grpc
import pytest
from armonik.protogen.common import agent_common_pb2 as a

from armonik_core.config import ConfigurationError
from armonik_core.domain.options import TaskOptions
from armonik_core.domain.outcomes import OutcomeKind
from armonik_core.domain.records import Task
from armonik_core.domain.statuses import TaskStatus
from armonik_core.polling_agent.agent_service import NO_TASK, AgentService, TaskRun
from armonik_core.polling_agent.backend import AcquiredTask
from armonik_core.polling_agent.inprocess import RESTART_EXIT_CODE, InProcessAgentStub, load_processor
from tests.integration.agent_harness import Sockets, agent_settings, start_agent
from tests.integration.agent_worker import process
from tests.support import run_module


def test_a_processor_is_loaded_plain_or_decorated() -> None:
    assert load_processor("tests.integration.agent_worker:process") is process
    noop = load_processor("armonik_samples.worker:dispatch")
    assert callable(noop)
    # `armonik_worker()` wraps the function; the agent calls the function itself.
    decorated = load_processor("benchmarks._noop_worker:noop")
    assert decorated.__name__ == "noop" and not hasattr(decorated, "run")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_colon_here", "expected package.module:processor"),
        ("no_such_module_xyz:processor", "cannot import no_such_module_xyz"),
        ("armonik_samples.worker:no_such_function", "has no no_such_function"),
        ("armonik_samples.worker:log.name", "is not callable"),
    ],
)
def test_an_unusable_processor_is_a_configuration_error(spec: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        load_processor(spec)


def test_the_agent_refuses_to_start_with_a_processor_it_cannot_import(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "Worker__Module": "no_such_module_xyz:processor",
        "Pollster__SharedCacheFolder": str(tmp_path),
    }
    done = run_module("armonik_core.polling_agent", env=env)
    assert done.returncode == 2, done.stderr
    assert "Worker__Module='no_such_module_xyz:processor': cannot import" in done.stderr


def test_the_pymonik_processor_is_pymoniks_own() -> None:
    from armonik_samples.pymonik_processor import processor

    assert processor.__module__ == "pymonik.worker" and processor.__name__ == "processor"


async def test_a_processor_stuck_past_its_timeout_makes_the_agent_stop_for_a_restart(
    tmp_path: Path,
) -> None:
    """The thread cannot be stopped: the agent takes no task while it runs, then stops, giving back what it
    holds, for its supervisor to start a fresh process (exit status `RESTART_EXIT_CODE`)."""
    sockets = Sockets(tmp_path)  # unused: no worker process
    settings = agent_settings(tmp_path, sockets, worker_check_retries=2, worker_check_timeout=0.2)
    running = await start_agent(settings, process)
    marker = tmp_path / "wake-up"
    try:
        stuck = await running.backend.submit(
            {"action": "sleep", "seconds": 30, "marker": str(marker)}, max_duration=0.2
        )
        outcome = await running.backend.outcome(stuck)
        assert outcome.kind is OutcomeKind.TIMEOUT, outcome.message
        waiting = await running.backend.submit({"action": "inspect"})
        await asyncio.wait_for(running.job, 10)
        assert running.agent.restart_requested
        assert RESTART_EXIT_CODE == 3
        # The next task was never run by this agent: it is still queued for another one.
        assert waiting.task.task_id not in [tid for tid, _ in running.backend.finished]
        assert running.backend.queue.qsize() == 1
    finally:
        marker.touch()
        running.agent.stop()
        await asyncio.wait_for(asyncio.gather(running.job, return_exceptions=True), 10)


async def test_a_processor_that_returns_after_its_timeout_lets_the_agent_go_on(tmp_path: Path) -> None:
    settings = agent_settings(tmp_path, Sockets(tmp_path), worker_check_retries=4, worker_check_timeout=2.0)
    running = await start_agent(settings, process)
    try:
        slow = await running.backend.submit(
            {"action": "sleep", "seconds": 0.8, "marker": "/nonexistent"}, max_duration=0.2
        )
        outcome = await running.backend.outcome(slow)
        assert outcome.kind is OutcomeKind.TIMEOUT
        began = time.monotonic()
        following = await running.backend.submit({"action": "inspect"})
        assert (await running.backend.outcome(following)).kind is OutcomeKind.SUCCESS
        assert time.monotonic() - began < 5
        assert not running.agent.restart_requested
    finally:
        await running.stop()


def test_notify_and_metadata_calls_are_answered_in_the_callers_thread(tmp_path: Path) -> None:
    """NotifyResultData and CreateResultsMetaData await nothing: the in-process stub runs them in the
    processor's thread, with the same checks and statuses, without waiting for the agent's event loop (here
    a loop that never runs: a call that needed it would never return)."""
    options = TaskOptions(max_duration=10, max_retries=1, priority=1, partition_id="default")
    task = Task(
        task_id="t1",
        session_id="s1",
        status=TaskStatus.PROCESSING,
        options=options,
        payload_id="p1",
        created_at=time.time(),
        expected_output_ids=["out"],
    )
    service = AgentService(backend=None, objects=None)  # type: ignore[arg-type]  # neither is used
    run = TaskRun(AcquiredTask(task, options, ["default"], lease="l1"), "token", tmp_path)
    service.bind(run)
    idle_loop = asyncio.new_event_loop()
    stub = InProcessAgentStub(service, idle_loop)

    def notify(result_id: str, token: str = "token") -> a.NotifyResultDataResponse:
        ids = [a.NotifyResultDataRequest.ResultIdentifier(session_id="s1", result_id=result_id)]
        return stub.NotifyResultData(a.NotifyResultDataRequest(ids=ids, communication_token=token))

    try:
        (tmp_path / "out").write_bytes(b"done")
        assert list(notify("out").result_ids) == ["out"]
        assert list(run.notified) == ["out"]
        created = stub.CreateResultsMetaData(
            a.CreateResultsMetaDataRequest(
                results=[a.CreateResultsMetaDataRequest.ResultCreate(name="extra")],
                session_id="s1",
                communication_token="token",
            )
        )
        assert [r.name for r in created.results] == ["extra"]
        assert created.results[0].result_id in run.created
        refusals = {
            "unknown result": (lambda: notify("elsewhere"), grpc.StatusCode.INVALID_ARGUMENT, "neither"),
            "wrong token": (lambda: notify("out", "other"), grpc.StatusCode.INVALID_ARGUMENT, "token"),
        }
        for what, (call, code, words) in refusals.items():
            with pytest.raises(grpc.RpcError) as refused:
                call()
            assert refused.value.code() is code, what
            assert words in (refused.value.details() or ""), what
        service.unbind()
        with pytest.raises(grpc.RpcError) as unbound:
            notify("out")
        assert unbound.value.code() is grpc.StatusCode.UNAVAILABLE
        assert unbound.value.details() == NO_TASK
    finally:
        idle_loop.close()
