"""The state store's submission units of work on every state backend: results, tasks submitted by clients and by
running workers, cancellation and what it aborts."""

from __future__ import annotations

import time

import pytest

from armonik_core.adapters.queue.base import QueueMessage
from armonik_core.adapters.state.base import ResultCompletion, StateStore
from armonik_core.domain.errors import FailedPrecondition, InvalidArgument, NotFound
from armonik_core.domain.filters import FieldKind, FieldRef, ListQuery, Op, SortKey
from armonik_core.domain.outcomes import OutcomeKind, TaskOutcome
from armonik_core.domain.records import Result
from armonik_core.domain.statuses import EventType, ResultStatus, TaskStatus
from armonik_core.ids import new_id
from tests.contract.state_store_support import (
    SID,
    Recorder,
    ids,
    result_status,
    results,
    session,
    settle,
    status_of,
    task,
    where,
)


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
