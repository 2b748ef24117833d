"""The agent's health checks of its worker (`WorkerClient`) against the official worker SDK's process."""

from __future__ import annotations

from pathlib import Path

from armonik_core.polling_agent.settings import ChannelSettings
from armonik_core.polling_agent.worker_client import WorkerClient
from tests.integration.agent_harness import Sockets, start_worker, stop_worker


async def test_a_worker_back_is_not_judged_by_an_early_check_made_while_it_was_down(tmp_path: Path) -> None:
    """The end of the call a worker died in starts the next task's early check, which fails; once
    `wait_healthy` has seen the worker back, the next task must not be given back on that stale answer."""
    sockets = Sockets(tmp_path)
    client = WorkerClient(ChannelSettings(str(sockets.worker)), early_check_validity=60.0)
    try:
        client.check_early(timeout=1.0)  # no worker yet: this check fails
        assert not await client.check(timeout=1.0)
        worker = start_worker(sockets)
        try:
            assert await client.wait_healthy(retries=300, delay=0.1, timeout=1.0)
            assert await client.check_before_task(timeout=1.0)
        finally:
            stop_worker(worker)
    finally:
        await client.close()
