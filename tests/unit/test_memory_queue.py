"""The control plane's in-memory queue: order, leases, expiry, stale handles, and rebuilding held leases."""

from armonik_core.adapters.queue.base import QueueMessage
from armonik_core.adapters.queue.memory import MemoryQueue
from armonik_core.ids import new_id, new_ids


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def msg(task: str, priority: int = 0, partition: str = "p") -> QueueMessage:
    return QueueMessage(task, "s", partition, priority)


async def test_priority_then_first_in_first_out_per_partition() -> None:
    queue = MemoryQueue(Clock())
    await queue.publish([msg("a"), msg("b", 5), msg("c"), msg("d", 5), msg("x", 9, "other")])
    taken = await queue.pull("p", 10, 30.0, "agent")
    assert [lease.message.task_id for lease in taken] == ["b", "d", "a", "c"]
    assert await queue.depth("p") == 0
    assert await queue.depth("other") == 1


async def test_a_task_is_queued_once() -> None:
    queue = MemoryQueue(Clock())
    await queue.publish([msg("a"), msg("a")])
    assert await queue.depth("p") == 1


async def test_expired_leases_come_back_and_stale_handles_do_nothing() -> None:
    clock = Clock()
    queue = MemoryQueue(clock)
    await queue.publish([msg("a")])
    [first] = await queue.pull("p", 1, 10.0, "agent-1")
    assert first.handle == "a@agent-1" and first.deliveries == 1
    clock.now += 5
    await queue.renew([first], 10.0)
    clock.now += 9
    assert await queue.pull("p", 1, 10.0, "agent-2") == []  # renewed: still held
    clock.now += 2
    [second] = await queue.pull("p", 1, 10.0, "agent-2")
    assert second.deliveries == 2 and second.handle == "a@agent-2"
    await queue.ack([first])  # the lost agent's late ack
    await queue.renew([first], 100.0)
    clock.now += 11
    assert [lease.message.task_id for lease in await queue.pull("p", 1, 10.0, "agent-3")] == ["a"]


async def test_release_requeues_and_ack_removes() -> None:
    queue = MemoryQueue(Clock())
    await queue.publish([msg("a"), msg("b")])
    a, b = await queue.pull("p", 2, 10.0, "agent")
    await queue.release([a])
    await queue.ack([b])
    assert [lease.message.task_id for lease in await queue.pull("p", 5, 10.0, "agent")] == ["a"]


async def test_leases_rebuilt_after_a_restart_match_the_agents_handles() -> None:
    clock = Clock()
    queue = MemoryQueue(clock)
    held = queue.hold(msg("running"), "agent-1", 10.0)
    assert held.handle == MemoryQueue.handle_for("running", "agent-1")
    clock.now += 8
    await queue.renew([held], 10.0)  # the agent's heartbeat, with the handle it got before the restart
    clock.now += 8
    assert await queue.pull("p", 1, 10.0, "agent-2") == []
    clock.now += 3
    assert [lease.message.task_id for lease in await queue.pull("p", 1, 10.0, "agent-2")] == ["running"]


async def test_taken_messages_are_the_published_ones_whatever_their_priority() -> None:
    """The heap keeps a folded key and the ids, not the message: what is taken is rebuilt, and equal."""
    queue = MemoryQueue(Clock())
    published = [QueueMessage(f"t{p}", f"session-{p}", "p", p) for p in (0, -3, 7, 10**6, -(10**6), 1)]
    await queue.publish(published)
    taken = [lease.message for lease in await queue.pull("p", 10, 30.0, "agent")]
    assert taken == sorted(published, key=lambda m: -m.priority)


async def test_ids_of_any_form_come_back_as_published() -> None:
    """Canonical UUIDs are kept as numbers, anything else as it is: every id is taken back unchanged, with its
    count of deliveries."""
    clock = Clock()
    queue = MemoryQueue(clock)
    canonical = new_id()
    odd = [
        "t1",
        canonical.upper(),
        "{" + canonical[1:] + "}",
        canonical.replace("-", ""),
        "x" * 36,
        "",
        "+" + canonical[1:],  # what `int(..., 16)` would read, and must not
        canonical[:9] + "_" + canonical[10:],
    ]
    published = [QueueMessage(i, f"session-{n % 2}", "p", 1) for n, i in enumerate([canonical, *odd])]
    await queue.publish(published)
    await queue.publish(published)  # queued once
    assert await queue.depth("p") == len(published)
    leases = await queue.pull("p", 100, 30.0, "agent")
    assert [lease.message for lease in leases] == published
    assert {lease.deliveries for lease in leases} == {1}
    clock.now += 31  # expired: queued again, delivered a second time
    again = await queue.pull("p", 100, 30.0, "agent")
    assert [lease.message for lease in again] == published
    assert {lease.deliveries for lease in again} == {2}


async def test_a_queued_task_costs_under_180_bytes_its_id_included() -> None:
    import tracemalloc

    queue = MemoryQueue(Clock())
    ids = new_ids(50_000)
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for start in range(0, len(ids), 1000):
            # Fresh strings per message, as read from the state store.
            await queue.publish(
                [
                    QueueMessage("".join([i, ""]), "".join(["session-", "1"]), "".join(["p", ""]), 1)
                    for i in ids[start : start + 1000]
                ]
            )
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # 355 bytes with a message object and copies of the ids per task; 243 with a tuple and its id; 155 now.
    assert (after - before) / len(ids) < 180
