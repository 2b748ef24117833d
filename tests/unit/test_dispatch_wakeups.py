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


def waits_on(tasks: TaskDispatcher, count: int, partition: str = "p") -> list[asyncio.Future[None]]:
    return [
        asyncio.ensure_future(tasks.wait_for_publication(partition, 30.0, tasks.publications(partition)))
        for _ in range(count)
    ]


async def settle(waits: list[asyncio.Future[None]]) -> None:
    for wait in waits:
        wait.cancel()
    await asyncio.gather(*waits, return_exceptions=True)


async def test_a_publication_wakes_as_many_waits_as_it_has_tasks() -> None:
    """With many idle agents, one task must not send every one of them to the queue to find it gone."""
    tasks = dispatcher()
    waits = waits_on(tasks, 4)
    await asyncio.sleep(0)
    await tasks.publish([message("t1")])
    await asyncio.sleep(0)
    assert [wait.done() for wait in waits] == [True, False, False, False], "the longest waiting goes first"
    assert tasks.waiting("p") == 3
    await tasks.publish([message("t2"), message("t3"), message("t4", "q")])
    await asyncio.sleep(0)
    assert [wait.done() for wait in waits] == [True, True, True, False]
    await settle(waits)
    assert tasks.waiting("p") == 0


async def test_a_woken_wait_cancelled_before_it_looks_passes_its_wake_on() -> None:
    """The agent of a woken long poll went away before its poll looked at the queue: the task it would have
    taken wakes another agent instead of waiting for the next recheck."""
    tasks = dispatcher()
    waits = waits_on(tasks, 2)
    await asyncio.sleep(0)
    await tasks.publish([message("t1")])
    waits[0].cancel()  # woken (its future resolved), cancelled before it ran again
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert waits[0].cancelled()
    assert waits[1].done() and not waits[1].cancelled()
    assert tasks.waiting("p") == 0


async def test_a_timed_out_wait_takes_no_wake_from_the_others() -> None:
    tasks = dispatcher()
    early = asyncio.ensure_future(tasks.wait_for_publication("p", 0.01, tasks.publications("p")))
    waits = waits_on(tasks, 1)
    await asyncio.sleep(0.03)
    assert early.done()
    await tasks.publish([message("t1")])
    await asyncio.sleep(0)
    assert waits[0].done()
    await settle(waits)
