"""The task graph and the Events service, through the official SDK.

Results and tasks are submitted out of order; a task must become SUBMITTED exactly when its last input
completes, never before, and PAUSED instead when its session is paused. The Events stream must replay the
current state, then follow every change, restricted by the requested event types and filters.

Every blocking client call (the event stream never ends by itself) runs in a daemon thread on its own
channel, joined with a timeout: a bug fails the test instead of hanging it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from armonik.client import ArmoniKEvents, ArmoniKResults, ArmoniKSessions, ArmoniKTasks
from armonik.common import (
    Event,
    EventTypes,
    NewResultEvent,
    NewTaskEvent,
    Result,
    ResultOwnerUpdateEvent,
    ResultStatus,
    ResultStatusUpdateEvent,
    Task,
    TaskDefinition,
    TaskOptions,
    TaskStatus,
    TaskStatusUpdateEvent,
)

try:
    from tests.support import options
except ImportError:  # run from inside tests/
    from support import options  # type: ignore[no-redef]


WAIT = 10.0


class Builder:
    """Results and tasks of one session, named for readability."""

    def __init__(self, results: ArmoniKResults, tasks: ArmoniKTasks, sid: str) -> None:
        self.results, self.tasks, self.sid = results, tasks, sid

    def empty(self, *names: str) -> list[str]:
        created = self.results.create_results_metadata(list(names), self.sid)
        return [created[n].result_id for n in names]

    def inline(self, name: str, data: bytes = b"data") -> str:
        return self.results.create_results({name: data}, self.sid)[name].result_id

    def upload(self, result_id: str, data: bytes = b"data") -> None:
        self.results.upload_result_data(result_id, self.sid, data)

    def submit(
        self, payload: str, outputs: list[str], deps: list[str] | None = None, opts: TaskOptions | None = None
    ) -> str:
        definition = TaskDefinition(
            payload_id=payload, expected_output_ids=outputs, data_dependencies=deps or [], options=opts
        )
        return self.tasks.submit_tasks(self.sid, [definition])[0].id

    def statuses(self, **task_ids: str) -> dict[str, TaskStatus]:
        return {name: self.tasks.get_task(tid).status for name, tid in task_ids.items()}


# -- the graph ------------------------------------------------------------------------------------------------


def test_tasks_become_submitted_exactly_when_their_inputs_complete(
    sessions: ArmoniKSessions, results: ArmoniKResults, tasks: ArmoniKTasks
) -> None:
    sid = sessions.create_session(options())
    g = Builder(results, tasks, sid)
    x, y, out_b, out_c, out_d, out_e, out_f = g.empty("x", "y", "out-b", "out-c", "out-d", "out-e", "out-f")
    g.upload(y, b"y before submission")
    p_b, p_c, p_d, p_e = (g.inline(f"payload-{n}") for n in "bcde")
    p_f = g.empty("payload-f")[0]  # a payload whose data comes later

    b = g.submit(p_b, [out_b], [x])  # X is uploaded later
    c = g.submit(p_c, [out_c], [out_b])  # needs B's output
    d = g.submit(p_d, [out_d], [x, y])  # needs X and Y; Y is already complete
    e = g.submit(p_e, [out_e], [y])  # everything complete: ready at once
    f = g.submit(p_f, [out_f], [y])  # its payload is not there yet
    assert g.statuses(b=b, c=c, d=d, e=e, f=f) == {
        "b": TaskStatus.PENDING,
        "c": TaskStatus.PENDING,
        "d": TaskStatus.PENDING,
        "e": TaskStatus.SUBMITTED,
        "f": TaskStatus.PENDING,
    }
    for waiting in (b, c, d, f):
        assert tasks.get_task(waiting).submitted_at is None
    assert results.get_owner_task_id([out_b, out_c, out_d], sid) == {out_b: b, out_c: c, out_d: d}

    # Another, unrelated completion releases nobody.
    unrelated = g.empty("unrelated")[0]
    g.upload(unrelated)
    assert g.statuses(b=b, c=c, d=d, f=f) == dict.fromkeys("bcdf", TaskStatus.PENDING)

    before = time.time()
    g.upload(x, b"x at last")
    assert g.statuses(b=b, c=c, d=d, e=e, f=f) == {
        "b": TaskStatus.SUBMITTED,
        "c": TaskStatus.PENDING,  # B's output is not complete: B has not run
        "d": TaskStatus.SUBMITTED,
        "e": TaskStatus.SUBMITTED,
        "f": TaskStatus.PENDING,
    }
    for released in (b, d):
        submitted_at = tasks.get_task(released).submitted_at
        assert submitted_at is not None and submitted_at.timestamp() >= before - 1

    g.upload(p_f, b"the payload")
    assert g.statuses(f=f) == {"f": TaskStatus.SUBMITTED}, "a payload is an input like any other"

    # B's output completing (as B's worker would make it) releases C.
    g.upload(out_b, b"b's result")
    assert g.statuses(c=c) == {"c": TaskStatus.SUBMITTED}
    assert tasks.count_tasks_by_status(Task.session_id == sid) == {TaskStatus.SUBMITTED: 5}

    # Tasks submitted in one batch may depend on each other's outputs.
    out_g, out_h, z = g.empty("out-g", "out-h", "z")
    payload = g.inline("payload-gh")
    batch = tasks.submit_tasks(
        sid,
        [
            TaskDefinition(payload_id=payload, expected_output_ids=[out_g], data_dependencies=[z]),
            TaskDefinition(payload_id=payload, expected_output_ids=[out_h], data_dependencies=[out_g, z]),
        ],
    )
    g_id, h_id = (t.id for t in batch)
    g.upload(z)
    assert g.statuses(g=g_id, h=h_id) == {"g": TaskStatus.SUBMITTED, "h": TaskStatus.PENDING}
    g.upload(out_g)
    assert g.statuses(h=h_id) == {"h": TaskStatus.SUBMITTED}


def test_readiness_in_a_paused_session_gives_paused(
    sessions: ArmoniKSessions, results: ArmoniKResults, tasks: ArmoniKTasks
) -> None:
    running = sessions.create_session(options())
    paused = sessions.create_session(options())
    live, held = Builder(results, tasks, running), Builder(results, tasks, paused)

    x_live, out_live = live.empty("x", "out")
    live_task = live.submit(live.inline("payload"), [out_live], [x_live])
    x_held, out_held, out_ready = held.empty("x", "out", "out-ready")
    held_payload = held.inline("payload")
    held_task = held.submit(held_payload, [out_held], [x_held])

    sessions.pause_session(paused)
    ready_while_paused = held.submit(held_payload, [out_ready])
    assert held.statuses(t=ready_while_paused) == {"t": TaskStatus.PAUSED}
    assert held.statuses(t=held_task) == {"t": TaskStatus.PENDING}

    held.upload(x_held)
    live.upload(x_live)
    assert held.statuses(t=held_task) == {"t": TaskStatus.PAUSED}, "ready, but its session is paused"
    assert live.statuses(t=live_task) == {"t": TaskStatus.SUBMITTED}, "the other session is not affected"

    sessions.resume_session(paused)
    assert held.statuses(a=held_task, b=ready_while_paused) == {
        "a": TaskStatus.SUBMITTED,
        "b": TaskStatus.SUBMITTED,
    }


# -- waiting for results --------------------------------------------------------------------------------------


@dataclass
class Background:
    """A blocking SDK call run in a daemon thread, on its own channel so that it can be torn down."""

    endpoint: str
    target: Callable[[grpc.Channel], Any]
    error: BaseException | None = None
    returned: bool = False
    channel: grpc.Channel = field(init=False)
    thread: threading.Thread = field(init=False)

    def __post_init__(self) -> None:
        self.channel = grpc.insecure_channel(self.endpoint)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.target(self.channel)
            self.returned = True
        except BaseException as exc:  # reported to the test
            self.error = exc

    def join(self, timeout: float = WAIT) -> None:
        """Wait for the call; if it is still blocked, tear its channel down and fail."""
        self.thread.join(timeout)
        alive = self.thread.is_alive()
        self.channel.close()
        if alive:
            self.thread.join(2)
            pytest.fail(f"the call did not return within {timeout}s")

    def close(self) -> None:
        self.channel.close()
        self.thread.join(2)


def test_wait_for_result_availability(
    control_plane: Any, sessions: ArmoniKSessions, results: ArmoniKResults, tasks: ArmoniKTasks
) -> None:
    sid = sessions.create_session(options())
    g = Builder(results, tasks, sid)
    inline = g.inline("inline")
    uploaded, later, other_later = g.empty("uploaded", "later", "other-later")
    g.upload(uploaded)

    def wait_for(*ids: str) -> Callable[[grpc.Channel], None]:
        return lambda ch: ArmoniKEvents(ch).wait_for_result_availability(list(ids), sid)

    # Completed before the subscription: the replay must report them.
    before = Background(control_plane.endpoint, wait_for(inline, uploaded))
    before.join()
    assert before.error is None and before.returned

    # Many of them, in several buckets of the SDK's subscriptions.
    many = results.create_results({f"many-{i}": b"m" for i in range(150)}, sid, batch_size=50)
    bulk = Background(control_plane.endpoint, wait_for(*(r.result_id for r in many.values())))
    bulk.join()
    assert bulk.error is None and bulk.returned

    # Completed after the subscription: the wait must last until the last one completes.
    after = Background(control_plane.endpoint, wait_for(inline, later, other_later))
    try:
        time.sleep(0.5)
        assert after.thread.is_alive(), "returned although two results have no data"
        g.upload(later)
        time.sleep(0.3)
        assert after.thread.is_alive(), "returned although one result still has no data"
        g.upload(other_later, b"last")
        after.join()
    finally:
        after.close()
    assert after.error is None and after.returned

    # An aborted result makes the wait fail instead of blocking forever.
    out = g.empty("out")[0]
    task = g.submit(inline, [out])
    aborted = Background(control_plane.endpoint, wait_for(out))
    try:
        time.sleep(0.3)
        tasks.cancel_tasks([task])
        aborted.join()
    finally:
        aborted.close()
    assert isinstance(aborted.error, RuntimeError) and out in str(aborted.error)


# -- the event stream -----------------------------------------------------------------------------------------


class Subscription:
    """`ArmoniKEvents.get_events` in a thread, recording every event until `until` says stop."""

    def __init__(
        self,
        endpoint: str,
        session_id: str,
        event_types: list[EventTypes],
        until: Callable[[EventTypes, Event], bool],
        result_filter: Any = None,
        task_filter: Any = None,
    ) -> None:
        self.events: list[tuple[EventTypes, Event]] = []
        self._until = until
        self._changed = threading.Condition()

        def call(ch: grpc.Channel) -> None:
            ArmoniKEvents(ch).get_events(
                session_id, event_types, [self._handler], task_filter=task_filter, result_filter=result_filter
            )

        self.background = Background(endpoint, call)

    def _handler(self, _session: str, kind: EventTypes, event: Event) -> bool:
        with self._changed:
            self.events.append((kind, event))
            self._changed.notify_all()
        return self._until(kind, event)

    def wait_until(
        self, predicate: Callable[[list[tuple[EventTypes, Event]]], bool], timeout: float = WAIT
    ) -> bool:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(self.events):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
            return True

    def of(self, kind: type[Event]) -> list[Any]:
        with self._changed:
            return [e for _, e in self.events if isinstance(e, kind)]


def join_all(subscriptions: Iterable[Subscription]) -> None:
    """Until each subscription's stream has ended, which it must have done without an error."""
    for sub in subscriptions:
        sub.background.join()
        assert sub.background.error is None, sub.background.error


