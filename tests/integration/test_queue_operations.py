"""The control plane's operations on a queue of its own: publication of ready tasks through the outbox
(`TaskDispatcher`), and acknowledgement of the tasks agents finished (`ComputeGateway`).

The state store is the embedded SQLite store, the queue the in-memory one behind a gate the test opens and
closes (a broker that is slow to confirm, or refuses): the requests that made tasks ready must not wait for
the queue, nothing may be lost, and publications that pile up leave together. Queue operations are broker
round trips: the outcomes an agent reports together are acknowledged together."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from armonik_core.adapters.queue.base import Lease, QueueMessage
from armonik_core.adapters.queue.memory import MemoryQueue
from armonik_core.adapters.state.base import AcquireRequest, FinishRequest, TaskAcquisition
from armonik_core.adapters.state.sqlite import SqliteStateStore
from armonik_core.control_plane.context import Backends
from armonik_core.control_plane.dispatch import TaskDispatcher
from armonik_core.domain.options import TaskOptions
from armonik_core.domain.outcomes import DataCompletion, OutcomeKind, TaskOutcome
from armonik_core.domain.records import Partition, Result, Session, Task
from armonik_core.domain.statuses import ResultStatus, SessionStatus, TaskStatus
from armonik_core.gateway import codec
from armonik_core.gateway.auth import GatewayKeys
from armonik_core.gateway.server import ComputeGateway
from armonik_core.ids import new_id

SID = "session"


class GatedQueue(MemoryQueue):
    """The in-memory queue, whose publications wait for `gate` and fail while `refusing` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.gate.set()
        self.refusing = False
        self.batches: list[int] = []

        self.acks: list[int] = []

    async def ack(self, leases: Sequence[Lease]) -> None:
        self.acks.append(len(leases))
        await super().ack(leases)

    async def publish(self, messages: Sequence[QueueMessage]) -> None:
        await self.gate.wait()
        if self.refusing:
            raise ConnectionError("the broker is restarting")
        self.batches.append(len(messages))
        await super().publish(messages)


async def prepare(state: SqliteStateStore) -> None:
    await state.upsert_partitions([Partition("default")])
    options = TaskOptions(partition_id="default", max_retries=1)
    await state.create_session(Session(SID, SessionStatus.RUNNING, ["default"], options, time.time()))


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStateStore]:
    state = SqliteStateStore(tmp_path / "state.db", synchronous="NORMAL")
    await prepare(state)
    yield state
    await state.close()


async def ready_tasks(store: SqliteStateStore, count: int) -> list[QueueMessage]:
    """`count` tasks submitted ready to run: their messages, in the outbox until published."""
    payload = Result(new_id(), SID, "payload", ResultStatus.COMPLETED, time.time(), owner_task_id=SID)
    outputs = [Result(new_id(), SID, "out", ResultStatus.CREATED, time.time()) for _ in range(count)]
    await store.create_results(SID, [payload, *outputs])
    options = TaskOptions(partition_id="default", max_retries=1)
    tasks = []
    for output in outputs:
        task_id = new_id()
        tasks.append(
            Task(
                task_id,
                SID,
                TaskStatus.CREATING,
                options,
                payload.result_id,
                time.time(),
                [output.result_id],
                [],
                [SID],
                initial_task_id=task_id,
            )
        )
    return await store.submit_tasks(SID, tasks)


