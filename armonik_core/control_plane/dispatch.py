"""Moving ready tasks from the state store's outbox to the partition queues.

The store records ready tasks in its outbox within the transaction that made them ready; publishing to
the queue happens after commit, then the outbox rows are cleared. A crash in between leaves the rows,
which `recover` publishes again at start-up: a task can be published twice (consumers acquire tasks with
a conditional update, so a duplicate is skipped) but never zero times. A queue that refuses a publication
(a broker restarting) does not fail the request whose change is committed: the rows stay in the outbox and
are published again in the background, with a growing pause, until the queue takes them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from armonik_core.adapters.queue.base import QueueMessage, TaskQueue
from armonik_core.adapters.state.base import StateStore

log = logging.getLogger("armonik.dispatch")


class TaskDispatcher:
    def __init__(self, state: StateStore, queue: TaskQueue, outbox: bool = True) -> None:
        """`outbox=False` when the state store keeps none (the queue is rebuilt from the state): publishing
        then needs no write to clear it, which would be a wasted transaction on every submission and task."""
        self._state = state
        self._queue = queue
        self._outbox = outbox
        self._published: dict[str, asyncio.Event] = {}
        self._retry: asyncio.Task[None] | None = None

    async def publish(self, messages: Sequence[QueueMessage]) -> None:
        if not messages:
            return
        if not self._outbox:
            await self._publish(messages)
            return
        try:
            await self._publish(messages)
        except Exception as exc:
            log.warning(
                "could not publish %d ready tasks now; they stay in the outbox and are published again: %s",
                len(messages),
                exc,
            )
            if self._retry is None or self._retry.done():
                self._retry = asyncio.get_running_loop().create_task(self._republish())

    async def _republish(self, first_pause: float = 0.5, longest_pause: float = 10.0) -> None:
        pause = first_pause
        while True:
            await asyncio.sleep(pause)
            try:
                await self.recover()
                return
            except Exception as exc:
                log.warning("the queue still refuses the outbox's tasks (next try in %g s): %s", pause, exc)
                pause = min(pause * 2, longest_pause)

    async def close(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
            await asyncio.gather(self._retry, return_exceptions=True)

    async def _publish(self, messages: Sequence[QueueMessage]) -> None:
        await self._queue.publish(messages)
        if self._outbox:
            await self._state.clear_outbox([m.task_id for m in messages])
        for partition in {m.partition_id for m in messages}:
            self._signal(partition).set()

    def wake_all(self) -> None:
        """Wake every wait for publication (the control plane is stopping)."""
        for signal in self._published.values():
            signal.set()

    def _signal(self, partition_id: str) -> asyncio.Event:
        return self._published.setdefault(partition_id, asyncio.Event())

    async def wait_for_publication(self, partition_id: str, timeout: float) -> None:
        """Return when tasks are published on the partition (or after `timeout`): agents waiting for work
        wake at once instead of polling the queue."""
        signal = self._signal(partition_id)
        signal.clear()
        try:
            await asyncio.wait_for(signal.wait(), timeout)
        except asyncio.TimeoutError:
            pass

    async def recover(self) -> int:
        """Publish whatever a previous run committed but did not confirm published."""
        total = 0
        while True:
            pending = await self._state.pending_outbox()
            if not pending:
                break
            await self._publish(pending)
            total += len(pending)
        if total:
            log.info("re-published %d ready tasks left in the outbox", total)
        return total
