"""Sessions, partitions, versions, health, authentication and applications, driven through the official SDK.

Every test talks to a real control plane process (the `control_plane` fixture) only through the `armonik`
client classes, as a user would; raw stubs are used only for the RPCs the SDK does not wrap
(Applications.ListApplications, Authentication.GetCurrentUser).
"""

from __future__ import annotations

from datetime import timedelta
from importlib import metadata
from typing import Any

import grpc
import pytest
from armonik.client import (
    ArmoniKHealthChecks,
    ArmoniKPartitions,
    ArmoniKResults,
    ArmoniKSessions,
    ArmoniKTasks,
    ArmoniKVersions,
)
from armonik.common import (
    Direction,
    Partition,
    Result,
    ResultStatus,
    ServiceHealthCheckStatus,
    Session,
    SessionStatus,
    Task,
    TaskDefinition,
    TaskOptions,
    TaskStatus,
)
from armonik.common.objects import Application
from armonik.protogen.client.applications_service_pb2_grpc import ApplicationsStub
from armonik.protogen.client.auth_service_pb2_grpc import AuthenticationStub
from armonik.protogen.common.applications_common_pb2 import ListApplicationsRequest
from armonik.protogen.common.applications_fields_pb2 import (
    APPLICATION_RAW_ENUM_FIELD_NAME,
    APPLICATION_RAW_ENUM_FIELD_VERSION,
    ApplicationField,
    ApplicationRawField,
)
from armonik.protogen.common.auth_common_pb2 import GetCurrentUserRequest
from armonik.protogen.common.sort_direction_pb2 import SORT_DIRECTION_ASC

try:
    from tests.support import close_to_now, options, rpc_error
except ImportError:  # run from inside tests/
    from support import close_to_now, options, rpc_error  # type: ignore[no-redef]


TIMEOUT = 10.0


class Graph:
    """A little helper building payloads, outputs and tasks in one session through the SDK."""

    def __init__(self, sessions: ArmoniKSessions, results: ArmoniKResults, tasks: ArmoniKTasks, sid: str):
        self.sessions, self.results, self.tasks, self.sid = sessions, results, tasks, sid
        self._n = 0

    def _name(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}-{self._n}"

    def payload(self, data: bytes = b"payload") -> str:
        name = self._name("payload")
        return self.results.create_results({name: data}, self.sid)[name].result_id

    def empty(self, count: int = 1) -> list[str]:
        names = [self._name("result") for _ in range(count)]
        created = self.results.create_results_metadata(names, self.sid)
        return [created[n].result_id for n in names]

    def task(
        self, deps: list[str] | None = None, opts: TaskOptions | None = None, **kwargs: Any
    ) -> tuple[str, str]:
        """Submit one task with a fresh payload and output; returns (task id, output id)."""
        output = self.empty()[0]
        definition = TaskDefinition(
            payload_id=self.payload(),
            expected_output_ids=[output],
            data_dependencies=deps or [],
            options=opts,
        )
        submitted = self.tasks.submit_tasks(self.sid, [definition], **kwargs)
        assert len(submitted) == 1
        return submitted[0].id, output

    def status(self, task_id: str) -> TaskStatus:
        return self.tasks.get_task(task_id).status


@pytest.fixture
def graph(sessions: ArmoniKSessions, results: ArmoniKResults, tasks: ArmoniKTasks) -> Graph:
    """A fresh session with the default options, to build tasks and results in."""
    return Graph(sessions, results, tasks, sessions.create_session(options()))


# -- creation and lookup --------------------------------------------------------------------------------------


