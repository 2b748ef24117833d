"""The state store's client-side units of work, on every state backend (`state_backend` in conftest): the same
answers and the same errors (the gRPC layer maps them to statuses), whatever stores the state.

Compute-plane units (acquire, start, finish) are in `test_state_compute_plane`. The last section checks what
only the MongoDB store has: upstream's document layout, its indexes, and exclusivity between two stores
sharing a database (two control planes), which SQLite's single writer makes moot.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import pytest

from armonik_core.adapters.queue.base import QueueMessage
from armonik_core.adapters.state import mongodb_schema
from armonik_core.adapters.state.base import Application, ResultCompletion, StateStore
from armonik_core.adapters.state.mongodb import MongoSettings, MongoStateStore
from armonik_core.config import ConfigurationError, Environment
from armonik_core.domain.changes import Change
from armonik_core.domain.errors import FailedPrecondition, InvalidArgument, NotFound
from armonik_core.domain.filters import Condition, FieldKind, FieldRef, Filter, ListQuery, Op, SortKey
from armonik_core.domain.options import TaskOptions
from armonik_core.domain.outcomes import DataCompletion, OutcomeKind, TaskOutcome
from armonik_core.domain.records import Partition, Result, Session, Task
from armonik_core.domain.sessions import SessionAction
from armonik_core.domain.statuses import EventType, ResultStatus, SessionStatus, TaskStatus
from armonik_core.ids import new_id
from tests.contract.conftest import StateBackend

SID = "session-1"


@pytest.fixture
async def store(state_backend: StateBackend) -> AsyncIterator[StateStore]:
    state = state_backend.open()
    await state.upsert_partitions([Partition("default"), Partition("gpu", priority=2)])
    await state.create_session(session(SID))
    yield state


def session(session_id: str, partitions: tuple[str, ...] = ("default", "gpu"), **options: Any) -> Session:
    return Session(
        session_id,
        SessionStatus.RUNNING,
        list(partitions),
        TaskOptions(partition_id=partitions[0], max_retries=1, **options),
        time.time(),
    )


async def results(
    store: StateStore, *names: str, completed: bool = False, sid: str = SID, **fields: Any
) -> list[str]:
    status = ResultStatus.COMPLETED if completed else ResultStatus.CREATED
    made = [Result(new_id(), sid, name, status, time.time(), owner_task_id=sid, **fields) for name in names]
    await store.create_results(sid, made)
    return [r.result_id for r in made]


def task(
    outputs: list[str],
    payload: str,
    deps: list[str] = (),  # type: ignore[assignment]
    sid: str = SID,
    **options: Any,
) -> Task:
    task_id = new_id()
    merged = {"partition_id": "default", "max_retries": 1, **options}
    return Task(
        task_id,
        sid,
        TaskStatus.CREATING,
        TaskOptions(**merged),
        payload,
        time.time(),
        list(outputs),
        list(deps),
        [sid],
        initial_task_id=task_id,
    )


async def status_of(store: StateStore, task_id: str) -> TaskStatus:
    return (await store.get_task(task_id)).status


async def result_status(store: StateStore, result_id: str) -> ResultStatus:
    return (await store.get_result(result_id)).status


def where(path: str, kind: FieldKind, op: Op, value: Any, key: str | None = None) -> Filter:
    return Filter.of([Condition(FieldRef(path, key), kind, op, value)])


def ids(messages: list[QueueMessage]) -> list[str]:
    return [m.task_id for m in messages]


class Recorder:
    """A change listener keeping every change it is told of."""

    def __init__(self) -> None:
        self.changes: list[Change] = []

    def __call__(self, changes: list[Change]) -> None:
        self.changes.extend(changes)

    def of(self, kind: EventType) -> list[Change]:
        return [c for c in self.changes if c.kind is kind]


async def settle() -> None:
    """Let the event loop run what the store scheduled on it (listeners are called on the loop)."""
    for _ in range(3):
        await asyncio.sleep(0)


# -- partitions -------------------------------------------------------------------------------------------------
async def test_partitions_are_upserted_read_and_listed(store: StateStore) -> None:
    await store.upsert_partitions(
        [Partition("gpu", ["default"], 2, 10, 50, 3, {"image": "x.y"}), Partition("cpu", priority=1)]
    )
    gpu = await store.get_partition("gpu")
    assert (gpu.parent_partition_ids, gpu.pod_reserved, gpu.pod_max, gpu.priority) == (["default"], 2, 10, 3)
    assert gpu.preemption_percentage == 50 and gpu.pod_configuration == {"image": "x.y"}
    with pytest.raises(NotFound, match="Partition not found: nope"):
        await store.get_partition("nope")
    total, page = await store.list_partitions(
        ListQuery(
            sort=(SortKey(FieldRef("priority"), descending=True), SortKey(FieldRef("partition_id"))),
            page_size=2,
        )
    )
    assert total == 3 and [p.partition_id for p in page] == ["gpu", "cpu"]
    total, page = await store.list_partitions(
        ListQuery(where("parent_partition_ids", FieldKind.ARRAY, Op.CONTAINS, "default"))
    )
    assert total == 1 and [p.partition_id for p in page] == ["gpu"]


# -- sessions ---------------------------------------------------------------------------------------------------
async def test_create_get_and_list_sessions(store: StateStore) -> None:
    with pytest.raises(NotFound, match="Partition not found: nowhere"):
        await store.create_session(session("s-bad", ("default", "nowhere")))
    with pytest.raises(NotFound, match="Session not found: s-bad"):
        await store.get_session("s-bad")
    await store.create_session(session("s-2", ("gpu",), application_name="app"))
    got = await store.get_session("s-2")
    assert got.partition_ids == ["gpu"] and got.options.application_name == "app" and got.client_submission
    assert got.status == SessionStatus.RUNNING and got.duration is None
    total, page = await store.list_sessions(
        ListQuery(
            where("partition_ids", FieldKind.ARRAY, Op.CONTAINS, "gpu"), (SortKey(FieldRef("session_id")),)
        )
    )
    assert total == 2 and [s.session_id for s in page] == ["s-2", SID]
    total, _ = await store.list_sessions(
        ListQuery(where("options.application_name", FieldKind.STRING, Op.EQ, "app"))
    )
    assert total == 1


async def test_session_actions_follow_the_domain_transitions(store: StateStore) -> None:
    with pytest.raises(FailedPrecondition, match=f"Cannot resume session {SID}: it is RUNNING"):
        await store.apply_session_action(SID, SessionAction.RESUME)
    with pytest.raises(FailedPrecondition, match="purge is only allowed from CANCELLED, CLOSED"):
        await store.apply_session_action(SID, SessionAction.PURGE)
    with pytest.raises(NotFound, match="Session not found: nope"):
        await store.apply_session_action("nope", SessionAction.CANCEL)
    closed = (await store.apply_session_action(SID, SessionAction.CLOSE)).session
    assert closed.status == SessionStatus.CLOSED and closed.closed_at is not None
    stored = await store.get_session(SID)
    assert (stored.status, stored.client_submission, stored.worker_submission) == (
        SessionStatus.CLOSED,
        False,
        False,
    )
    assert stored.duration is not None and stored.duration >= 0
    with pytest.raises(
        FailedPrecondition, match=f"Session {SID} is CLOSED: it accepts no new tasks or results"
    ):
        await results(store, "late")
    total, _ = await store.list_sessions(
        ListQuery(where("status", FieldKind.STATUS, Op.EQ, SessionStatus.CLOSED))
    )
    assert total == 1


async def test_pause_and_resume_move_the_queued_tasks(store: StateStore) -> None:
    (payload,) = await results(store, "payload", completed=True)
    out, other = await results(store, "out", "other")
    queued = task([out], payload)
    await store.submit_tasks(SID, [queued])

    await store.apply_session_action(SID, SessionAction.PAUSE)
    assert await status_of(store, queued.task_id) == TaskStatus.PAUSED
    assert await store.pending_outbox() == []
    # A task becoming ready in a paused session waits PAUSED too.
    later = task([other], payload)
    assert await store.submit_tasks(SID, [later]) == []
    assert await status_of(store, later.task_id) == TaskStatus.PAUSED

    resumed = await store.apply_session_action(SID, SessionAction.RESUME)
    assert sorted(ids(resumed.to_enqueue)) == sorted([queued.task_id, later.task_id])
    assert resumed.session.status == SessionStatus.RUNNING
    assert await status_of(store, queued.task_id) == TaskStatus.SUBMITTED
    assert sorted(ids(await store.pending_outbox())) == sorted([queued.task_id, later.task_id])


async def test_cancelling_a_session_cancels_tasks_and_aborts_results(store: StateStore) -> None:
    (payload,) = await results(store, "payload", completed=True)
    out, final, spare = await results(store, "out", "final", "spare")
    first = task([out], payload)
    second = task([final], payload, deps=[out])
    await store.submit_tasks(SID, [first, second])

    outcome = await store.apply_session_action(SID, SessionAction.CANCEL)

    assert outcome.session.status == SessionStatus.CANCELLED and outcome.session.cancelled_at is not None
    assert await status_of(store, first.task_id) == TaskStatus.CANCELLED
    assert await status_of(store, second.task_id) == TaskStatus.CANCELLED
    for rid in (out, final, spare):
        assert await result_status(store, rid) == ResultStatus.ABORTED
    assert await result_status(store, payload) == ResultStatus.COMPLETED
    assert await store.pending_outbox() == []
    with pytest.raises(FailedPrecondition, match="CANCELLED"):
        await store.submit_tasks(SID, [task([spare], payload)])


async def test_cancelling_a_session_stops_running_tasks_through_their_agents(store: StateStore) -> None:
    """A task an agent holds goes CANCELLING (the agent ends it), the others CANCELLED with their end time;
    the results still to produce are aborted, and listeners hear of every task and result that changed."""
    recorder = Recorder()
    store.add_listener(recorder)
    (payload,) = await results(store, "payload", completed=True)
    running_out, queued_out, waiting_out = await results(store, "running", "queued", "waiting")
    running, queued = task([running_out], payload), task([queued_out], payload)
    waiting = task([waiting_out], payload, deps=[running_out])
    await store.submit_tasks(SID, [running, queued, waiting])
    assert (await store.acquire_task(running.task_id, "agent-1", "host-1")).task is not None

    await store.apply_session_action(SID, SessionAction.CANCEL)

    stored = {t.task_id: t for t in await store.get_tasks([running.task_id, queued.task_id, waiting.task_id])}
    assert stored[running.task_id].status == TaskStatus.CANCELLING
    assert stored[running.task_id].ended_at is None
    for cancelled in (queued, waiting):
        assert stored[cancelled.task_id].status == TaskStatus.CANCELLED
        assert stored[cancelled.task_id].ended_at is not None
    await settle()
    task_changes = {c.entity_id: c.status for c in recorder.of(EventType.TASK_STATUS_UPDATE)}
    assert task_changes[running.task_id] == int(TaskStatus.CANCELLING)
    assert task_changes[queued.task_id] == task_changes[waiting.task_id] == int(TaskStatus.CANCELLED)
    aborted = {
        c.entity_id
        for c in recorder.of(EventType.RESULT_STATUS_UPDATE)
        if c.status == int(ResultStatus.ABORTED)
    }
    assert aborted == {running_out, queued_out, waiting_out}


async def test_purge_and_delete_drop_the_data(store: StateStore) -> None:
    (kept,) = await results(store, "kept", manual_deletion=True)
    stored, waiting = await results(store, "stored", "waiting")
    await store.complete_results(
        SID, [ResultCompletion(kept, 1, b"obj-kept"), ResultCompletion(stored, 2, b"obj-2")]
    )
    await store.apply_session_action(SID, SessionAction.CLOSE)

    purged = await store.apply_session_action(SID, SessionAction.PURGE)

    assert purged.objects_to_delete == [b"obj-2"] and purged.session.purged_at is not None
    assert await result_status(store, stored) == ResultStatus.DELETED
    assert (await store.get_result(stored)).opaque_id == b""
    assert await result_status(store, kept) == ResultStatus.COMPLETED
    assert await result_status(store, waiting) == ResultStatus.CREATED

    deleted = await store.apply_session_action(SID, SessionAction.DELETE)
    assert deleted.session.status == SessionStatus.DELETED
    assert (await store.get_session(SID)).status == SessionStatus.DELETED
    assert await store.get_results([kept, stored, waiting]) == []
    assert (await store.list_results(ListQuery(where("session_id", FieldKind.STRING, Op.EQ, SID))))[0] == 0
    with pytest.raises(FailedPrecondition, match=f"Cannot delete session {SID}: it is DELETED"):
        await store.apply_session_action(SID, SessionAction.DELETE)


async def test_stop_submission_closes_doors_one_at_a_time(store: StateStore) -> None:
    (payload,) = await results(store, "payload", completed=True)
    stopped = await store.stop_submission(SID, client=True, worker=False)
    assert (stopped.client_submission, stopped.worker_submission) == (False, True)
    with pytest.raises(FailedPrecondition, match=f"Client submission is closed for session {SID}"):
        await results(store, "late")
    # Workers may still create results; a later stop never reopens the client door.
    await store.create_results(
        SID, [Result(new_id(), SID, "w", ResultStatus.CREATED, time.time())], by_worker=True
    )
    again = await store.stop_submission(SID, client=False, worker=True)
    assert (again.client_submission, again.worker_submission) == (False, False)
    stored = await store.get_session(SID)
    assert (stored.client_submission, stored.worker_submission) == (False, False)
    with pytest.raises(FailedPrecondition, match=f"Worker submission is closed for session {SID}"):
        await store.submit_tasks(SID, [task([payload], payload)], parent_task_id="parent")


# -- results ----------------------------------------------------------------------------------------------------
async def test_create_get_and_list_results(store: StateStore) -> None:
    with pytest.raises(NotFound, match="Session not found: nope"):
        await results(store, "x", sid="nope")
    made = await results(store, "a", "b", "c")
    assert [r.name for r in sorted(await store.get_results([*made, "missing"]), key=lambda r: r.name)] == [
        "a",
        "b",
        "c",
    ]
    with pytest.raises(NotFound, match="Result not found: missing"):
        await store.get_result("missing")
    with pytest.raises(FailedPrecondition, match="A result id is already taken"):
        await store.create_results(SID, [Result(made[0], SID, "again", ResultStatus.CREATED, time.time())])
    assert (await store.get_result(made[0])).name == "a"

    query = ListQuery(
        where("session_id", FieldKind.STRING, Op.EQ, SID),
        (SortKey(FieldRef("name"), descending=True),),
        page=1,
        page_size=2,
    )
    total, page = await store.list_results(query)
    assert total == 3 and [r.name for r in page] == ["a"]
    total, page = await store.list_results(ListQuery(where("name", FieldKind.STRING, Op.STARTS_WITH, "b")))
    assert (total, [r.result_id for r in page]) == (1, [made[1]])


async def test_completing_results_releases_the_tasks_waiting_only_on_them(store: StateStore) -> None:
    payload, a, b = await results(store, "payload", "a", "b")
    out1, out2 = await results(store, "out1", "out2")
    on_a = task([out1], payload, deps=[a])
    on_ab = task([out2], payload, deps=[a, b])
    assert await store.submit_tasks(SID, [on_a, on_ab]) == []
    assert await status_of(store, on_a.task_id) == TaskStatus.PENDING

    messages = await store.complete_results(
        SID, [ResultCompletion(payload, 1, b"p"), ResultCompletion(a, 2, b"a")]
    )

    assert ids(messages) == [on_a.task_id]
    assert messages[0].partition_id == "default" and messages[0].session_id == SID
    done = await store.get_result(a)
    assert (done.status, done.size, done.opaque_id) == (ResultStatus.COMPLETED, 2, b"a") and done.completed_at
    assert await status_of(store, on_ab.task_id) == TaskStatus.PENDING
    assert ids(await store.complete_results(SID, [ResultCompletion(b, 3, b"b")])) == [on_ab.task_id]
    assert (await store.get_task(on_ab.task_id)).submitted_at is not None

    with pytest.raises(
        FailedPrecondition, match=f"Result {a} is COMPLETED: only a CREATED result can receive data"
    ):
        await store.complete_results(SID, [ResultCompletion(a, 1, b"again")])
    await store.create_session(session("s-2"))
    with pytest.raises(NotFound, match=f"Result not found: {out1} in session s-2"):
        await store.complete_results("s-2", [ResultCompletion(out1, 1, b"x")])


async def test_deleting_results_data(store: StateStore) -> None:
    done, manual = await results(store, "done", "manual", completed=True, opaque_id=b"obj")
    (waiting,) = await results(store, "waiting")
    with pytest.raises(FailedPrecondition, match=f"Results have no data to delete yet: {waiting}"):
        await store.delete_results_data(SID, [done, waiting])
    assert await result_status(store, done) == ResultStatus.COMPLETED
    with pytest.raises(NotFound, match="Result not found: nope"):
        await store.delete_results_data(SID, ["nope"])
    assert await store.delete_results_data(SID, [done]) == [b"obj"]
    assert await result_status(store, done) == ResultStatus.DELETED
    assert await store.delete_results_data(SID, [done]) == []  # already gone


# -- task submission --------------------------------------------------------------------------------------------
async def test_submission_queues_ready_tasks_and_takes_their_outputs(store: StateStore) -> None:
    recorder = Recorder()
    store.add_listener(recorder)
    (payload,) = await results(store, "payload", completed=True)
    (pending_payload,) = await results(store, "later")
    out1, out2 = await results(store, "out1", "out2")
    ready = task([out1], payload, priority=3, partition_id="gpu")
    waiting = task([out2], pending_payload)

    messages = await store.submit_tasks(SID, [ready, waiting])

    assert messages == [QueueMessage(ready.task_id, SID, "gpu", 3)]
    stored = {t.task_id: t for t in await store.get_tasks([ready.task_id, waiting.task_id])}
    assert stored[ready.task_id].status == TaskStatus.SUBMITTED and stored[ready.task_id].submitted_at
    assert (
        stored[waiting.task_id].status == TaskStatus.PENDING and stored[waiting.task_id].submitted_at is None
    )
    assert stored[ready.task_id].options.priority == 3 and stored[ready.task_id].expected_output_ids == [out1]
    assert (await store.get_result(out1)).owner_task_id == ready.task_id
    assert ids(await store.pending_outbox()) == [ready.task_id]
    await settle()
    new_tasks = recorder.of(EventType.NEW_TASK)
    assert [(c.entity_id, c.status) for c in new_tasks] == [
        (ready.task_id, int(TaskStatus.SUBMITTED)),
        (waiting.task_id, int(TaskStatus.PENDING)),
    ]
    assert new_tasks[0].record is not None
    owners = {
        c.entity_id: (c.previous_owner, c.current_owner) for c in recorder.of(EventType.RESULT_OWNER_UPDATE)
    }
    assert owners == {out1: (SID, ready.task_id), out2: (SID, waiting.task_id)}

    messages = await store.complete_results(SID, [ResultCompletion(pending_payload, 1, b"x")])
    assert ids(messages) == [waiting.task_id]


@pytest.mark.parametrize(
    ("case", "error", "message"),
    [
        ("no output", InvalidArgument, "has no expected output"),
        ("missing result", NotFound, "Result not found: missing in session"),
        ("foreign partition", FailedPrecondition, "targets partition 'nowhere', which is not one of session"),
        (
            "output completed",
            FailedPrecondition,
            "is COMPLETED: only a CREATED result can be a task's output",
        ),
        ("aborted input", FailedPrecondition, "depends on unusable results"),
        ("same output twice", InvalidArgument, "is the expected output of both"),
        ("output already owned", FailedPrecondition, "is already the output of task"),
        ("unknown session", NotFound, "Session not found: nope"),
    ],
)
async def test_invalid_submissions_are_refused_and_leave_nothing(
    store: StateStore, case: str, error: type[Exception], message: str
) -> None:
    (payload,) = await results(store, "payload", completed=True)
    out, spare, doomed = await results(store, "out", "spare", "doomed")
    owner = task([spare], payload)
    await store.submit_tasks(SID, [owner])
    victim = task([doomed], payload)
    await store.submit_tasks(SID, [victim])
    await store.cancel_tasks([victim.task_id])  # aborts `doomed`
    good = task([out], payload)
    batch = {
        "no output": [good, task([], payload)],
        "missing result": [good, task(["missing"], payload)],
        "foreign partition": [good, task([spare], payload, partition_id="nowhere")],
        "output completed": [good, task([payload], payload)],
        "aborted input": [good, task([spare], payload, deps=[doomed])],
        "same output twice": [good, task([out], payload)],
        "output already owned": [good, task([spare], payload)],
        "unknown session": [good],
    }[case]
    before, _ = await store.list_tasks(ListQuery())

    with pytest.raises(error, match=message):
        await store.submit_tasks("nope" if case == "unknown session" else SID, batch)

    assert (await store.list_tasks(ListQuery()))[0] == before
    assert await store.get_tasks([good.task_id]) == []
    assert (await store.get_result(out)).owner_task_id == SID
    assert ids(await store.pending_outbox()) == [owner.task_id]


async def test_a_worker_submission_hands_over_the_parent_output(store: StateStore) -> None:
    (payload,) = await results(store, "payload", completed=True)
    (out,) = await results(store, "out")
    parent = task([out], payload)
    await store.submit_tasks(SID, [parent])
    child = task([out], payload)
    child.created_by = parent.task_id
    child.parent_task_ids = [SID, parent.task_id]
    # A client cannot take an output that a task owns...
    with pytest.raises(
        FailedPrecondition, match=f"Result {out} is already the output of task {parent.task_id}"
    ):
        await store.submit_tasks(SID, [child])
    # ... its owner can hand it to a subtask.
    assert ids(await store.submit_tasks(SID, [child], parent_task_id=parent.task_id)) == [child.task_id]
    assert (await store.get_result(out)).owner_task_id == child.task_id
    stored = await store.get_task(child.task_id)
    assert stored.created_by == parent.task_id and stored.parent_task_ids == [SID, parent.task_id]


async def test_subtask_submitted_by_a_running_worker(store: StateStore) -> None:
    (payload,) = await results(store, "payload", completed=True)
    (out,) = await results(store, "out")
    parent = task([out], payload)
    await store.submit_tasks(SID, [parent])
    assert (await store.acquire_task(parent.task_id, "agent", "host")).task is not None
    assert await store.start_task(parent.task_id, "agent")
    sub_payload = Result(
        new_id(), SID, "sub-payload", ResultStatus.CREATED, time.time(), created_by=parent.task_id
    )
    await store.create_results(SID, [sub_payload], by_worker=True)
    sub = task([out], sub_payload.result_id)
    sub.created_by = parent.task_id
    assert await store.submit_tasks(SID, [sub], parent_task_id=parent.task_id) == []
    assert await status_of(store, sub.task_id) == TaskStatus.PENDING
    assert (await store.get_result(out)).owner_task_id == sub.task_id
    assert ids(await store.complete_results(SID, [ResultCompletion(sub_payload.result_id, 1, b"sp")])) == [
        sub.task_id
    ]
    # The parent delegated its output: it succeeds without producing it.
    assert await store.finish_task(parent.task_id, "agent", TaskOutcome(OutcomeKind.SUCCESS)) == []
    assert await status_of(store, parent.task_id) == TaskStatus.COMPLETED


# -- cancellation -----------------------------------------------------------------------------------------------
async def test_cancelling_tasks_aborts_what_they_would_produce(store: StateStore) -> None:
    (payload,) = await results(store, "payload", completed=True)
    out, final, last = await results(store, "out", "final", "last")
    first = task([out], payload)
    second = task([final], payload, deps=[out])
    third = task([last], payload, deps=[final])
    await store.submit_tasks(SID, [first, second, third])
    with pytest.raises(NotFound, match="Task not found: nope"):
        await store.cancel_tasks([first.task_id, "nope"])
    assert await status_of(store, first.task_id) == TaskStatus.SUBMITTED

    [cancelled] = await store.cancel_tasks([first.task_id])

    assert cancelled.status == TaskStatus.CANCELLED and cancelled.ended_at is not None
    assert await status_of(store, second.task_id) == TaskStatus.CANCELLED
    assert await status_of(store, third.task_id) == TaskStatus.CANCELLED
    assert [await result_status(store, r) for r in (out, final, last)] == [ResultStatus.ABORTED] * 3
    assert await store.cancelled_tasks([first.task_id, third.task_id, "nope"]) == {
        first.task_id,
        third.task_id,
    }
    assert await store.pending_outbox() == []
    # Cancelling a finished task changes nothing.
    [again] = await store.cancel_tasks([first.task_id])
    assert again.status == TaskStatus.CANCELLED


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


# -- MongoDB only: layout, indexes, two stores on one database ---------------------------------------------------
@pytest.fixture
def mongo_backend(state_backend: StateBackend) -> StateBackend:
    if state_backend.name.startswith("sqlite"):
        pytest.skip("MongoDB layout and multi-writer checks")
    return state_backend


def stored(db: Any, collection: str, key: str) -> dict[str, Any]:
    doc = db[collection].find_one({"_id": key})
    assert doc is not None, (collection, key)
    return dict(doc)


async def test_documents_follow_upstream_layout(mongo_backend: StateBackend) -> None:
    store = mongo_backend.open()
    assert isinstance(store, MongoStateStore)
    await store.upsert_partitions([Partition("default")])
    await store.create_session(session(SID, ("default",), options={"a.b": "dotted"}))
    (payload,) = await results(store, "payload", completed=True, opaque_id=b"\x01obj")
    out, dep = await results(store, "out", "dep")
    t = task([out], payload, deps=[dep], options={"$key": "v"})
    await store.submit_tasks(SID, [t])

    db = store._database  # the layout itself is under test
    assert set(db.list_collection_names()) >= {"TaskData", "Result", "SessionData", "PartitionData"}
    doc = stored(db, "TaskData", t.task_id)
    assert (
        doc["SessionId"] == SID and doc["Status"] == int(TaskStatus.PENDING) and doc["PayloadId"] == payload
    )
    assert doc["ExpectedOutputIds"] == [out] and doc["DataDependencies"] == [dep]
    assert doc["RemainingDataDependencies"] == {dep: True} and doc["InitialTaskId"] == t.task_id
    assert doc["Options"]["PartitionId"] == "default" and doc["Options"]["Options"] == {"%24key": "v"}
    assert doc["CreationDate"].microsecond % 1000 == 0 and doc["SubmittedDate"] is None
    assert stored(db, "Result", dep)["DependentTasks"] == [t.task_id]
    assert stored(db, "Result", payload)["OpaqueId"] == b"\x01obj"
    sdoc = stored(db, "SessionData", SID)
    assert sdoc["PartitionIds"] == ["default"] and sdoc["Options"]["Options"] == {"a%2Eb": "dotted"}
    assert (await store.get_session(SID)).options.options == {"a.b": "dotted"}
    assert (await store.get_task(t.task_id)).options.options == {"$key": "v"}
    names = {index["name"] for index in db["TaskData"].list_indexes()}
    assert {
        "SessionId_Status__id",
        "SessionId__id",
        "Options.PartitionId_Status",
        "OwnerPodId",
        "InitialTaskId",
    } <= names
    assert "SessionId_Status__id" in {index["name"] for index in db["Result"].list_indexes()}
    # Indexes are created once per store, idempotently: a second store on the database starts fine.
    await mongo_backend.open().get_session(SID)


async def race(backend: StateBackend, first: Awaitable[Any], second: Awaitable[Any], flip: bool) -> list[Any]:
    """Two calls at once on a real server. mongomock's find_one_and_update is not atomic between threads (it
    selects, then updates by id), so there they run one after the other, in both orders across iterations."""
    if backend.name != "mongomock":
        return list(await asyncio.gather(first, second))
    if flip:
        later = await second
        return [await first, later]
    return [await first, await second]


async def test_two_stores_never_give_a_task_to_two_agents(mongo_backend: StateBackend) -> None:
    first, second = mongo_backend.open(), mongo_backend.open()
    await first.upsert_partitions([Partition("default")])
    await first.create_session(session(SID, ("default",)))
    (payload,) = await results(first, "payload", completed=True)
    outs = await results(first, *(f"o{i}" for i in range(20)))
    tasks = [task([out], payload) for out in outs]
    await first.submit_tasks(SID, tasks)

    for i, t in enumerate(tasks):  # the same message delivered to two agents, through two control planes
        a, b = await race(
            mongo_backend,
            first.acquire_task(t.task_id, "agent-a", "a"),
            second.acquire_task(t.task_id, "agent-b", "b"),
            flip=i % 2 == 1,
        )
        winners = [x.task.owner_pod_id for x in (a, b) if x.task is not None]
        assert len(winners) >= 1
        stored = await first.get_task(t.task_id)
        assert stored.owner_pod_id in winners and stored.status == TaskStatus.DISPATCHED
        started = await race(
            mongo_backend,
            first.start_task(t.task_id, "agent-a"),
            second.start_task(t.task_id, "agent-b"),
            i % 3 == 0,
        )
        assert started.count(True) == 1


async def test_a_finish_and_a_recovery_never_both_apply(mongo_backend: StateBackend) -> None:
    first, second = mongo_backend.open(), mongo_backend.open()
    await first.upsert_partitions([Partition("default")])
    await first.create_session(session(SID, ("default",)))
    (payload,) = await results(first, "payload", completed=True)
    outs = await results(first, *(f"o{i}" for i in range(10)))
    tasks = [task([out], payload) for out in outs]
    await first.submit_tasks(SID, tasks)
    for i, t in enumerate(tasks):
        await first.acquire_task(t.task_id, "agent-a", "a")
        await first.start_task(t.task_id, "agent-a")
        done = TaskOutcome(
            OutcomeKind.SUCCESS, completions=[DataCompletion(t.expected_output_ids[0], 1, b"x")]
        )
        # agent-a reports while agent-b, having received the redelivered message, recovers the task
        finished, recovered = await race(
            mongo_backend,
            first.finish_task(t.task_id, "agent-a", done),
            second.acquire_task(t.task_id, "agent-b", "b"),
            flip=i % 2 == 1,
        )
        final = await first.get_task(t.task_id)
        output = await first.get_result(t.expected_output_ids[0])
        if final.status == TaskStatus.COMPLETED:
            assert recovered.to_enqueue == [] and output.status == ResultStatus.COMPLETED
            assert output.owner_task_id == t.task_id
        else:
            assert final.status == TaskStatus.RETRIED and finished == []
            assert output.status == ResultStatus.CREATED and output.owner_task_id == f"{t.task_id}###1"


async def test_an_interrupted_finish_is_recovered_by_the_next_agent(mongo_backend: StateBackend) -> None:
    """A control plane that died in the middle of `finish_task` left the task claimed (PROCESSED), its output
    handed to a subtask still CREATING: the agent receiving the message again recovers the attempt."""
    store = mongo_backend.open()
    assert isinstance(store, MongoStateStore)
    await store.upsert_partitions([Partition("default")])
    await store.create_session(session(SID, ("default",)))
    (payload,) = await results(store, "payload", completed=True)
    (out,) = await results(store, "out")
    t = task([out], payload, max_retries=2)
    await store.submit_tasks(SID, [t])
    await store.acquire_task(t.task_id, "agent-a", "a")
    await store.start_task(t.task_id, "agent-a")
    orphan = task([out], payload)
    orphan.created_by = t.task_id
    db = store._database  # the state a crash leaves, written as the unit would have
    db["TaskData"].update_one(
        {"_id": t.task_id}, {"$set": {"Status": int(TaskStatus.PROCESSED), "ClaimId": "c1"}}
    )
    orphan.status = TaskStatus.CREATING
    db["TaskData"].insert_one(mongodb_schema.task_to_document(orphan))
    db["Result"].update_one({"_id": out}, {"$set": {"OwnerTaskId": orphan.task_id}})

    ready, held = await store.tasks_in_flight()
    assert [(m.task_id, agent) for m, agent in held] == [(t.task_id, "agent-a")]
    late = TaskOutcome(OutcomeKind.SUCCESS, completions=[DataCompletion(out, 1, b"late")])
    assert await store.finish_task(t.task_id, "agent-a", late) == []  # the dead unit's agent: ignored

    recovered = await store.acquire_task(t.task_id, "agent-b", "b")

    retry_id = f"{t.task_id}###1"
    assert ids(recovered.to_enqueue) == [retry_id] and recovered.task is None
    assert await status_of(store, t.task_id) == TaskStatus.RETRIED
    assert (await store.get_result(out)).owner_task_id == retry_id
    assert await store.get_tasks([orphan.task_id]) == []
    assert await status_of(store, retry_id) == TaskStatus.SUBMITTED


def test_settings_from_upstream_variables() -> None:
    env = Environment(
        {
            "MongoDB__Host": "mongo.local",
            "MongoDB__Port": "27018",
            "MongoDB__User": "user",
            "MongoDB__Password": "secret",
            "MongoDB__DatabaseName": "database",
            "MongoDB__ReplicaSet": "rs0",
            "MongoDB__Tls": "true",
            "MongoDB__AllowInsecureTls": "true",
            "MongoDB__DirectConnection": "true",
            "MongoDB__AuthSource": "admin",
            "MongoDB__ServerSelectionTimeout": "00:00:05",
        }
    )
    settings = MongoSettings.from_env(env)
    assert settings.address == "mongo.local:27018" and settings.database_name == "database"
    assert "secret" not in repr(settings)
    options = settings.client_options()
    assert options["replicaSet"] == "rs0" and options["tls"] and options["tlsInsecure"]
    assert options["directConnection"] and options["authSource"] == "admin"
    assert options["serverSelectionTimeoutMS"] == 5000 and options["username"] == "user"
    assert MongoSettings.from_env(Environment({})).database_name == "ArmoniK"
    uri = "mongodb://u:p@db-0:27017,db-1:27017/database?replicaSet=rs0"
    with_uri = MongoSettings.from_env(
        Environment({"MongoDB__ConnectionString": uri, "MongoDB__Host": "ignored"})
    )
    assert with_uri.address == "db-0:27017,db-1:27017" and "host" not in with_uri.client_options()
    assert with_uri.database(with_uri.connect()) == "database"
    with pytest.raises(ConfigurationError, match="MongoDB__ServerSelectionTimeout"):
        MongoSettings.from_env(Environment({"MongoDB__ServerSelectionTimeout": "soon"}))
    with pytest.raises(ConfigurationError, match="MongoDB__Port"):
        MongoSettings.from_env(Environment({"MongoDB__Port": "0"}))


async def test_an_unreachable_server_is_a_named_error() -> None:
    settings = MongoSettings(host="127.0.0.1", port=1, server_selection_timeout=0.2)
    store = MongoStateStore(settings=settings)
    with pytest.raises(
        Exception,
        match=r"MongoDB at 127\.0\.0\.1:1 \(database ArmoniK\) is unreachable while reading a session",
    ):
        await store.get_session(SID)
    await store.close()
