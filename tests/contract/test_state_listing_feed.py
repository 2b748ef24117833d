"""What the state store answers about the tasks on every state backend: filtered, sorted, paged listings and
counts, the outbox the dispatcher publishes from, the in-flight tasks a queue is rebuilt from, and the change
feed."""

from __future__ import annotations

import time

import pytest

from armonik_core.adapters.queue.base import QueueMessage
from armonik_core.adapters.state.base import Application, StateStore
from armonik_core.domain.errors import InvalidArgument, NotFound
from armonik_core.domain.filters import Condition, FieldKind, FieldRef, Filter, ListQuery, Op, SortKey
from armonik_core.domain.records import Partition, Result
from armonik_core.domain.statuses import EventType, ResultStatus, TaskStatus
from armonik_core.ids import new_id
from tests.contract.conftest import StateBackend
from tests.contract.state_store_support import SID, Recorder, ids, results, session, settle, task, where


# -- listing ----------------------------------------------------------------------------------------------------
async def test_list_tasks_with_filters_sort_pages_and_totals(store: StateStore) -> None:
    (payload,) = await results(store, "payload", completed=True)
    outs = await results(store, *(f"out{i}" for i in range(5)))
    tasks = [
        task([out], payload, priority=i % 3, options={"tier": "gold" if i % 2 else "silver"})
        for i, out in enumerate(outs)
    ]
    await store.submit_tasks(SID, tasks)
    await store.cancel_tasks([tasks[4].task_id])

    by_priority = (SortKey(FieldRef("options.priority"), descending=True), SortKey(FieldRef("task_id")))
    total, page = await store.list_tasks(ListQuery(sort=by_priority, page=0, page_size=2))
    expected = [t.task_id for t in sorted(tasks, key=lambda t: (-t.options.priority, t.task_id))]
    assert total == 5 and [t.task_id for t in page] == expected[:2]
    total, page = await store.list_tasks(ListQuery(sort=by_priority, page=2, page_size=2))
    assert total == 5 and [t.task_id for t in page] == expected[4:]
    total, page = await store.list_tasks(ListQuery(sort=by_priority, page=3, page_size=2))
    assert total == 5 and page == []

    gold = where("options.options", FieldKind.STRING, Op.EQ, "gold", key="tier")
    total, page = await store.list_tasks(ListQuery(gold))
    assert total == 2 and {t.task_id for t in page} == {tasks[1].task_id, tasks[3].task_id}
    submitted_or_low = Filter.of(
        [Condition(FieldRef("status"), FieldKind.STATUS, Op.EQ, int(TaskStatus.CANCELLED))],
        [Condition(FieldRef("options.priority"), FieldKind.NUMBER, Op.GE, 2)],
    )
    total, page = await store.list_tasks(ListQuery(submitted_or_low))
    assert total == 2 and {t.task_id for t in page} == {tasks[2].task_id, tasks[4].task_id}
    ended = where("ended_at", FieldKind.DATE, Op.GT, 0.0)
    assert (await store.list_tasks(ListQuery(ended)))[0] == 1
    total, page = await store.list_tasks(
        ListQuery(sort=(SortKey(FieldRef("ended_at"), descending=True),), page_size=1)
    )
    assert total == 5 and page[0].task_id == tasks[4].task_id  # unset dates sort last, descending
    total, _ = await store.list_tasks(ListQuery(where("payload_id", FieldKind.STRING, Op.EQ, payload)))
    assert total == 5

    with pytest.raises(InvalidArgument, match="cannot be filtered or sorted on here"):
        await store.list_tasks(ListQuery(where("no_such_field", FieldKind.STRING, Op.EQ, "x")))
    with pytest.raises(InvalidArgument, match="page and page_size must not be negative"):
        await store.list_tasks(ListQuery(page=-1))


async def test_count_tasks_by_status(store: StateStore) -> None:
    (payload,) = await results(store, "payload", completed=True)
    (later,) = await results(store, "later")
    outs = await results(store, "a", "b", "c")
    tasks = [task([outs[0]], payload), task([outs[1]], later), task([outs[2]], payload, partition_id="gpu")]
    await store.submit_tasks(SID, tasks)
    await store.cancel_tasks([tasks[0].task_id])
    assert await store.count_tasks_by_status(Filter()) == {
        TaskStatus.CANCELLED: 1,
        TaskStatus.PENDING: 1,
        TaskStatus.SUBMITTED: 1,
    }
    gpu = where("options.partition_id", FieldKind.STRING, Op.EQ, "gpu")
    assert await store.count_tasks_by_status(gpu) == {TaskStatus.SUBMITTED: 1}