def test_create_and_get_sessions(sessions: ArmoniKSessions) -> None:
    wanted = options(
        max_retries=3,
        priority=4,
        application_name="app",
        application_version="1.2",
        engine_type="python",
        options={"key": "value", "other": "x"},
    )
    sid = sessions.create_session(wanted)
    session = sessions.get_session(sid)
    assert session.session_id == sid
    assert session.status == SessionStatus.RUNNING
    assert session.partition_ids == ["default"], "no partition given: the default partition"
    assert session.options.partition_id == "default"
    assert session.options.max_duration == timedelta(seconds=30)
    assert (session.options.max_retries, session.options.priority) == (3, 4)
    assert (session.options.application_name, session.options.application_version) == ("app", "1.2")
    assert session.options.engine_type == "python"
    assert session.options.options == {"key": "value", "other": "x"}
    assert session.client_submission is True and session.worker_submission is True
    assert close_to_now(session.created_at)
    assert session.cancelled_at is None and session.closed_at is None
    assert session.purged_at is None and session.deleted_at is None

    # PymoniK's way: the session and its default options target "pymonik".
    pymonik = sessions.get_session(sessions.create_session(options(partition_id="pymonik"), ["pymonik"]))
    assert pymonik.partition_ids == ["pymonik"] and pymonik.options.partition_id == "pymonik"
    # The session's own partition when the default options name none.
    only = sessions.get_session(sessions.create_session(options(), ["pymonik"]))
    assert only.partition_ids == ["pymonik"] and only.options.partition_id == "pymonik"
    both = sessions.get_session(
        sessions.create_session(options(partition_id="pymonik"), ["default", "pymonik"])
    )
    assert both.partition_ids == ["default", "pymonik"] and both.options.partition_id == "pymonik"
    assert len({sid, pymonik.session_id, only.session_id, both.session_id}) == 4

    # A partition named in a request is an argument: upstream answers INVALID_ARGUMENT, and so do we.
    error = rpc_error(
        grpc.StatusCode.INVALID_ARGUMENT, sessions.create_session, options(), ["no-such-partition"]
    )
    assert "no-such-partition" in error.details()
    error = rpc_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        sessions.create_session,
        options(partition_id="ghost-part"),
        ["ghost-part"],
    )
    assert "ghost-part" in error.details()
    error = rpc_error(grpc.StatusCode.NOT_FOUND, sessions.get_session, "no-such-session")
    assert "no-such-session" in error.details()
    total, _ = sessions.list_sessions()
    assert total == 4, "refused creations must leave no session behind"


