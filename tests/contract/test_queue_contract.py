"""The behaviour every TaskQueue backend must have; fixtures in conftest.py pick the backends."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path
from typing import Protocol

import pytest

from armonik_core.adapters.queue.base import Lease, QueueMessage, TaskQueue


class QueueBackend(Protocol):
    """What the suite needs from the `queue_backend` fixture (conftest.QueueBackend), declared here so the
    suite does not import a conftest module."""

    name: str
    lease_seconds: float
    subprocess_setup: str | None
    leases_outlive_client: bool

    def open(self) -> TaskQueue: ...

    async def advance(self, seconds: float) -> None: ...

    async def expire_leases(self) -> None: ...


REPO_ROOT = Path(__file__).resolve().parents[2]


def msg(partition: str, task: str, priority: int = 0, session: str = "s1") -> QueueMessage:
    return QueueMessage(task_id=task, session_id=session, partition_id=partition, priority=priority)


def task_ids(leases: list[Lease]) -> list[str]:
    return [lease.message.task_id for lease in leases]


async def lease_one(
    queue: TaskQueue, partition: str, lease_seconds: float, agent: str, task: str = "t1"
) -> Lease:
    """Publish one message and pull it: the lease a test then renews, releases, acks or lets expire."""
    await queue.publish([msg(partition, task)])
    (lease,) = await queue.pull(partition, 1, lease_seconds, agent)
    return lease


async def drain(queue: TaskQueue, partition: str, lease_seconds: float, batch: int = 100) -> list[Lease]:
    """Pull until the queue returns nothing, without acking."""
    taken: list[Lease] = []
    while leases := await queue.pull(partition, batch, lease_seconds, "drain"):
        taken.extend(leases)
    return taken


async def depth_once_settled(queue: TaskQueue, partition: str, expected: int, timeout: float = 5.0) -> int:
    """The partition's depth once it reads `expected`, or the last one read after `timeout` seconds.

    A count may be a moment behind the operations that precede it: ActiveMQ's statistics update the number
    of messages in flight in their own time after a dispatch, and settle acks without confirming them."""
    deadline = time.monotonic() + timeout
    while (depth := await queue.depth(partition)) != expected and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return depth


async def held_then_acked_for_good(
    queue: TaskQueue, backend: QueueBackend, partition: str, lease: Lease, other_agent: str
) -> None:
    """The lease still holds its message (no other agent gets it, the depth does not count it), and acking it
    removes the message for good: it does not come back once leases expire."""
    assert await queue.pull(partition, 1, backend.lease_seconds, other_agent) == []
    assert await depth_once_settled(queue, partition, 0) == 0
    await queue.ack([lease])
    await backend.expire_leases()
    assert await queue.pull(partition, 1, backend.lease_seconds, other_agent) == []


async def test_publish_pull_ack(queue: TaskQueue, queue_backend: QueueBackend, partition: str) -> None:
    sent = [msg(partition, f"t{i}", session=f"s{i}") for i in range(3)]
    await queue.publish(sent)

    leases = await queue.pull(partition, 10, queue_backend.lease_seconds, "agent-1")

    assert [lease.message for lease in leases] == sent
    assert [lease.deliveries for lease in leases] == [1, 1, 1]
    assert len({lease.handle for lease in leases}) == 3
    await queue.ack(leases)
    assert await depth_once_settled(queue, partition, 0) == 0
    await queue_backend.expire_leases()
    assert await queue.pull(partition, 10, queue_backend.lease_seconds, "agent-1") == []
    assert await depth_once_settled(queue, partition, 0) == 0


async def test_empty_queue_and_empty_batches(
    queue: TaskQueue, queue_backend: QueueBackend, partition: str
) -> None:
    await queue.publish([])
    await queue.ack([])
    await queue.renew([], queue_backend.lease_seconds)
    await queue.release([])

    assert await queue.pull(partition, 5, queue_backend.lease_seconds, "agent") == []
    assert await depth_once_settled(queue, partition, 0) == 0


async def test_pull_takes_at_most_max_messages(
    queue: TaskQueue, queue_backend: QueueBackend, partition: str
) -> None:
    await queue.publish([msg(partition, f"t{i}") for i in range(5)])

    first = await queue.pull(partition, 2, queue_backend.lease_seconds, "agent")
    second = await queue.pull(partition, 2, queue_backend.lease_seconds, "agent")
    third = await queue.pull(partition, 2, queue_backend.lease_seconds, "agent")

    assert (task_ids(first), task_ids(second), task_ids(third)) == (["t0", "t1"], ["t2", "t3"], ["t4"])


async def test_highest_priority_first_then_fifo(
    queue: TaskQueue, queue_backend: QueueBackend, partition: str
) -> None:
    await queue.publish([msg(partition, "low-a", 0), msg(partition, "high-a", 5), msg(partition, "mid-a", 2)])
    await queue.publish([msg(partition, "high-b", 5), msg(partition, "low-b", 0), msg(partition, "mid-b", 2)])

    one_by_one = [await queue.pull(partition, 1, queue_backend.lease_seconds, "agent") for _ in range(6)]

    assert [task_ids(leases) for leases in one_by_one] == [
        ["high-a"],
        ["high-b"],
        ["mid-a"],
        ["mid-b"],
        ["low-a"],
        ["low-b"],
    ]
    assert [leases[0].message.priority for leases in one_by_one] == [5, 5, 2, 2, 0, 0]


async def test_one_pull_returns_messages_in_priority_order(
    queue: TaskQueue, queue_backend: QueueBackend, partition: str
) -> None:
    await queue.publish([msg(partition, f"t{i}", priority=i % 3) for i in range(9)])

    leases = await queue.pull(partition, 9, queue_backend.lease_seconds, "agent")

    assert task_ids(leases) == ["t2", "t5", "t8", "t1", "t4", "t7", "t0", "t3", "t6"]


async def test_partitions_are_isolated(queue: TaskQueue, queue_backend: QueueBackend, partition: str) -> None:
    other = f"{partition}-other"
    await queue.publish([msg(partition, "mine-1"), msg(other, "theirs-1"), msg(partition, "mine-2")])

    mine = await queue.pull(partition, 10, queue_backend.lease_seconds, "agent")

    assert task_ids(mine) == ["mine-1", "mine-2"]
    assert all(lease.message.partition_id == partition for lease in mine)
    assert await depth_once_settled(queue, other, 1) == 1
    theirs = await queue.pull(other, 10, queue_backend.lease_seconds, "agent")
    assert [(lease.message.task_id, lease.message.partition_id) for lease in theirs] == [("theirs-1", other)]
    await queue.ack(mine)
    assert await depth_once_settled(queue, other, 0) == 0
    assert await queue.pull(other, 10, queue_backend.lease_seconds, "agent") == []


async def test_expired_lease_is_delivered_again(
    queue: TaskQueue, queue_backend: QueueBackend, partition: str
) -> None:
    first = await lease_one(queue, partition, queue_backend.lease_seconds, "dead-agent")

    assert await queue.pull(partition, 1, queue_backend.lease_seconds, "agent") == []
    await queue_backend.expire_leases()
    (second,) = await queue.pull(partition, 1, queue_backend.lease_seconds, "agent")

    assert second.message == first.message
    assert (first.deliveries, second.deliveries) == (1, 2)
    assert second.handle != first.handle


async def test_release_makes_message_available_at_once_in_its_place(
    queue: TaskQueue, queue_backend: QueueBackend, partition: str
) -> None:
    await queue.publish([msg(partition, "a"), msg(partition, "b"), msg(partition, "c")])
    taken = await queue.pull(partition, 2, queue_backend.lease_seconds, "agent")
    assert task_ids(taken) == ["a", "b"]

    await queue.release([taken[0]])

    assert await depth_once_settled(queue, partition, 2) == 2
    again = await queue.pull(partition, 10, queue_backend.lease_seconds, "agent")
    assert task_ids(again) == ["a", "c"]
    assert [lease.deliveries for lease in again] == [2, 1]


async def test_renew_keeps_message_leased_past_original_expiry(
    queue: TaskQueue, queue_backend: QueueBackend, partition: str
) -> None:
    lease_seconds = queue_backend.lease_seconds
    lease = await lease_one(queue, partition, lease_seconds, "agent", "long-task")

    await queue_backend.advance(lease_seconds * 0.6)
    await queue.renew([lease], lease_seconds)
    await queue_backend.advance(lease_seconds * 0.6)  # past the original expiry, within the renewed one

    await held_then_acked_for_good(queue, queue_backend, partition, lease, "other-agent")


async def test_renewed_lease_still_expires_eventually(
    queue: TaskQueue, queue_backend: QueueBackend, partition: str
) -> None:
    lease = await lease_one(queue, partition, queue_backend.lease_seconds, "agent")
    await queue.renew([lease], queue_backend.lease_seconds)

    await queue_backend.expire_leases()

    (again,) = await queue.pull(partition, 1, queue_backend.lease_seconds, "agent")
    assert (again.message.task_id, again.deliveries) == ("t1", 2)


async def test_stale_handle_cannot_ack_renew_or_release_after_redelivery(
    queue: TaskQueue, queue_backend: QueueBackend, partition: str
) -> None:
    lease_seconds = queue_backend.lease_seconds
    stale = await lease_one(queue, partition, lease_seconds, "slow-agent")
    await queue_backend.expire_leases()
    (current,) = await queue.pull(partition, 1, lease_seconds, "new-agent")
    assert current.deliveries == 2

    await queue.ack([stale])
    await queue.release([stale])
    await queue.renew([stale], lease_seconds * 100)

    # Still leased by new-agent: neither removed (ack) nor handed back (release).
    assert await queue.pull(partition, 1, lease_seconds, "third-agent") == []
    assert await depth_once_settled(queue, partition, 0) == 0
    # And the stale renew did not extend new-agent's lease.
    await queue_backend.expire_leases()
    (third,) = await queue.pull(partition, 1, lease_seconds, "third-agent")
    assert (third.message.task_id, third.deliveries) == ("t1", 3)
    # The handle of the live lease does work.
    await held_then_acked_for_good(queue, queue_backend, partition, third, "fourth-agent")


async def test_depth_counts_available_messages_only(
    queue: TaskQueue, queue_backend: QueueBackend, partition: str
) -> None:
    await queue.publish([msg(partition, f"t{i}") for i in range(5)])
    assert await depth_once_settled(queue, partition, 5) == 5

    leases = await queue.pull(partition, 2, queue_backend.lease_seconds, "agent")
    assert await depth_once_settled(queue, partition, 3) == 3

    await queue.ack(leases[:1])
    assert await depth_once_settled(queue, partition, 3) == 3
    await queue_backend.expire_leases()
    assert await depth_once_settled(queue, partition, 4) == 4
    assert await depth_once_settled(queue, f"{partition}-empty", 0) == 0


async def test_messages_survive_close_and_reopen(
    queue: TaskQueue, queue_backend: QueueBackend, partition: str
) -> None:
    await queue.publish([msg(partition, f"t{i}", priority=i % 2) for i in range(4)])
    acked = await queue.pull(partition, 1, queue_backend.lease_seconds, "agent")
    await queue.ack(acked)
    held = await queue.pull(partition, 1, queue_backend.lease_seconds, "agent")
    await queue.close()
    await queue.close()  # closing twice is harmless

    reopened = queue_backend.open()

    assert task_ids(acked) == ["t1"]
    # t3 is still leased, unless the backend gave the closed client's lease back at once.
    expected = 2 if queue_backend.leases_outlive_client else 3
    assert await depth_once_settled(reopened, partition, expected) == expected
    await queue_backend.expire_leases()
    remaining = await drain(reopened, partition, queue_backend.lease_seconds)
    assert task_ids(remaining) == ["t3", "t0", "t2"]
    assert {lease.message.task_id: lease.deliveries for lease in remaining} == {"t3": 2, "t0": 1, "t2": 1}
    assert task_ids(held) == ["t3"]


async def test_two_clients_pulling_concurrently_never_share_a_message(
    queue_backend: QueueBackend, partition: str
) -> None:
    publisher, first, second = queue_backend.open(), queue_backend.open(), queue_backend.open()
    expected = {f"t{i}" for i in range(600)}
    await publisher.publish([msg(partition, task, priority=int(task[1:]) % 4) for task in sorted(expected)])

    async def consume(client: TaskQueue, name: str) -> list[str]:
        seen: list[str] = []
        while leases := await client.pull(partition, 7, queue_backend.lease_seconds, name):
            seen.extend(task_ids(leases))
            await client.ack(leases)
        return seen

    got_first, got_second = await asyncio.gather(consume(first, "agent-1"), consume(second, "agent-2"))

    assert sorted(got_first + got_second) == sorted(expected)
    assert not set(got_first) & set(got_second)
    assert await depth_once_settled(publisher, partition, 0) == 0


async def test_ten_thousand_messages_in_large_batches(
    queue: TaskQueue, queue_backend: QueueBackend, partition: str
) -> None:
    sent = [msg(partition, f"t{i:05d}") for i in range(10_000)]

    await queue.publish(sent)
    # Leases that outlast the drain: on a real clock, short ones would expire and come back meanwhile.
    leases = await drain(queue, partition, 600.0, batch=500)
    await queue.ack(leases)

    assert task_ids(leases) == [m.task_id for m in sent]
    assert await depth_once_settled(queue, partition, 0) == 0


_HELPER = """
import asyncio, sys
from armonik_core.adapters.queue.base import QueueMessage
{setup}
async def main() -> None:
    partition, count, lease_count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    queue = make_queue()
    for start in range(0, count, 100):
        batch = range(start, min(count, start + 100))
        await queue.publish([QueueMessage(f"t{{i}}", "s", partition) for i in batch])
    lease_seconds = float(sys.argv[4])
    leases = await queue.pull(partition, lease_count, lease_seconds, "doomed-agent")
    print("ready", len(leases), flush=True)
    await asyncio.sleep(3600)