def close_all(subscriptions: Iterable[Subscription]) -> None:
    for sub in subscriptions:
        sub.background.close()


def is_task_update(task_id: str, status: TaskStatus) -> Callable[[EventTypes, Event], bool]:
    def check(kind: EventTypes, event: Event) -> bool:
        return (
            isinstance(event, TaskStatusUpdateEvent) and event.task_id == task_id and event.status == status
        )

    return check


def test_event_stream_replays_then_follows_changes(
    control_plane: Any, sessions: ArmoniKSessions, results: ArmoniKResults, tasks: ArmoniKTasks
) -> None:
    sid = sessions.create_session(options())
    other_session = sessions.create_session(options())
    g = Builder(results, tasks, sid)
    sentinel = g.inline("sentinel", b"already here")
    x = g.empty("x")[0]
    ping_output = g.empty("ping-out")[0]
    ping = g.submit(sentinel, [ping_output])  # a SUBMITTED task, to make status changes on demand
    endpoint = control_plane.endpoint
    target: dict[str, str] = {}

    def task_submitted(kind: EventTypes, event: Event) -> bool:
        return is_task_update(target.get("task", ""), TaskStatus.SUBMITTED)(kind, event)

    everything = Subscription(endpoint, sid, [], task_submitted)
    only_x = Subscription(
        endpoint,
        sid,
        [EventTypes.NEW_RESULT, EventTypes.RESULT_STATUS_UPDATE],
        lambda kind, event: isinstance(event, ResultStatusUpdateEvent) and event.result_id == x,
        result_filter=Result.result_id == x,
    )
    task_updates = Subscription(endpoint, sid, [EventTypes.TASK_STATUS_UPDATE], task_submitted)
    subscriptions = (everything, only_x, task_updates)
    try:
        # The replay proves the first two subscriptions are live; the third one replays nothing (no
        # NEW_* type requested), so status changes of the ping task are made until it sees one.
        assert everything.wait_until(lambda evs: any(getattr(e, "result_id", "") == sentinel for _, e in evs))
        assert only_x.wait_until(lambda evs: len(evs) >= 1)
        for _ in range(20):
            sessions.pause_session(sid)
            sessions.resume_session(sid)
            if task_updates.wait_until(lambda evs: len(evs) >= 2, timeout=0.5):
                break
        else:
            pytest.fail("the TASK_STATUS_UPDATE subscription never saw the ping task change")
        assert everything.wait_until(
            lambda evs: any(is_task_update(ping, TaskStatus.SUBMITTED)(*e) for e in evs)
        )

        # The replay: every existing result and task as NEW_* events carrying their current state.
        replayed_results = {e.result_id: e for e in everything.of(NewResultEvent)}
        assert replayed_results[sentinel].status == ResultStatus.COMPLETED
        assert replayed_results[sentinel].owner_id == sid
        assert replayed_results[x].status == ResultStatus.CREATED and replayed_results[x].owner_id == ""
        assert replayed_results[ping_output].owner_id == ping
        replayed_task = next(e for e in everything.of(NewTaskEvent) if e.task_id == ping)
        assert replayed_task.status == TaskStatus.SUBMITTED and replayed_task.payload_id == sentinel
        assert replayed_task.expected_output_keys == [ping_output]

        # Live changes: in another session (never seen), then in this one.
        noise = Builder(results, tasks, other_session)
        noise.upload(noise.empty("noise")[0])
        unrelated = g.empty("unrelated")[0]
        g.upload(unrelated)
        payload = g.inline("payload")
        out = g.empty("out")[0]
        task = g.submit(payload, [out], [x])
        target["task"] = task
        g.upload(x, b"x")

        join_all(subscriptions)
    finally:
        close_all(subscriptions)

    # Everything, in commit order.
    kinds_of = {type(e) for _, e in everything.events}
    assert kinds_of == {
        NewResultEvent,
        NewTaskEvent,
        TaskStatusUpdateEvent,
        ResultStatusUpdateEvent,
        ResultOwnerUpdateEvent,
    }
    for kind, event in everything.events:
        assert kind == EventTypes.from_string(
            {
                NewResultEvent: "new_result",
                NewTaskEvent: "new_task",
                TaskStatusUpdateEvent: "task_status_update",
                ResultStatusUpdateEvent: "result_status_update",
                ResultOwnerUpdateEvent: "result_owner_update",
            }[type(event)]
        )
    new_results = {e.result_id: e for e in everything.of(NewResultEvent)}
    assert new_results[unrelated].status == ResultStatus.CREATED
    assert new_results[payload].status == ResultStatus.COMPLETED and new_results[payload].owner_id == sid
    assert new_results[out].status == ResultStatus.CREATED and new_results[out].owner_id == ""
    new_task = next(e for e in everything.of(NewTaskEvent) if e.task_id == task)
    assert new_task.status == TaskStatus.PENDING
    assert new_task.payload_id == payload and new_task.expected_output_keys == [out]
    assert new_task.data_dependencies == [x] and new_task.parent_task_ids == [sid]
    assert new_task.retry_of_ids == [] and new_task.origin_task_id == ""
    owner = [e for e in everything.of(ResultOwnerUpdateEvent) if e.result_id == out]
    assert owner == [ResultOwnerUpdateEvent(result_id=out, previous_owner_id="", current_owner_id=task)]
    result_updates = [(e.result_id, e.status) for e in everything.of(ResultStatusUpdateEvent)]
    assert (unrelated, ResultStatus.COMPLETED) in result_updates and (
        x,
        ResultStatus.COMPLETED,
    ) in result_updates
    task_updates_seen = [
        (e.task_id, e.status) for e in everything.of(TaskStatusUpdateEvent) if e.task_id == task
    ]
    assert task_updates_seen == [(task, TaskStatus.SUBMITTED)], "PENDING -> SUBMITTED once X completed"
    order = [(type(e), getattr(e, "task_id", getattr(e, "result_id", ""))) for _, e in everything.events]
    assert order.index((NewTaskEvent, task)) < order.index((TaskStatusUpdateEvent, task))
    assert order.index((ResultStatusUpdateEvent, unrelated)) < order.index((NewTaskEvent, task))
    # Exactly this session's results and tasks, nothing from the other session.
    session_results = {r.result_id for r in results.list_results(Result.session_id == sid)[1]}
    assert set(new_results) == session_results
    assert {r for r, _ in result_updates} <= session_results
    session_tasks = {t.id for t in tasks.list_tasks(Task.session_id == sid)[1]}
    assert {e.task_id for _, e in everything.events if hasattr(e, "task_id")} == session_tasks

    # returned_events and the result filter restrict what is sent.
    assert {type(e) for _, e in only_x.events} <= {NewResultEvent, ResultStatusUpdateEvent}
    assert {getattr(e, "result_id", None) for _, e in only_x.events} == {x}
    assert [(type(e), e.status) for _, e in only_x.events] == [
        (NewResultEvent, ResultStatus.CREATED),
        (ResultStatusUpdateEvent, ResultStatus.COMPLETED),
    ]
    assert {type(e) for _, e in task_updates.events} == {TaskStatusUpdateEvent}
    assert (task, TaskStatus.SUBMITTED) in [(e.task_id, e.status) for _, e in task_updates.events]
    assert {e.task_id for _, e in task_updates.events} == {ping, task}