def test_list_sessions_filters_sort_and_paging(sessions: ArmoniKSessions) -> None:
    default_ids = [sessions.create_session(options()) for _ in range(5)]
    pymonik_ids = [sessions.create_session(options(partition_id="pymonik"), ["pymonik"]) for _ in range(3)]
    everything = default_ids + pymonik_ids
    sessions.pause_session(default_ids[0])
    sessions.cancel_session(default_ids[1])
    sessions.close_session(pymonik_ids[0])

    total, listed = sessions.list_sessions()
    assert total == 8 and {s.session_id for s in listed} == set(everything)

    total, running = sessions.list_sessions(Session.status == SessionStatus.RUNNING)
    assert total == 5 and {s.session_id for s in running} == {*default_ids[2:], *pymonik_ids[1:]}
    total, paused = sessions.list_sessions(Session.status == SessionStatus.PAUSED)
    assert total == 1 and [s.session_id for s in paused] == [default_ids[0]]
    total, not_running = sessions.list_sessions(Session.status != SessionStatus.RUNNING)
    assert total == 3
    assert {s.session_id for s in not_running} == {default_ids[0], default_ids[1], pymonik_ids[0]}

    total, one = sessions.list_sessions(Session.session_id == pymonik_ids[2])
    assert total == 1 and one[0].session_id == pymonik_ids[2] and one[0].partition_ids == ["pymonik"]

    total, on_pymonik = sessions.list_sessions(Session.partition_ids.contains("pymonik"))
    assert total == 3 and {s.session_id for s in on_pymonik} == set(pymonik_ids)
    total, combined = sessions.list_sessions(
        Session.partition_ids.contains("pymonik") & (Session.status == SessionStatus.RUNNING)
    )
    assert total == 2 and {s.session_id for s in combined} == set(pymonik_ids[1:])
    total, either = sessions.list_sessions(
        (Session.status == SessionStatus.CANCELLED) | (Session.status == SessionStatus.CLOSED)
    )
    assert total == 2 and {s.session_id for s in either} == {default_ids[1], pymonik_ids[0]}

    # Sorting: by creation date, both ways; by status (the SDK's default sort field).
    _, newest_first = sessions.list_sessions(sort_field=Session.created_at, sort_direction=Direction.DESC)
    dates = [s.created_at for s in newest_first]
    assert dates == sorted(dates, reverse=True)
    assert newest_first[0].session_id == everything[-1] and newest_first[-1].session_id == everything[0]
    _, oldest_first = sessions.list_sessions(sort_field=Session.created_at, sort_direction=Direction.ASC)
    assert [s.session_id for s in oldest_first] == everything
    _, by_status = sessions.list_sessions(sort_field=Session.status, sort_direction=Direction.DESC)
    statuses = [s.status for s in by_status]
    assert statuses == sorted(statuses, reverse=True)

    # Paging: every page reports the exact total; the pages add up to the whole list, once each.
    seen: list[str] = []
    for page in range(3):
        total, chunk = sessions.list_sessions(
            page=page, page_size=3, sort_field=Session.created_at, sort_direction=Direction.ASC
        )
        assert total == 8
        assert len(chunk) == (3 if page < 2 else 2)
        seen.extend(s.session_id for s in chunk)
    assert seen == everything
    total, beyond = sessions.list_sessions(page=3, page_size=3)
    assert total == 8 and beyond == []
    total, page = sessions.list_sessions(Session.status == SessionStatus.RUNNING, page=1, page_size=4)
    assert total == 5 and len(page) == 1


# -- life cycle -----------------------------------------------------------------------------------------------


def refused_actions(sessions: ArmoniKSessions, session_id: str, *actions: str) -> None:
    """Each action on the session (`close` for `close_session`, ...) is refused as its status forbids it."""
    for action in actions:
        rpc_error(grpc.StatusCode.FAILED_PRECONDITION, getattr(sessions, f"{action}_session"), session_id)