async def test_list_applications_groups_tasks(store: StateStore) -> None:
    (payload,) = await results(store, "payload", completed=True)
    outs = await results(store, *(f"o{i}" for i in range(5)))
    specs = [("b", "1"), ("a", "2"), ("a", "1"), ("b", "1"), ("", "")]
    tasks = [
        task([out], payload, application_name=name, application_version=version, application_namespace="ns")
        for out, (name, version) in zip(outs, specs, strict=True)
    ]
    await store.submit_tasks(SID, tasks)

    total, apps = await store.list_applications(ListQuery())
    assert total == 4
    assert apps == [
        Application("", "", "ns", ""),
        Application("a", "1", "ns", ""),
        Application("a", "2", "ns", ""),
        Application("b", "1", "ns", ""),
    ]
    by_version = ListQuery(
        where("options.application_name", FieldKind.STRING, Op.NE, ""),
        (
            SortKey(FieldRef("options.application_version"), descending=True),
            SortKey(FieldRef("options.application_name")),
        ),
        page=0,
        page_size=2,
    )
    total, apps = await store.list_applications(by_version)
    assert total == 3 and [(a.name, a.version) for a in apps] == [("a", "2"), ("a", "1")]
    total, apps = await store.list_applications(
        ListQuery(where("options.application_name", FieldKind.STRING, Op.EQ, "b"))
    )
    assert (total, apps) == (1, [Application("b", "1", "ns", "")])


# -- outbox, queue rebuild, change feed -------------------------------------------------------------------------
async def test_outbox_keeps_ready_tasks_until_cleared(state_backend: StateBackend) -> None:
    store = state_backend.open()
    await store.upsert_partitions([Partition("default")])
    await store.create_session(session(SID, ("default",)))
    (payload,) = await results(store, "payload", completed=True)
    outs = await results(store, "a", "b")
    tasks = [task([out], payload) for out in outs]
    await store.submit_tasks(SID, tasks)
    assert sorted(ids(await store.pending_outbox())) == sorted(t.task_id for t in tasks)
    assert len(await store.pending_outbox(limit=1)) == 1

    await store.clear_outbox([tasks[0].task_id])
    # What a restart finds (another store on the same data).
    reopened = state_backend.open()
    assert ids(await reopened.pending_outbox()) == [tasks[1].task_id]
    await reopened.clear_outbox([tasks[1].task_id, "unknown"])
    assert await store.pending_outbox() == []


async def test_without_outbox_ready_tasks_are_only_returned(state_backend: StateBackend) -> None:
    store = state_backend.open(outbox=False)
    await store.upsert_partitions([Partition("default")])
    await store.create_session(session(SID, ("default",)))
    (payload,) = await results(store, "payload", completed=True)
    (out,) = await results(store, "out")
    t = task([out], payload)
    assert ids(await store.submit_tasks(SID, [t])) == [t.task_id]
    assert await store.pending_outbox() == []


async def test_tasks_in_flight_is_what_a_queue_is_rebuilt_from(state_backend: StateBackend) -> None:
    store = state_backend.open()
    await store.upsert_partitions([Partition("default")])
    await store.create_session(session(SID, ("default",)))
    (payload,) = await results(store, "payload", completed=True)
    (later,) = await results(store, "later")
    outs = await results(store, "a", "b", "c", "d")
    queued, held, started, waiting = (
        task([outs[0]], payload, priority=5),
        task([outs[1]], payload),
        task([outs[2]], payload),
        task([outs[3]], later),
    )
    await store.submit_tasks(SID, [queued, held, started, waiting])
    assert (await store.acquire_task(held.task_id, "agent-1", "h1")).task is not None
    assert (await store.acquire_task(started.task_id, "agent-2", "h2")).task is not None
    assert await store.start_task(started.task_id, "agent-2")

    ready, running = await state_backend.open().tasks_in_flight()

    assert ready == [QueueMessage(queued.task_id, SID, "default", 5)]
    assert sorted((m.task_id, agent) for m, agent in running) == sorted(
        [(held.task_id, "agent-1"), (started.task_id, "agent-2")]
    )


async def test_listeners_hear_committed_changes_only(store: StateStore) -> None:
    recorder, removed = Recorder(), Recorder()
    store.add_listener(recorder)
    store.add_listener(removed)
    store.remove_listener(removed)
    (payload,) = await results(store, "payload", completed=True)
    (out,) = await results(store, "out")
    with pytest.raises(NotFound):
        await store.submit_tasks(SID, [task(["missing"], payload)])
    t = task([out], payload)
    await store.submit_tasks(SID, [t])
    await store.acquire_task(t.task_id, "agent", "host")
    await settle()

    kinds = [(c.kind, c.entity_id) for c in recorder.changes]
    assert kinds == [
        (EventType.NEW_RESULT, payload),
        (EventType.NEW_RESULT, out),
        (EventType.NEW_TASK, t.task_id),
        (EventType.RESULT_OWNER_UPDATE, out),
        (EventType.TASK_STATUS_UPDATE, t.task_id),
    ]
    assert (
        recorder.changes[-1].status == int(TaskStatus.DISPATCHED) and recorder.changes[-1].session_id == SID
    )
    assert removed.changes == []


async def test_times_survive_the_round_trip(store: StateStore) -> None:
    """Records come back as stored: dates to the millisecond at least, and stable when written again."""
    created = time.time()
    (rid,) = await results(store, "r")
    r = await store.get_result(rid)
    assert abs(r.created_at - created) < 1 and r.completed_at is None
    again = Result(new_id(), SID, "again", ResultStatus.CREATED, r.created_at)
    await store.create_results(SID, [again])
    assert (await store.get_result(again.result_id)).created_at == r.created_at