def test_event_stream_filters_and_unknown_session(
    control_plane: Any, sessions: ArmoniKSessions, results: ArmoniKResults, tasks: ArmoniKTasks
) -> None:
    sid = sessions.create_session(options())
    g = Builder(results, tasks, sid)
    x, watched, out_a, out_b = g.empty("x", "watched", "out-a", "out-b")
    payload = g.inline("payload")
    a = g.submit(payload, [out_a], [x], opts=options(options={"key": "skip"}))
    b = g.submit(payload, [out_b], [x], opts=options(options={"key": "watch"}))
    task_types = [EventTypes.NEW_TASK, EventTypes.TASK_STATUS_UPDATE]
    result_types = [EventTypes.NEW_RESULT, EventTypes.RESULT_STATUS_UPDATE, EventTypes.RESULT_OWNER_UPDATE]
    endpoint = control_plane.endpoint

    by_id = Subscription(
        endpoint, sid, task_types, is_task_update(b, TaskStatus.SUBMITTED), task_filter=Task.id == b
    )
    # A filter on a field a status change does not carry: the server must look the task up.
    by_option = Subscription(
        endpoint,
        sid,
        task_types,
        is_task_update(b, TaskStatus.SUBMITTED),
        task_filter=Task.options["key"] == "watch",
    )
    by_name = Subscription(
        endpoint,
        sid,
        result_types,
        lambda kind, event: isinstance(event, ResultStatusUpdateEvent) and event.result_id == watched,
        result_filter=Result.name == "watched",
    )
    subscriptions = (by_id, by_option, by_name)
    try:
        for sub in subscriptions:
            assert sub.wait_until(lambda evs: len(evs) >= 1), "the replay"
        g.upload(x)  # a and b both become SUBMITTED, in one transaction
        g.upload(watched)
        join_all(subscriptions)
    finally:
        close_all(subscriptions)
    for sub in (by_id, by_option):
        assert [(type(e), e.task_id, e.status) for _, e in sub.events] == [
            (NewTaskEvent, b, TaskStatus.PENDING),
            (TaskStatusUpdateEvent, b, TaskStatus.SUBMITTED),
        ]
    assert [(type(e), e.result_id, e.status) for _, e in by_name.events] == [
        (NewResultEvent, watched, ResultStatus.CREATED),
        (ResultStatusUpdateEvent, watched, ResultStatus.COMPLETED),
    ]
    assert tasks.get_task(a).status == TaskStatus.SUBMITTED

    unknown = Background(
        control_plane.endpoint,
        lambda ch: ArmoniKEvents(ch).get_events("no-such-session", [], [lambda *_: True]),
    )
    unknown.join()
    assert isinstance(unknown.error, grpc.RpcError)
    assert unknown.error.code() == grpc.StatusCode.NOT_FOUND


