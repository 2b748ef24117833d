"""Moving ready tasks from the state store's outbox to the partition queues.

The store records ready tasks in its outbox within the transaction that made them ready; publishing to
the queue happens after commit, then the outbox rows are cleared. A crash in between leaves the rows,
which `recover` publishes again at start-up: a task can be published twice (consumers acquire tasks with
a conditional update, so a duplicate is skipped) but never zero times.

Since the outbox already guarantees the publication, the request that made the tasks ready does not wait for
it: publications are handed to one background publisher, which sends whatever accumulated meanwhile in one
batch (a broker confirms a batch in about the time it confirms one message). A client's SubmitTasks then
costs its commit, not a broker's confirmation as well (1.5 ms of a 2.5 ms call on RabbitMQ here). A queue
that refuses a publication (a broker restarting) fails no request: the rows stay in the outbox and are
published again in the background, with a growing pause, until the queue takes them.

Without an outbox (the in-memory queue, rebuilt from the state store at start-up) a publication is a few
dictionary operations and is made at once.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Sequence

from armonik_core.adapters.queue.base import QueueMessage, TaskQueue
from armonik_core.adapters.state.base import StateStore

log = logging.getLogger("armonik.dispatch")

#: Publications waiting for the background publisher beyond which a request waits for them to leave.
MAX_PENDING = 50_000
#: The most tasks one publication carries (the outbox is read back in batches of the same size).
MAX_BATCH = 10_000
#: How long closing waits for the pending publications (what is left stays in the outbox).
CLOSE_WAIT = 10.0


class TaskDispatcher:
    def __init__(self, state: StateStore, queue: TaskQueue, outbox: bool = True) -> None:
        """`outbox=False` when the state store keeps none (the queue is rebuilt from the state): publishing
        then needs no write to clear it, which would be a wasted transaction on every submission and task."""
        self._state = state
        self._queue = queue
        self._outbox = outbox
        #: Publications so far, per partition: a long poll compares it before and after looking at the queue.
        self._publications: dict[str, int] = {}
        #: Acquisitions waiting for a publication, per partition, the longest waiting first. A waiter's result
        #: is True when a publication woke it, False when its time ran out.
        self._waiters: dict[str, list[asyncio.Future[bool]]] = {}
        self._retry: asyncio.Task[None] | None = None
        #: Committed ready tasks not handed to the queue yet, and the background publisher sending them.
        self._pending: list[QueueMessage] = []
        self._publisher: asyncio.Task[None] | None = None
        #: Set when tasks are left to the outbox while the retry runs (see `_republish`).
        self._left_to_outbox = False

    async def publish(self, messages: Sequence[QueueMessage]) -> None:
        """Publish tasks made ready by a committed change (in the outbox): at once without an outbox,
        otherwise in the background, unless `MAX_PENDING` publications already wait (then after them)."""
        if not messages:
            return
        if not self._outbox:
            await self._publish(messages)
            return
        if self._retry is not None and not self._retry.done():
            self._leave_to_outbox()  # the queue refuses publications: the retry publishes the outbox
            return
        self._pending.extend(messages)
        publisher = self._publisher
        if publisher is None:
            publisher = self._publisher = asyncio.get_running_loop().create_task(self._drain())
        if len(self._pending) > MAX_PENDING:
            await asyncio.shield(publisher)

    async def _drain(self) -> None:
        """Publish what is pending, in batches of what accumulated during the previous one."""
        try:
            while self._pending:
                batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
                try:
                    await self._publish(batch)
                except Exception as exc:
                    self._pending = []  # all of them are in the outbox, which the retry publishes
                    log.warning(
                        "could not publish %d ready tasks now; they stay in the outbox and are published "
                        "again: %s",
                        len(batch),
                        exc,
                    )
                    self._leave_to_outbox()
                    return
        finally:
            self._publisher = None

    async def _republish(self, first_pause: float = 0.5, longest_pause: float = 10.0) -> None:
        """Publish the outbox until the queue takes it. Tasks left to the outbox while a pass runs may have
        been committed after that pass read it: another pass follows at once."""
        pause = first_pause
        await asyncio.sleep(pause)
        while True:
            self._left_to_outbox = False
            try:
                await self.recover()
            except Exception as exc:
                log.warning("the queue still refuses the outbox's tasks (next try in %g s): %s", pause, exc)
                await asyncio.sleep(pause)
                pause = min(pause * 2, longest_pause)
                continue
            if not self._left_to_outbox:
                return

    def _leave_to_outbox(self) -> None:
        """The tasks being published are left to the outbox, which the retry publishes."""
        self._left_to_outbox = True
        if self._retry is None or self._retry.done():
            self._retry = asyncio.get_running_loop().create_task(self._republish())

    async def close(self) -> None:
        """Publish what is pending (what cannot be stays in the outbox, for the next start), then stop."""
        publisher = self._publisher
        if publisher is not None:
            try:
                await asyncio.wait_for(asyncio.shield(publisher), CLOSE_WAIT)
            except asyncio.TimeoutError:
                publisher.cancel()
                await asyncio.gather(publisher, return_exceptions=True)
        if self._retry is not None:
            self._retry.cancel()
            await asyncio.gather(self._retry, return_exceptions=True)

    async def _publish(self, messages: Sequence[QueueMessage]) -> None:
        await self._queue.publish(messages)
        if self._outbox:
            await self._state.clear_outbox([m.task_id for m in messages])
        for partition, count in collections.Counter(m.partition_id for m in messages).items():
            self._publications[partition] = self._publications.get(partition, 0) + 1
            self._wake(partition, count)

    def _wake(self, partition_id: str, count: int | None) -> None:
        """Wake `count` waits of the partition (None: all of them), the longest waiting first.

        A publication of n tasks wakes n waits, not every agent waiting for work: with many idle agents, one
        task would otherwise send all of them to the queue, where all but one find nothing. A woken wait that
        finds the task taken meanwhile (by an agent that was not waiting) simply waits again."""
        waiters = self._waiters.get(partition_id)
        while waiters and (count is None or count > 0):
            waiter = waiters.pop(0)
            if not waiter.done():  # a wait whose time ran out is not woken, and takes no wake from others
                waiter.set_result(True)
                count = None if count is None else count - 1
        if not waiters:
            self._waiters.pop(partition_id, None)

    def wake_all(self) -> None:
        """Wake every wait for publication (the control plane is stopping)."""
        for partition_id in list(self._waiters):
            self._wake(partition_id, None)

    def publications(self, partition_id: str) -> int:
        """How many publications the partition has had: read before looking at the queue, and given to
        `wait_for_publication`, it makes a publication in between end the wait at once."""
        return self._publications.get(partition_id, 0)

    def waiting(self, partition_id: str) -> int:
        """How many acquisitions wait for the partition's next publication."""
        return len(self._waiters.get(partition_id, ()))

    async def wait_for_publication(self, partition_id: str, timeout: float, seen: int) -> None:
        """Return when tasks are published on the partition after its `seen`-th publication (at once if
        that happened already), or after `timeout`: agents waiting for work wake at once instead of
        polling the queue. A future and a timer per wait: `asyncio.wait_for` on an event would add a task
        and two turns of the loop to every wake-up. A wait woken and cancelled before it could look at the
        queue (its agent went away) passes its wake on to the next wait."""
        if self.publications(partition_id) != seen:
            return
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool] = loop.create_future()
        self._waiters.setdefault(partition_id, []).append(waiter)
        timer = loop.call_later(timeout, _time_out, waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.result():
                self._wake(partition_id, 1)
            raise
        finally:
            timer.cancel()
            waiters = self._waiters.get(partition_id)
            if waiters is not None and waiter in waiters:  # timed out or cancelled: not woken
                waiters.remove(waiter)
                if not waiters:
                    del self._waiters[partition_id]

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


def _time_out(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)