async def until(condition: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_a_request_does_not_wait_for_the_queue_and_nothing_is_lost(store: SqliteStateStore) -> None:
    queue = GatedQueue()
    dispatcher = TaskDispatcher(store, queue)
    queue.gate.clear()  # the broker is slow to confirm
    first = await ready_tasks(store, 1)
    await asyncio.wait_for(dispatcher.publish(first), 1.0)
    # Publications made while the first one is under way leave together, in one batch, after it.
    later = [await ready_tasks(store, 2), await ready_tasks(store, 3)]
    for messages in later:
        await asyncio.wait_for(dispatcher.publish(messages), 1.0)
    assert len(await store.pending_outbox()) == 6, "in the outbox until the queue confirms"

    queue.gate.set()
    await until(lambda: queue.batches == [1, 5])
    assert await queue.depth("default") == 6
    await until_outbox_empty(store)
    await dispatcher.close()


async def until_outbox_empty(store: SqliteStateStore) -> None:
    deadline = time.monotonic() + 5
    while await store.pending_outbox():
        assert time.monotonic() < deadline, "the outbox was not cleared"
        await asyncio.sleep(0.01)


async def test_closing_publishes_what_is_pending(store: SqliteStateStore) -> None:
    queue = GatedQueue()
    dispatcher = TaskDispatcher(store, queue)
    queue.gate.clear()
    await dispatcher.publish(await ready_tasks(store, 4))
    closing = asyncio.ensure_future(dispatcher.close())
    await asyncio.sleep(0.05)
    assert not closing.done(), "closing waits for the pending publication"
    queue.gate.set()
    await asyncio.wait_for(closing, 2.0)
    assert await queue.depth("default") == 4
    assert await store.pending_outbox() == []


async def test_a_refused_publication_stays_in_the_outbox_and_is_published_once_the_queue_is_back(
    store: SqliteStateStore,
) -> None:
    queue = GatedQueue()
    dispatcher = TaskDispatcher(store, queue)
    queue.refusing = True
    await asyncio.wait_for(dispatcher.publish(await ready_tasks(store, 2)), 1.0)
    await asyncio.sleep(0.1)  # the publication failed: the retry loop runs
    # Tasks made ready while the queue refuses are not lost either: the retry publishes the whole outbox.
    await asyncio.wait_for(dispatcher.publish(await ready_tasks(store, 3)), 1.0)
    assert len(await store.pending_outbox()) == 5

    queue.refusing = False
    await until(lambda: queue.batches != [], timeout=5.0)
    await until_outbox_empty(store)
    assert await queue.depth("default") == 5
    await dispatcher.close()


class SlowOutboxStore(SqliteStateStore):
    """The embedded store, whose reads of an empty outbox return only once `release` is set: a read that
    ran before a commit but answers after it."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, synchronous="NORMAL")
        self.release = asyncio.Event()
        self.release.set()
        self.empty_reads_waiting = 0

    async def pending_outbox(self, limit: int = 10_000) -> list[QueueMessage]:
        rows = await super().pending_outbox(limit)
        if not rows:
            self.empty_reads_waiting += 1
            try:
                await self.release.wait()
            finally:
                self.empty_reads_waiting -= 1
        return rows


async def test_tasks_left_to_the_outbox_while_the_retry_reads_it_are_published_too(tmp_path: Path) -> None:
    """The retry publishes the outbox until a read finds it empty; tasks made ready while that last read
    runs are left to the outbox (the queue still looks unavailable) and must not wait there for the next
    start of the control plane."""
    store = SlowOutboxStore(tmp_path / "state.db")
    await prepare(store)
    queue = GatedQueue()
    dispatcher = TaskDispatcher(store, queue)
    try:
        queue.refusing = True
        await dispatcher.publish(await ready_tasks(store, 1))
        await asyncio.sleep(0.1)  # the publication failed: the retry waits before its first pass
        queue.refusing = False
        store.release.clear()
        await until(lambda: store.empty_reads_waiting > 0, timeout=5.0)  # the retry's last read, under way
        await dispatcher.publish(await ready_tasks(store, 2))
        store.release.set()
        await until(lambda: queue.batches == [1, 2], timeout=5.0)
        assert await queue.depth("default") == 3
    finally:
        await dispatcher.close()
        await store.close()


async def test_the_outcomes_of_an_exchange_are_acknowledged_in_one_call(store: SqliteStateStore) -> None:
    queue = GatedQueue()
    dispatcher = TaskDispatcher(store, queue)
    backends = Backends(store, None, queue, dispatcher, None)  # type: ignore[arg-type]
    gateway = ComputeGateway(backends, GatewayKeys(b"secret"))
    await dispatcher.publish(await ready_tasks(store, 3))
    acquire = {"partition_id": "default", "agent_id": "agent", "hostname": "host", "wait_seconds": 2.0}
    taken = await gateway.exchange({"acquire": {**acquire, "max_tasks": 3}}, "default")
    assert len(taken) == 3

    failed = codec.to_wire(TaskOutcome(OutcomeKind.ERROR, "the worker said no"))
    finished = [{"lease": item.lease, "agent_id": "agent", "outcome": failed} for item in taken]
    assert await gateway.exchange({"finished": finished}, "default") == []
    assert queue.acks == [3], "one acknowledgement for the three outcomes"
    assert await queue.depth("default") == 0
    for item in taken:
        assert (await store.get_task(item.task.task_id)).status is TaskStatus.ERROR
    await dispatcher.close()


class CountingStore(SqliteStateStore):
    """The embedded store, keeping the size of every batch of acquisitions and outcomes it was given."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, synchronous="NORMAL")
        self.acquired: list[int] = []
        self.finished: list[int] = []

    async def acquire_tasks(self, requests: Sequence[AcquireRequest]) -> list[TaskAcquisition | Exception]:
        self.acquired.append(len(requests))
        return await super().acquire_tasks(requests)

    async def finish_tasks(self, requests: Sequence[FinishRequest]) -> list[list[QueueMessage] | Exception]:
        self.finished.append(len(requests))
        return await super().finish_tasks(requests)


async def test_an_exchange_calls_the_state_store_once_and_a_refused_outcome_holds_back_no_other(
    tmp_path: Path,
) -> None:
    """An exchange's acquisitions are one call to the state store, its outcomes another; an outcome the
    gateway refuses (it names a result outside its run) is left out, and the others are recorded and
    acknowledged."""
    store = CountingStore(tmp_path / "state.db")
    await prepare(store)
    queue = GatedQueue()
    dispatcher = TaskDispatcher(store, queue)
    backends = Backends(store, None, queue, dispatcher, None)  # type: ignore[arg-type]
    gateway = ComputeGateway(backends, GatewayKeys(b"secret"))
    try:
        await dispatcher.publish(await ready_tasks(store, 3))
        acquire = {"partition_id": "default", "agent_id": "agent", "hostname": "host", "wait_seconds": 2.0}
        taken = await gateway.exchange({"acquire": {**acquire, "max_tasks": 3}}, "default")
        assert len(taken) == 3 and store.acquired == [3]

        failed = codec.to_wire(TaskOutcome(OutcomeKind.ERROR, "the worker said no"))
        stray = TaskOutcome(OutcomeKind.SUCCESS, completions=[DataCompletion(new_id(), 1, b"elsewhere")])
        outcomes = [failed, codec.to_wire(stray), failed]
        finished = [
            {"lease": item.lease, "agent_id": "agent", "outcome": outcome}
            for item, outcome in zip(taken, outcomes, strict=True)
        ]
        assert await gateway.exchange({"finished": finished}, "default") == []
        assert store.finished == [2], "the refused outcome never reaches the store"
        assert queue.acks == [2]
        statuses = [(await store.get_task(item.task.task_id)).status for item in taken]
        assert statuses == [TaskStatus.ERROR, TaskStatus.DISPATCHED, TaskStatus.ERROR]
    finally:
        await dispatcher.close()
        await store.close()


class FailingStore(CountingStore):
    """The counting store, failing every batch of outcomes (`failing_finish`) or of acquisitions."""

    failing_finish = False
    failing_acquire = False

    async def acquire_tasks(self, requests: Sequence[AcquireRequest]) -> list[TaskAcquisition | Exception]:
        if self.failing_acquire:
            raise OSError("disk I/O error")
        return await super().acquire_tasks(requests)

    async def finish_tasks(self, requests: Sequence[FinishRequest]) -> list[list[QueueMessage] | Exception]:
        if self.failing_finish:
            raise OSError("disk I/O error")
        return await super().finish_tasks(requests)


@pytest.fixture
async def failing(tmp_path: Path) -> AsyncIterator[tuple[FailingStore, GatedQueue, ComputeGateway]]:
    store = FailingStore(tmp_path / "state.db")
    await prepare(store)
    queue = GatedQueue()
    dispatcher = TaskDispatcher(store, queue)
    backends = Backends(store, None, queue, dispatcher, None)  # type: ignore[arg-type]
    yield store, queue, ComputeGateway(backends, GatewayKeys(b"secret"))
    await dispatcher.close()
    await store.close()


ACQUIRE = {"partition_id": "default", "agent_id": "agent", "hostname": "host", "wait_seconds": 0.0}
FAILED = codec.to_wire(TaskOutcome(OutcomeKind.ERROR, "the worker said no"))


async def _taken_then_more_waiting(
    store: FailingStore, queue: GatedQueue, gateway: ComputeGateway
) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """Two tasks taken by the agent, their outcomes to report, and two more tasks waiting in the queue."""
    await gateway._b.dispatcher.publish(await ready_tasks(store, 4))
    await until(lambda: sum(queue.batches) == 4)
    taken = await gateway.exchange({"acquire": {**ACQUIRE, "max_tasks": 2}}, "default")
    assert len(taken) == 2
    return taken, [{"lease": item.lease, "agent_id": "agent", "outcome": FAILED} for item in taken]


async def test_the_outcomes_and_the_acquisitions_of_an_exchange_share_one_transaction(
    failing: tuple[FailingStore, GatedQueue, ComputeGateway],
) -> None:
    store, queue, gateway = failing
    taken, finished = await _taken_then_more_waiting(store, queue, gateway)
    before = store._engine.generation
    again = await gateway.exchange({"finished": finished, "acquire": {**ACQUIRE, "max_tasks": 2}}, "default")
    assert store._engine.generation - before == 2, "one transaction (the generation moves twice per commit)"
    assert len(again) == 2 and store.finished == [2] and store.acquired == [2, 2]
    assert queue.acks == [2]
    for item in taken:
        assert (await store.get_task(item.task.task_id)).status is TaskStatus.ERROR
    for item in again:
        assert (await store.get_task(item.task.task_id)).status is TaskStatus.DISPATCHED


async def test_outcomes_that_cannot_be_recorded_do_not_lose_the_tasks_taken_with_them(
    failing: tuple[FailingStore, GatedQueue, ComputeGateway],
) -> None:
    """The tasks taken are the agent's all the same; the outcomes' leases are not acknowledged (they run
    out, and another agent runs those tasks again)."""
    store, queue, gateway = failing
    taken, finished = await _taken_then_more_waiting(store, queue, gateway)
    store.failing_finish = True
    again = await gateway.exchange({"finished": finished, "acquire": {**ACQUIRE, "max_tasks": 2}}, "default")
    assert len(again) == 2 and queue.acks == []
    for item in taken:
        assert (await store.get_task(item.task.task_id)).status is TaskStatus.DISPATCHED
    store.failing_finish = False
    assert await gateway.exchange({"finished": finished}, "default") == []  # the same handles, still good
    assert queue.acks == [2]


async def test_acquisitions_that_fail_do_not_lose_the_outcomes_reported_with_them(
    failing: tuple[FailingStore, GatedQueue, ComputeGateway],
) -> None:
    store, queue, gateway = failing
    taken, finished = await _taken_then_more_waiting(store, queue, gateway)
    store.failing_acquire = True
    with pytest.raises(OSError):
        await gateway.exchange({"finished": finished, "acquire": {**ACQUIRE, "max_tasks": 2}}, "default")
    assert queue.acks == [2]
    for item in taken:
        assert (await store.get_task(item.task.task_id)).status is TaskStatus.ERROR