def test_a_replay_by_ids_names_only_the_sessions_own_records(
    control_plane: Any, sessions: ArmoniKSessions, results: ArmoniKResults, tasks: ArmoniKTasks
) -> None:
    """A filter made of id equalities only (the SDK's wait for results) is replayed by key: records of
    another session and unknown ids named in it are not replayed."""
    sid, other = sessions.create_session(options()), sessions.create_session(options())
    g, h = Builder(results, tasks, sid), Builder(results, tasks, other)
    done, pending = g.inline("done"), g.empty("pending")[0]
    foreign = h.inline("foreign")
    task = g.submit(done, [pending])
    foreign_task = h.submit(foreign, h.empty("foreign-out"))
    by_ids = Result.result_id == done
    for rid in (pending, foreign, "no-such-result"):
        by_ids = by_ids | (Result.result_id == rid)
    task_ids = (Task.id == task) | (Task.id == foreign_task) | (Task.id == "no-such-task")
    result_sub = Subscription(
        control_plane.endpoint, sid, [EventTypes.NEW_RESULT], lambda *_: False, result_filter=by_ids
    )
    task_sub = Subscription(
        control_plane.endpoint, sid, [EventTypes.NEW_TASK], lambda *_: False, task_filter=task_ids
    )
    try:
        assert result_sub.wait_until(lambda evs: len(evs) >= 2), "the replay"
        assert task_sub.wait_until(lambda evs: len(evs) >= 1), "the replay"
        time.sleep(0.3)  # anything else would have come with the replay
    finally:
        result_sub.background.close()
        task_sub.background.close()
    assert sorted((e.result_id, e.status) for _, e in result_sub.events) == sorted(
        [(done, ResultStatus.COMPLETED), (pending, ResultStatus.CREATED)]
    )
    assert [(e.task_id, e.status) for _, e in task_sub.events] == [(task, TaskStatus.SUBMITTED)]
