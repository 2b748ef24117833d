"""The state store's client-side units of work, on every state backend (`state_backend` in conftest): the same
answers and the same errors (the gRPC layer maps them to statuses), whatever stores the state.

This module holds partitions and sessions. The other units have modules of their own: submission and
cancellation (`test_state_submission`), listings and the change feed (`test_state_listing_feed`), the compute
plane's units (`test_state_compute_plane`), and what only the MongoDB store has (`test_state_mongodb`).
"""

from __future__ import annotations

import time

import pytest

from armonik_core.adapters.state.base import ResultCompletion, StateStore
from armonik_core.domain.errors import FailedPrecondition, NotFound
from armonik_core.domain.filters import FieldKind, FieldRef, ListQuery, Op, SortKey
from armonik_core.domain.records import Partition, Result
from armonik_core.domain.sessions import SessionAction
from armonik_core.domain.statuses import EventType, ResultStatus, SessionStatus, TaskStatus
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
