"""The state store's compute-plane units of work: acquisition, start, and every outcome of a run, on every
state backend (`state_backend` in conftest)."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Callable

import pytest

from armonik_core.adapters.state.base import StateStore
from armonik_core.domain.options import TaskOptions
from armonik_core.domain.outcomes import DataCompletion, OutcomeKind, TaskOutcome
from armonik_core.domain.records import Partition, Result, Session, Task
from armonik_core.domain.sessions import SessionAction
from armonik_core.domain.statuses import ResultStatus, SessionStatus, TaskStatus
from armonik_core.ids import new_id
from tests.contract.conftest import StateBackend

SID = "session-1"


@pytest.fixture
async def store(state_backend: StateBackend) -> AsyncIterator[StateStore]:
    state = state_backend.open()
    await state.upsert_partitions([Partition("default")])
    await state.create_session(
        Session(
            SID,
            SessionStatus.RUNNING,
            ["default"],
            TaskOptions(partition_id="default", max_retries=1),
            time.time(),
        )
    )
    yield state


async def results(store: StateStore, *names: str, completed: bool = False) -> list[str]:
    status = ResultStatus.COMPLETED if completed else ResultStatus.CREATED
    made = [Result(new_id(), SID, name, status, time.time()) for name in names]
    await store.create_results(SID, made)
    return [r.result_id for r in made]


def task(outputs: list[str], payload: str, deps: list[str] = (), retries: int = 1) -> Task:  # type: ignore[assignment]
    task_id = new_id()
    return Task(
        task_id,
        SID,
        TaskStatus.CREATING,
        TaskOptions(partition_id="default", max_retries=retries),
        payload,
        time.time(),
        list(outputs),
        list(deps),
        [SID],
        initial_task_id=task_id,
    )


async def running(store: StateStore, t: Task, agent: str = "agent-1") -> None:
    await store.submit_tasks(SID, [t])
    acquired = await store.acquire_task(t.task_id, agent, "host-1")
    assert acquired.task is not None and acquired.task.status == TaskStatus.DISPATCHED
    assert await store.start_task(t.task_id, agent)


async def acquired_by_agent_1(store: StateStore) -> tuple[Task, str]:
    """A task of one output, submitted and acquired by agent-1 (not started): the task and its output."""
    (payload,) = await results(store, "payload", completed=True)
    (out,) = await results(store, "out")
    t = task([out], payload)
    await store.submit_tasks(SID, [t])
    assert (await store.acquire_task(t.task_id, "agent-1", "host-1")).task is not None
    return t, out


async def running_with_dependent(store: StateStore, retries: int = 1) -> tuple[Task, Task, str, str]:
    """A task started by agent-1 and a submitted task waiting on its output: (the running task, the waiting
    one, the running task's output, the waiting one's)."""
    (payload,) = await results(store, "payload", completed=True)
    out, final = await results(store, "out", "final")
    first = task([out], payload, retries=retries)
    later = task([final], payload, deps=[out])
    await running(store, first)
    await store.submit_tasks(SID, [later])
    return first, later, out, final


async def status_of(store: StateStore, task_id: str) -> TaskStatus:
    return (await store.get_task(task_id)).status


async def result_status(store: StateStore, result_id: str) -> ResultStatus:
    return (await store.get_result(result_id)).status


async def test_acquire_and_start_record_the_agent_and_times(store: StateStore) -> None:
    (payload,) = await results(store, "payload", completed=True)
    (out,) = await results(store, "out")
    t = task([out], payload)
    await store.submit_tasks(SID, [t])
    acquired = await store.acquire_task(t.task_id, "agent-1", "host-1")
    assert acquired.task is not None and acquired.session is not None
    assert acquired.session.options.max_retries == 1
    stored = await store.get_task(t.task_id)
    assert (stored.status, stored.owner_pod_id, stored.pod_hostname) == (
        TaskStatus.DISPATCHED,
        "agent-1",
        "host-1",
    )
    assert stored.received_at is not None and stored.acquired_at is not None
    assert not await store.start_task(t.task_id, "someone-else")
    assert await store.start_task(t.task_id, "agent-1")
    stored = await store.get_task(t.task_id)
    assert (
        stored.status == TaskStatus.PROCESSING
        and stored.started_at is not None
        and stored.fetched_at is not None
    )
    assert stored.submitted_at <= stored.acquired_at <= stored.started_at  # type: ignore[operator]


async def test_a_start_reported_late_records_the_agents_own_times(store: StateStore) -> None:
    """A long task's start reaches the store a moment after the agent called the worker: the agent's times
    are kept (never after the store's now, nor fetched after started)."""
    (payload,) = await results(store, "payload", completed=True)
    first, second = task(await results(store, "out-1"), payload), task(await results(store, "out-2"), payload)
    await store.submit_tasks(SID, [first, second])
    for t in (first, second):
        assert (await store.acquire_task(t.task_id, "agent-1", "host-1")).task is not None
    millis = math.ceil(time.time() * 1000)
    fetched, started = millis / 1000, (millis + 1) / 1000  # whole milliseconds: BSON dates keep no more
    await asyncio.sleep(0.01)
    assert await store.start_task(first.task_id, "agent-1", fetched, started)
    stored = await store.get_task(first.task_id)
    assert (stored.fetched_at, stored.started_at) == (fetched, started)
    # An agent whose clock runs ahead: its times are brought back to the store's.
    assert await store.start_task(second.task_id, "agent-1", time.time() + 3600, time.time() + 7200)
    stored = await store.get_task(second.task_id)
    assert stored.fetched_at is not None and stored.started_at is not None
    assert stored.fetched_at <= stored.started_at <= time.time() + 1


async def test_success_completes_outputs_and_releases_dependents(store: StateStore) -> None:
    first, second, out, _ = await running_with_dependent(store)
    assert await status_of(store, second.task_id) == TaskStatus.PENDING

    outcome = TaskOutcome(OutcomeKind.SUCCESS, completions=[DataCompletion(out, 3, b"obj-1")])
    messages = await store.finish_task(first.task_id, "agent-1", outcome)

    assert [m.task_id for m in messages] == [second.task_id]
    done = await store.get_task(first.task_id)
    assert done.status == TaskStatus.COMPLETED and done.ended_at is not None and done.processed_at is not None
    produced = await store.get_result(out)
    assert (produced.status, produced.size, produced.opaque_id) == (ResultStatus.COMPLETED, 3, b"obj-1")
    assert await status_of(store, second.task_id) == TaskStatus.SUBMITTED


async def test_subtasks_take_over_the_parent_output(store: StateStore) -> None:
    (payload,) = await results(store, "payload", completed=True)
    (out,) = await results(store, "out")
    parent = task([out], payload)
    await running(store, parent)
    made = Result(new_id(), SID, "partial", ResultStatus.CREATED, time.time(), created_by=parent.task_id)
    child_payload = Result(
        new_id(), SID, "child-payload", ResultStatus.CREATED, time.time(), created_by=parent.task_id
    )
    worker = task([made.result_id], child_payload.result_id)
    joiner = task([out], child_payload.result_id, deps=[made.result_id])
    for sub in (worker, joiner):
        sub.created_by = parent.task_id
        sub.parent_task_ids = [SID, parent.task_id]
    outcome = TaskOutcome(
        OutcomeKind.SUCCESS,
        created_results=[made, child_payload],
        completions=[DataCompletion(child_payload.result_id, 5, b"payload-obj")],
        subtasks=[worker, joiner],
    )

    messages = await store.finish_task(parent.task_id, "agent-1", outcome)

    assert [m.task_id for m in messages] == [worker.task_id]
    assert await status_of(store, parent.task_id) == TaskStatus.COMPLETED
    assert (await store.get_result(out)).owner_task_id == joiner.task_id
    assert await status_of(store, joiner.task_id) == TaskStatus.PENDING
    assert (await store.get_result(made.result_id)).created_by == parent.task_id
    stored = await store.get_task(joiner.task_id)
    assert stored.created_by == parent.task_id and stored.parent_task_ids == [SID, parent.task_id]


async def test_success_without_the_output_is_an_error_that_cascades(store: StateStore) -> None:
    first, later, out, final = await running_with_dependent(store)

    await store.finish_task(first.task_id, "agent-1", TaskOutcome(OutcomeKind.SUCCESS))

    failed = await store.get_task(first.task_id)
    assert failed.status == TaskStatus.ERROR and out in failed.error
    assert await result_status(store, out) == ResultStatus.ABORTED
    assert await status_of(store, later.task_id) == TaskStatus.ERROR
    assert await result_status(store, final) == ResultStatus.ABORTED


async def test_every_output_is_checked_when_only_some_were_produced(store: StateStore) -> None:
    """A run that produced one of its outputs and neither produced nor delegated the other fails, naming the
    other only; one that produced all of them completes (the store then skips looking the owners up), and a
    result nobody waits on releases nothing."""
    (payload,) = await results(store, "payload", completed=True)
    made, missed, both_a, both_b = await results(store, "made", "missed", "a", "b")
    partial, whole = task([made, missed], payload), task([both_a, both_b], payload)
    await running(store, partial)
    await running(store, whole)

    half = TaskOutcome(OutcomeKind.SUCCESS, completions=[DataCompletion(made, 1, b"obj-made")])
    assert await store.finish_task(partial.task_id, "agent-1", half) == []
    failed = await store.get_task(partial.task_id)
    assert failed.status == TaskStatus.ERROR and missed in failed.error and made not in failed.error

    done = [DataCompletion(both_a, 1, b"obj-a"), DataCompletion(both_b, 2, b"obj-b")]
    assert (
        await store.finish_task(whole.task_id, "agent-1", TaskOutcome(OutcomeKind.SUCCESS, completions=done))
        == []
    )
    assert await status_of(store, whole.task_id) == TaskStatus.COMPLETED
    assert {await result_status(store, rid) for rid in (both_a, both_b)} == {ResultStatus.COMPLETED}


@pytest.mark.parametrize(
    ("kind", "status"), [(OutcomeKind.ERROR, TaskStatus.ERROR), (OutcomeKind.TIMEOUT, TaskStatus.TIMEOUT)]
)
async def test_error_and_timeout_fail_for_good(
    store: StateStore, kind: OutcomeKind, status: TaskStatus
) -> None:
    first, later, out, final = await running_with_dependent(store, retries=5)

    assert await store.finish_task(first.task_id, "agent-1", TaskOutcome(kind, message="boom")) == []

    failed = await store.get_task(first.task_id)
    assert (failed.status, failed.error) == (status, "boom")
    assert await result_status(store, out) == ResultStatus.ABORTED
    assert await status_of(store, later.task_id) == TaskStatus.ERROR


async def test_a_crash_is_retried_then_fails_when_retries_run_out(store: StateStore) -> None:
    (payload,) = await results(store, "payload", completed=True)
    (out,) = await results(store, "out")
    first = task([out], payload, retries=1)
    await running(store, first)

    messages = await store.finish_task(
        first.task_id, "agent-1", TaskOutcome(OutcomeKind.CRASH, message="segfault")
    )

    retry_id = f"{first.task_id}###1"
    assert [m.task_id for m in messages] == [retry_id]
    old = await store.get_task(first.task_id)
    assert (old.status, old.error) == (TaskStatus.RETRIED, "segfault")
    retry = await store.get_task(retry_id)
    assert retry.status == TaskStatus.SUBMITTED and retry.retry_of_ids == [first.task_id]
    assert retry.initial_task_id == first.task_id
    assert (await store.get_result(out)).owner_task_id == retry_id

    assert (await store.acquire_task(retry_id, "agent-2", "host-2")).task is not None
    assert await store.start_task(retry_id, "agent-2")
    assert await store.finish_task(retry_id, "agent-2", TaskOutcome(OutcomeKind.CRASH, message="again")) == []
    final = await store.get_task(retry_id)
    assert final.status == TaskStatus.ERROR and "again" in final.error
    assert await result_status(store, out) == ResultStatus.ABORTED


async def test_a_task_left_running_by_a_lost_agent_is_retried_by_the_next(store: StateStore) -> None:
    (payload,) = await results(store, "payload", completed=True)
    (out,) = await results(store, "out")
    first = task([out], payload, retries=2)
    await running(store, first, agent="dead-agent")

    taken = await store.acquire_task(first.task_id, "agent-2", "host-2")

    assert taken.task is None
    assert [m.task_id for m in taken.to_enqueue] == [f"{first.task_id}###1"]
    assert await status_of(store, first.task_id) == TaskStatus.RETRIED
    # The dead agent's late report changes nothing.
    late = TaskOutcome(OutcomeKind.SUCCESS, completions=[DataCompletion(out, 1, b"late")])
    assert await store.finish_task(first.task_id, "dead-agent", late) == []
    assert await result_status(store, out) == ResultStatus.CREATED


async def test_cancelling_a_running_task(store: StateStore) -> None:
    (payload,) = await results(store, "payload", completed=True)
    (out,) = await results(store, "out")
    first = task([out], payload)
    await running(store, first)

    [cancelled] = await store.cancel_tasks([first.task_id])
    assert cancelled.status == TaskStatus.CANCELLING
    assert await store.cancelled_tasks([first.task_id, "other"]) == {first.task_id}

    await store.finish_task(first.task_id, "agent-1", TaskOutcome(OutcomeKind.CANCELLED))
    assert await status_of(store, first.task_id) == TaskStatus.CANCELLED
    assert await result_status(store, out) == ResultStatus.ABORTED


async def test_release_and_paused_sessions(store: StateStore) -> None:
    (payload,) = await results(store, "payload", completed=True)
    out, out2 = await results(store, "out", "out2")
    first = task([out], payload)
    await running(store, first)
    messages = await store.finish_task(first.task_id, "agent-1", TaskOutcome(OutcomeKind.RELEASED))
    assert [m.task_id for m in messages] == [first.task_id]
    released = await store.get_task(first.task_id)
    assert released.status == TaskStatus.SUBMITTED and released.owner_pod_id == ""

    second = task([out2], payload)
    await store.submit_tasks(SID, [second])
    await store.apply_session_action(SID, SessionAction.PAUSE)
    assert await status_of(store, second.task_id) == TaskStatus.PAUSED
    assert (await store.acquire_task(second.task_id, "agent-1", "host")).task is None
    # A stale message of a finished task is simply spent.
    await store.apply_session_action(SID, SessionAction.RESUME)
    assert (await store.acquire_task("no-such-task", "agent-1", "host")).task is None


async def test_an_outcome_from_another_agent_is_ignored(store: StateStore) -> None:
    (payload,) = await results(store, "payload", completed=True)
    (out,) = await results(store, "out")
    first = task([out], payload)
    await running(store, first)
    outcome = TaskOutcome(OutcomeKind.SUCCESS, completions=[DataCompletion(out, 1, b"x")])
    assert await store.finish_task(first.task_id, "impostor", outcome) == []
    assert await status_of(store, first.task_id) == TaskStatus.PROCESSING
    assert await result_status(store, out) == ResultStatus.CREATED


async def test_a_short_task_reports_its_start_with_its_outcome(store: StateStore) -> None:
    t, out = await acquired_by_agent_1(store)
    # Stores keep times to the millisecond (BSON dates): a whole millisecond after the acquisition, and the
    # outcome reported after it.
    millis = math.ceil(time.time() * 1000)
    fetched, started, processed = (millis / 1000, (millis + 1) / 1000, (millis + 2) / 1000)
    await asyncio.sleep(0.004)
    outcome = TaskOutcome(
        OutcomeKind.SUCCESS,
        completions=[DataCompletion(out, 1, b"o")],
        started_at=started,
        fetched_at=fetched,
        processed_at=processed,
    )
    await store.finish_task(t.task_id, "agent-1", outcome)
    done = await store.get_task(t.task_id)
    assert done.status == TaskStatus.COMPLETED
    # The agent's own times: inputs staged, worker called, worker answered; the end is when it was recorded.
    assert (done.fetched_at, done.started_at, done.processed_at) == (fetched, started, processed)
    assert done.acquired_at <= done.fetched_at <= done.started_at <= done.processed_at <= done.ended_at  # type: ignore[operator]


async def test_an_agent_clock_ahead_of_the_store_never_puts_processing_after_the_end(
    store: StateStore,
) -> None:
    t, out = await acquired_by_agent_1(store)
    started = math.ceil(time.time() * 1000) / 1000
    await asyncio.sleep(0.002)
    outcome = TaskOutcome(
        OutcomeKind.SUCCESS, completions=[DataCompletion(out, 1, b"o")], started_at=started, processed_at=1e10
    )
    await store.finish_task(t.task_id, "agent-1", outcome)
    done = await store.get_task(t.task_id)
    assert done.fetched_at == done.started_at == started  # an agent that does not say: fetched when started
    assert done.started_at <= done.processed_at == done.ended_at  # type: ignore[operator]


@pytest.mark.parametrize(
    "outcome_of",
    [
        pytest.param(lambda out: TaskOutcome(OutcomeKind.ERROR, "boom"), id="error"),
        pytest.param(lambda out: TaskOutcome(OutcomeKind.CRASH, "lost"), id="crash"),
        pytest.param(lambda out: TaskOutcome(OutcomeKind.SUCCESS), id="success-without-its-output"),
    ],
)
async def test_a_short_task_that_fails_still_records_its_start(
    store: StateStore, outcome_of: Callable[[str], TaskOutcome]
) -> None:
    t, out = await acquired_by_agent_1(store)
    millis = math.ceil(time.time() * 1000)
    fetched, started = millis / 1000, (millis + 1) / 1000
    await asyncio.sleep(0.003)
    outcome = outcome_of(out)
    outcome.fetched_at, outcome.started_at = fetched, started
    await store.finish_task(t.task_id, "agent-1", outcome)
    done = await store.get_task(t.task_id)
    assert done.status in (TaskStatus.ERROR, TaskStatus.RETRIED)
    assert (done.fetched_at, done.started_at) == (fetched, started)
    assert done.started_at <= done.ended_at  # type: ignore[operator]