asyncio.run(main())
"""


async def test_messages_survive_sigkill_of_the_process(queue_backend: QueueBackend, partition: str) -> None:
    """A helper process publishes, leases some messages, and is SIGKILLed without closing anything."""
    if queue_backend.subprocess_setup is None:
        pytest.skip(f"{queue_backend.name} cannot be driven from a helper process")
    code = _HELPER.format(setup=queue_backend.subprocess_setup)
    python_path = [str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(python_path)}
    args = [partition, "1000", "10", str(queue_backend.lease_seconds)]
    helper = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, *args, stdout=asyncio.subprocess.PIPE, env=env, cwd=REPO_ROOT
    )
    try:
        line = await asyncio.wait_for(helper.stdout.readline(), 60) if helper.stdout else b""
    finally:
        helper.send_signal(signal.SIGKILL)
        await helper.wait()
    assert line.split() == [b"ready", b"10"]
    assert helper.returncode == -signal.SIGKILL

    queue = queue_backend.open()
    if queue_backend.leases_outlive_client:  # otherwise the 10 may already be back: the next lines check it
        assert await depth_once_settled(queue, partition, 990) == 990
    await queue_backend.advance(queue_backend.lease_seconds * 2)
    assert await depth_once_settled(queue, partition, 1000) == 1000
    leases = await drain(queue, partition, queue_backend.lease_seconds)
    assert sorted(task_ids(leases)) == sorted(f"t{i}" for i in range(1000))
    assert sorted(lease.deliveries for lease in leases) == [1] * 990 + [2] * 10


async def test_priorities_beyond_a_broker_range_come_back_unchanged(
    queue: TaskQueue, queue_backend: QueueBackend, partition: str
) -> None:
    """A broker may clamp priorities to its own range to order messages, but a lease returns the message as
    published."""
    sent = [msg(partition, "huge", 1000), msg(partition, "zero", 0), msg(partition, "negative", -5)]
    await queue.publish(sent)

    leases = await queue.pull(partition, 10, queue_backend.lease_seconds, "agent")

    assert [lease.message for lease in leases] == sent


async def test_released_and_acked_handles_are_stale(
    queue: TaskQueue, queue_backend: QueueBackend, partition: str
) -> None:
    lease_seconds = queue_backend.lease_seconds
    released = await lease_one(queue, partition, lease_seconds, "agent-1")
    await queue.release([released])
    (current,) = await queue.pull(partition, 1, lease_seconds, "agent-2")

    await queue.ack([released])
    await queue.release([released])

    assert current.deliveries == 2
    assert await queue.pull(partition, 1, lease_seconds, "agent-3") == []  # still agent-2's
    await queue.ack([current])
    await queue.ack([current])  # twice is harmless
    await queue.release([current])  # and an acked lease cannot come back
    await queue_backend.expire_leases()
    assert await queue.pull(partition, 1, lease_seconds, "agent-3") == []
    assert await depth_once_settled(queue, partition, 0) == 0
