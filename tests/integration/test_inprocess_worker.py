"""What only an in-process worker (`Worker__Module`) has: loading the processor, and a processor that runs on
after the agent gave up on its call. Everything the processor and the agent do together (outcomes, subtasks,
created results, delegation, timeouts, cancellations) runs in both modes in `test_polling_agent_run.py` and
`test_polling_agent_lifecycle.py`."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from armonik_core.config import ConfigurationError
from armonik_core.domain.outcomes import OutcomeKind
from armonik_core.polling_agent.inprocess import RESTART_EXIT_CODE, load_processor
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