def test_session_life_cycle_and_invalid_transitions(sessions: ArmoniKSessions) -> None:
    precondition = grpc.StatusCode.FAILED_PRECONDITION
    sid = sessions.create_session(options())
    created_at = sessions.get_session(sid).created_at

    rpc_error(precondition, sessions.resume_session, sid)
    rpc_error(precondition, sessions.purge_session, sid)

    paused = sessions.pause_session(sid)
    assert paused.session_id == sid and paused.status == SessionStatus.PAUSED
    assert sessions.get_session(sid).status == SessionStatus.PAUSED
    error = rpc_error(precondition, sessions.pause_session, sid)
    assert sid in error.details()
    rpc_error(precondition, sessions.purge_session, sid)

    resumed = sessions.resume_session(sid)
    assert resumed.status == SessionStatus.RUNNING and resumed.closed_at is None

    closed = sessions.close_session(sid)
    assert closed.status == SessionStatus.CLOSED
    assert closed.closed_at is not None and created_at <= closed.closed_at and close_to_now(closed.closed_at)
    assert closed.client_submission is False and closed.worker_submission is False
    assert abs((closed.duration - (closed.closed_at - created_at)).total_seconds()) < 0.01
    assert closed.cancelled_at is None
    refused_actions(sessions, sid, "close", "pause", "resume")
    assert sessions.get_session(sid).status == SessionStatus.CLOSED

    purged = sessions.purge_session(sid)
    assert purged.status == SessionStatus.PURGED and purged.purged_at is not None
    assert purged.closed_at == closed.closed_at, "purging keeps the closing date"
    refused_actions(sessions, sid, "purge", "cancel", "pause", "close")

    deleted = sessions.delete_session(sid)
    assert deleted.status == SessionStatus.DELETED and deleted.deleted_at is not None
    assert deleted.deleted_at >= purged.purged_at
    rpc_error(precondition, sessions.delete_session, sid)
    rpc_error(precondition, sessions.cancel_session, sid)

    # Cancelling: from RUNNING, PAUSED or CLOSED; never twice; a cancelled session may be purged.
    other = sessions.create_session(options())
    cancelled = sessions.cancel_session(other)
    assert cancelled.status == SessionStatus.CANCELLED and close_to_now(cancelled.cancelled_at)
    assert cancelled.closed_at is None
    assert cancelled.client_submission is False and cancelled.worker_submission is False
    refused_actions(sessions, other, "cancel", "resume", "pause", "close")
    assert sessions.purge_session(other).status == SessionStatus.PURGED

    third = sessions.create_session(options())
    sessions.pause_session(third)
    assert sessions.cancel_session(third).status == SessionStatus.CANCELLED
    fourth = sessions.create_session(options())
    sessions.close_session(fourth)
    assert sessions.cancel_session(fourth).status == SessionStatus.CANCELLED
    fifth = sessions.create_session(options())
    sessions.pause_session(fifth)
    assert sessions.close_session(fifth).status == SessionStatus.CLOSED

    for action in (
        sessions.cancel_session,
        sessions.pause_session,
        sessions.resume_session,
        sessions.close_session,
        sessions.purge_session,
        sessions.delete_session,
    ):
        error = rpc_error(grpc.StatusCode.NOT_FOUND, action, "unknown-session")
        assert "unknown-session" in error.details()


def test_purge_drops_data_and_delete_drops_everything(
    sessions: ArmoniKSessions, results: ArmoniKResults, tasks: ArmoniKTasks
) -> None:
    sid = sessions.create_session(options())
    keep = sessions.create_session(options())
    graph, kept = Graph(sessions, results, tasks, sid), Graph(sessions, results, tasks, keep)
    task_id, _ = graph.task()
    payload = tasks.get_task(task_id).payload_id
    kept_task, _ = kept.task()
    kept_payload = tasks.get_task(kept_task).payload_id
    assert tasks.list_tasks(Task.session_id == sid)[0] == 1
    assert results.list_results(Result.session_id == sid)[0] == 2

    sessions.close_session(sid)
    sessions.purge_session(sid)
    assert results.get_result(payload).status == ResultStatus.DELETED, "purging deletes the session's data"
    with pytest.raises(grpc.RpcError) as caught:
        results.download_result_data(payload, sid)
    assert caught.value.code() in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND)
    assert tasks.get_task(task_id).session_id == sid, "purging keeps the metadata"

    sessions.delete_session(sid)
    assert tasks.list_tasks(Task.session_id == sid)[0] == 0
    assert results.list_results(Result.session_id == sid)[0] == 0
    rpc_error(grpc.StatusCode.NOT_FOUND, tasks.get_task, task_id)
    rpc_error(grpc.StatusCode.NOT_FOUND, results.get_result, payload)
    # The other session is untouched.
    assert tasks.list_tasks(Task.session_id == keep)[0] == 1
    assert tasks.get_task(kept_task).status == TaskStatus.SUBMITTED
    assert results.download_result_data(kept_payload, keep) == b"payload"


