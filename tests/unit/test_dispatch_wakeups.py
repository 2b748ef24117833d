"""How acquisitions waiting for work are woken (`TaskDispatcher.wait_for_publication`).

An agent's long poll looks at the queue, finds it empty and waits for a publication. A publication that
lands between the look and the wait must not be missed (the task would wait for the next recheck, a second
later), and waits that time out must leave nothing behind."""

from __future__ import annotations

import asyncio
import time

from armonik_core.adapters.queue.base import QueueMessage
from armonik_core.adapters.queue.memory import MemoryQueue
from armonik_core.control_plane.dispatch import TaskDispatcher


def dispatcher() -> TaskDispatcher:
    # Without an outbox the dispatcher never touches the state store.
    return TaskDispatcher(state=None, queue=MemoryQueue(), outbox=False)  # type: ignore[arg-type]


def message(task_id: str, partition: str = "p") -> QueueMessage:
    return QueueMessage(task_id, "s", partition)


async def test_a_publication_between_the_look_and_the_wait_is_not_missed() -> None:
    tasks = dispatcher()
    seen = tasks.publications("p")  # the long poll looks at the queue: empty
    await tasks.publish([message("t1")])  # a task is published before it starts waiting
    began = time.monotonic()
    await tasks.wait_for_publication("p", 5.0, seen)
    assert time.monotonic() - began < 1.0
    assert tasks.waiting("p") == 0


async def test_a_waiting_acquisition_wakes_at_the_publication_of_its_partition_only() -> None:
    tasks = dispatcher()
    mine = asyncio.ensure_future(tasks.wait_for_publication("p", 5.0, tasks.publications("p")))
    other = asyncio.ensure_future(tasks.wait_for_publication("q", 5.0, tasks.publications("q")))
    await asyncio.sleep(0)
    assert (tasks.waiting("p"), tasks.waiting("q")) == (1, 1)
    await tasks.publish([message("t1", "p")])
    await asyncio.wait_for(mine, 1.0)
    assert not other.done()
    other.cancel()
    await asyncio.gather(other, return_exceptions=True)
    assert tasks.waiting("q") == 0, "a cancelled wait leaves nothing behind"


async def test_a_wait_ends_after_its_timeout_and_leaves_nothing_behind() -> None:
    tasks = dispatcher()
    for _ in range(3):
        began = time.monotonic()
        await tasks.wait_for_publication("p", 0.05, tasks.publications("p"))
        assert time.monotonic() - began >= 0.04
    assert tasks.waiting("p") == 0


async def test_wake_all_ends_every_wait() -> None:
    tasks = dispatcher()
    waits = [
        asyncio.ensure_future(tasks.wait_for_publication(partition, 30.0, tasks.publications(partition)))
        for partition in ("p", "p", "q")
    ]
    await asyncio.sleep(0)
    tasks.wake_all()
    await asyncio.wait_for(asyncio.gather(*waits), 1.0)