def test_stop_submission_and_closed_session_refuse_new_work(
    graph: Graph, sessions: ArmoniKSessions, results: ArmoniKResults, tasks: ArmoniKTasks
) -> None:
    precondition = grpc.StatusCode.FAILED_PRECONDITION
    sid = graph.sid
    payload, output = graph.payload(), graph.empty()[0]

    stopped = sessions.stop_submission_session(sid, client=True, worker=False)
    assert stopped.status == SessionStatus.RUNNING
    assert stopped.client_submission is False and stopped.worker_submission is True
    assert sessions.get_session(sid).client_submission is False

    rpc_error(precondition, results.create_results_metadata, ["late"], sid)
    rpc_error(precondition, results.create_results, {"late": b"data"}, sid)
    definition = TaskDefinition(payload_id=payload, expected_output_ids=[output])
    rpc_error(precondition, tasks.submit_tasks, sid, [definition])
    assert tasks.list_tasks(Task.session_id == sid)[0] == 0
    # Stopping is one way: asking again with client=False does not reopen the door.
    again = sessions.stop_submission_session(sid, client=False, worker=True)
    assert again.client_submission is False and again.worker_submission is False
    rpc_error(grpc.StatusCode.NOT_FOUND, sessions.stop_submission_session, "nope", True, True)

    # A closed session accepts no new results or tasks either.
    closed = sessions.create_session(options())
    graph = Graph(sessions, results, tasks, closed)
    payload, output = graph.payload(), graph.empty()[0]
    sessions.close_session(closed)
    rpc_error(precondition, results.create_results_metadata, ["late"], closed)
    rpc_error(precondition, results.create_results, {"late": b"x"}, closed)
    definition = TaskDefinition(payload_id=payload, expected_output_ids=[output])
    rpc_error(precondition, tasks.submit_tasks, closed, [definition])
    assert tasks.list_tasks(Task.session_id == closed)[0] == 0
    # Nor does a cancelled one.
    cancelled = sessions.create_session(options())
    sessions.cancel_session(cancelled)
    rpc_error(precondition, results.create_results_metadata, ["late"], cancelled)
    # Unknown sessions are NOT_FOUND, not a precondition.
    rpc_error(grpc.StatusCode.NOT_FOUND, results.create_results_metadata, ["x"], "unknown-session")
    rpc_error(grpc.StatusCode.NOT_FOUND, tasks.submit_tasks, "unknown-session", [definition])


def test_pause_holds_ready_tasks_and_resume_releases_them(
    graph: Graph, sessions: ArmoniKSessions, results: ArmoniKResults, tasks: ArmoniKTasks
) -> None:
    sid = graph.sid
    ready, _ = graph.task()
    missing = graph.empty()[0]
    waiting, _ = graph.task(deps=[missing])
    assert graph.status(ready) == TaskStatus.SUBMITTED
    assert graph.status(waiting) == TaskStatus.PENDING
    first_submitted_at = tasks.get_task(ready).submitted_at
    assert first_submitted_at is not None

    sessions.pause_session(sid)
    assert graph.status(ready) == TaskStatus.PAUSED
    assert graph.status(waiting) == TaskStatus.PENDING, "a waiting task is not paused: it was not ready"

    # Readiness reached while paused gives PAUSED, never SUBMITTED.
    late, _ = graph.task()
    assert graph.status(late) == TaskStatus.PAUSED
    results.upload_result_data(missing, sid, b"now complete")
    assert graph.status(waiting) == TaskStatus.PAUSED
    counts = tasks.count_tasks_by_status(Task.session_id == sid)
    assert counts.get(TaskStatus.PAUSED) == 3 and counts.get(TaskStatus.SUBMITTED, 0) == 0

    resumed = sessions.resume_session(sid)
    assert resumed.status == SessionStatus.RUNNING
    for task_id in (ready, waiting, late):
        task = tasks.get_task(task_id)
        assert task.status == TaskStatus.SUBMITTED
        assert task.submitted_at is not None and task.submitted_at >= first_submitted_at
    assert tasks.count_tasks_by_status(Task.session_id == sid) == {TaskStatus.SUBMITTED: 3}


def test_cancel_session_cancels_tasks_and_aborts_created_results(
    graph: Graph, sessions: ArmoniKSessions, results: ArmoniKResults, tasks: ArmoniKTasks
) -> None:
    sid = graph.sid
    ready, ready_output = graph.task()
    missing, done = graph.empty(2)
    results.upload_result_data(done, sid, b"done")
    waiting, waiting_output = graph.task(deps=[missing, done])
    orphan = graph.empty()[0]
    payload = tasks.get_task(ready).payload_id

    cancelled = sessions.cancel_session(sid)
    assert cancelled.status == SessionStatus.CANCELLED and close_to_now(cancelled.cancelled_at)
    for task_id in (ready, waiting):
        task = tasks.get_task(task_id)
        assert task.status == TaskStatus.CANCELLED
        assert task.ended_at is not None
    for result_id in (ready_output, waiting_output, missing, orphan):
        assert results.get_result(result_id).status == ResultStatus.ABORTED, result_id
    for result_id in (done, payload):
        assert results.get_result(result_id).status == ResultStatus.COMPLETED, "complete data is kept"
    assert tasks.count_tasks_by_status(Task.session_id == sid) == {TaskStatus.CANCELLED: 2}


def test_task_options_are_inherited_and_merged(
    sessions: ArmoniKSessions, results: ArmoniKResults, tasks: ArmoniKTasks
) -> None:
    session_options = options(
        max_duration=timedelta(seconds=42),
        priority=4,
        max_retries=3,
        application_name="app",
        application_version="1.0",
        application_namespace="ns",
        engine_type="python",
        options={"split": "8", "mode": "session"},
    )
    sid = sessions.create_session(session_options)
    graph = Graph(sessions, results, tasks, sid)
    merged_session = sessions.get_session(sid).options
    assert merged_session.partition_id == "default"

    # No options anywhere: the session's, the free-form map included (workers read options["split"]).
    plain, _ = graph.task()
    assert tasks.get_task(plain).options == merged_session

    # Task-level options: the maps are unioned with the task's keys winning, unset fields fall back, and
    # priority comes from the task (0 included: no fallback for priority).
    task_level = TaskOptions(
        max_duration=timedelta(0),
        priority=0,
        max_retries=0,
        application_version="2.0",
        options={"mode": "task", "extra": "yes"},
    )
    overridden, _ = graph.task(opts=task_level)
    got = tasks.get_task(overridden).options
    assert got.options == {"split": "8", "mode": "task", "extra": "yes"}
    assert got.priority == 0
    assert got.max_duration == timedelta(seconds=42) and got.max_retries == 3
    assert got.application_name == "app" and got.application_version == "2.0"
    assert got.application_namespace == "ns" and got.engine_type == "python"
    assert got.partition_id == "default"

    # Request-level defaults sit between the session and the task.
    request_level = TaskOptions(
        max_duration=timedelta(seconds=7), priority=9, max_retries=5, options={"mode": "request", "req": "1"}
    )
    via_request, _ = graph.task(default_task_options=request_level)
    got = tasks.get_task(via_request).options
    assert got.priority == 9 and got.max_retries == 5 and got.max_duration == timedelta(seconds=7)
    assert got.options == {"split": "8", "mode": "request", "req": "1"}
    assert got.application_name == "app"
    both, _ = graph.task(
        opts=TaskOptions(max_duration=timedelta(0), priority=2, max_retries=0, options={"mode": "task"}),
        default_task_options=request_level,
    )
    got = tasks.get_task(both).options
    assert got.priority == 2 and got.max_retries == 5 and got.max_duration == timedelta(seconds=7)
    assert got.options == {"split": "8", "mode": "task", "req": "1"}

    # A task may pick another of the session's partitions, not one outside them.
    multi = sessions.create_session(options(partition_id="default"), ["default", "pymonik"])
    graph = Graph(sessions, results, tasks, multi)
    on_pymonik, _ = graph.task(opts=options(partition_id="pymonik"))
    assert tasks.get_task(on_pymonik).options.partition_id == "pymonik"
    single = Graph(sessions, results, tasks, sid)
    rpc_error(grpc.StatusCode.FAILED_PRECONDITION, single.task, opts=options(partition_id="pymonik"))


# -- the small services ---------------------------------------------------------------------------------------


def test_partitions_versions_health_and_current_user(channel: grpc.Channel) -> None:
    partitions = ArmoniKPartitions(channel)
    total, listed = partitions.list_partitions()
    assert total == 2 and {p.id for p in listed} == {"default", "pymonik"}
    total, only = partitions.list_partitions(Partition.id == "pymonik")
    assert total == 1 and only[0].id == "pymonik"
    total, page = partitions.list_partitions(page=1, page_size=1, sort_field=Partition.id)
    assert total == 2 and [p.id for p in page] == ["pymonik"]
    default = partitions.get_partition("default")
    assert default.id == "default" and default.pod_max >= default.pod_reserved >= 0
    error = rpc_error(grpc.StatusCode.NOT_FOUND, partitions.get_partition, "no-such-partition")
    assert "no-such-partition" in error.details()

    versions = ArmoniKVersions(channel).list_versions()
    assert isinstance(versions["core"], str) and versions["core"]
    assert versions["api"] == metadata.version("armonik")

    health = ArmoniKHealthChecks(channel).check_health()
    assert health, "at least one service is reported"
    for name, state in health.items():
        assert state["status"] == ServiceHealthCheckStatus.HEALTHY, (name, state)

    user = AuthenticationStub(channel).GetCurrentUser(GetCurrentUserRequest(), timeout=TIMEOUT).user
    assert user.username == "Anonymous"
    assert list(user.permissions), "without authentication the anonymous user may do everything"
    assert "Sessions:CreateSession" in user.permissions
    assert "HealthChecks:CheckHealth" in user.permissions and "General:Impersonate" in user.permissions


def test_list_applications(
    channel: grpc.Channel, sessions: ArmoniKSessions, results: ArmoniKResults, tasks: ArmoniKTasks
) -> None:
    sid = sessions.create_session(options(application_name="app1", application_version="1.0"))
    graph = Graph(sessions, results, tasks, sid)
    for _ in range(3):
        graph.task()  # app1 1.0, from the session's options
    graph.task(opts=options(application_name="app1", application_version="2.0"))
    for _ in range(2):
        graph.task(
            opts=options(application_name="app2", application_version="1.0", application_namespace="ns")
        )

    stub = ApplicationsStub(channel)
    by_name_version = ListApplicationsRequest.Sort(
        fields=[
            ApplicationField(application_field=ApplicationRawField(field=APPLICATION_RAW_ENUM_FIELD_NAME)),
            ApplicationField(application_field=ApplicationRawField(field=APPLICATION_RAW_ENUM_FIELD_VERSION)),
        ],
        direction=SORT_DIRECTION_ASC,
    )

    def listed(
        page: int = 0, page_size: int = 100, flt: Any = None
    ) -> tuple[int, list[tuple[str, str, str]]]:
        request = ListApplicationsRequest(page=page, page_size=page_size, sort=by_name_version)
        if flt is not None:
            request.filters.CopyFrom(flt.to_message())
        reply = stub.ListApplications(request, timeout=TIMEOUT)
        return reply.total, [(a.name, a.version, a.namespace) for a in reply.applications]

    expected = [("app1", "1.0", ""), ("app1", "2.0", ""), ("app2", "1.0", "ns")]
    assert listed() == (3, expected), "one row per distinct application, however many tasks use it"
    assert listed(page=0, page_size=2) == (3, expected[:2])
    assert listed(page=1, page_size=2) == (3, expected[2:])
    assert listed(page=2, page_size=2) == (3, [])
    assert listed(flt=Application.name == "app1") == (2, expected[:2])
    assert listed(flt=Application.version == "1.0") == (2, [expected[0], expected[2]])
