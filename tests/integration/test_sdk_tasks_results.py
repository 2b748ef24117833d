"""Results and tasks through the official SDK: data transfer, listing, submission, cancellation, errors.

A real control plane process answers (the `control_plane` fixture); the tests use the `armonik` client
classes only, except for one deliberately malformed request built from the generated messages.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from armonik.client import ArmoniKResults, ArmoniKSessions, ArmoniKTasks
from armonik.common import (
    Direction,
    Result,
    ResultStatus,
    Task,
    TaskDefinition,
    TaskStatus,
)
from armonik.protogen.client.results_service_pb2_grpc import ResultsStub
from armonik.protogen.client.tasks_service_pb2_grpc import TasksStub
from armonik.protogen.common import (
    filters_common_pb2,
    results_common_pb2,
    results_fields_pb2,
    results_filters_pb2,
    tasks_common_pb2,
    tasks_fields_pb2,
    tasks_filters_pb2,
)

try:
    from tests.support import close_to_now, options, rpc_error
except ImportError:  # run from inside tests/
    from support import close_to_now, options, rpc_error  # type: ignore[no-redef]


TIMEOUT = 10.0
MiB = 1024 * 1024


def rpc_error_in(codes: set[grpc.StatusCode], call: Callable[..., Any], *args: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(*args)
    assert caught.value.code() in codes, f"{caught.value.code().name}: {caught.value.details()}"
    return caught.value


@pytest.fixture
def sid(sessions: ArmoniKSessions) -> str:
    return sessions.create_session(options(), ["default", "pymonik"])


def metadata(results: ArmoniKResults, sid: str, *names: str) -> list[str]:
    created = results.create_results_metadata(list(names), sid)
    return [created[n].result_id for n in names]


def payload(results: ArmoniKResults, sid: str, data: bytes = b"payload", name: str = "payload") -> str:
    return results.create_results({name: data}, sid)[name].result_id


# -- results --------------------------------------------------------------------------------------------------


def test_results_creation_and_data_round_trip(results: ArmoniKResults, sid: str) -> None:
    chunk = results.get_service_config()
    assert chunk > 0

    created = results.create_results_metadata(["first", "second"], sid)
    assert set(created) == {"first", "second"}
    for name, result in created.items():
        assert result.name == name and result.session_id == sid
        assert result.status == ResultStatus.CREATED
        assert close_to_now(result.created_at) and result.completed_at is None
        assert result.size == 0 and result.owner_task_id == ""
    assert created["first"].result_id != created["second"].result_id
    fetched = results.get_result(created["first"].result_id)
    assert (fetched.result_id, fetched.name, fetched.status) == (
        created["first"].result_id,
        "first",
        ResultStatus.CREATED,
    )

    inline = results.create_results(
        {"empty": b"", "small": b"abc", "bin": bytes(range(256))}, sid, batch_size=2
    )
    assert set(inline) == {"empty", "small", "bin"}
    for name, size in (("empty", 0), ("small", 3), ("bin", 256)):
        result = inline[name]
        assert result.status == ResultStatus.COMPLETED and result.size == size, name
        assert result.completed_at is not None and result.owner_task_id == sid
        assert results.get_result(result.result_id).status == ResultStatus.COMPLETED
    assert results.download_result_data(inline["empty"].result_id, sid) == b""
    assert results.download_result_data(inline["small"].result_id, sid) == b"abc"
    assert results.download_result_data(inline["bin"].result_id, sid) == bytes(range(256))

    # A blob of several chunks, uploaded then downloaded, byte for byte.
    blob = os.urandom(9 * MiB + 12345)
    assert len(blob) > chunk, "the upload must span more than one chunk"
    big = created["first"].result_id
    results.upload_result_data(big, sid, blob)
    stored = results.get_result(big)
    assert stored.status == ResultStatus.COMPLETED and stored.size == len(blob)
    assert stored.completed_at is not None and stored.completed_at >= stored.created_at
    assert hashlib.sha256(results.download_result_data(big, sid)).digest() == hashlib.sha256(blob).digest()

    # An empty upload completes a result with no data.
    empty = created["second"].result_id
    results.upload_result_data(empty, sid, b"")
    assert results.get_result(empty).status == ResultStatus.COMPLETED and results.get_result(empty).size == 0
    assert results.download_result_data(empty, sid) == b""

    # No data yet: nothing to download; unknown ids and wrong sessions are NOT_FOUND.
    pending = metadata(results, sid, "pending")[0]
    rpc_error_in(
        {grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND},
        results.download_result_data,
        pending,
        sid,
    )
    rpc_error(grpc.StatusCode.NOT_FOUND, results.get_result, "no-such-result")
    rpc_error(grpc.StatusCode.NOT_FOUND, results.download_result_data, "no-such-result", sid)
    rpc_error(grpc.StatusCode.NOT_FOUND, results.download_result_data, big, "another-session")
    rpc_error(grpc.StatusCode.NOT_FOUND, results.upload_result_data, "no-such-result", sid, b"x")
    rpc_error(grpc.StatusCode.NOT_FOUND, results.create_results, {"x": b"x"}, "no-such-session")


def test_list_results_filters_and_paging(
    sessions: ArmoniKSessions, results: ArmoniKResults, sid: str
) -> None:
    other = sessions.create_session(options())
    outputs = metadata(results, sid, *(f"out-{i}" for i in range(7)))
    inputs = [payload(results, sid, f"in-{i}".encode(), f"in-{i}") for i in range(5)]
    foreign = metadata(results, other, "out-0", "foreign-1", "foreign-2")

    total, listed = results.list_results(Result.session_id == sid)
    assert total == 12 and {r.result_id for r in listed} == {*outputs, *inputs}
    total, listed = results.list_results()
    assert total == 15

    total, listed = results.list_results(Result.name == "out-3")
    assert total == 1 and listed[0].result_id == outputs[3]
    total, listed = results.list_results(Result.name == "out-0")
    assert total == 2 and {r.result_id for r in listed} == {outputs[0], foreign[0]}, "names are not unique"
    total, listed = results.list_results((Result.name == "out-0") & (Result.session_id == other))
    assert total == 1 and listed[0].result_id == foreign[0]
    total, listed = results.list_results(Result.name.startswith("in-"))
    assert total == 5 and {r.result_id for r in listed} == set(inputs)

    total, listed = results.list_results(
        (Result.status == ResultStatus.COMPLETED) & (Result.session_id == sid)
    )
    assert total == 5 and {r.result_id for r in listed} == set(inputs)
    total, listed = results.list_results(Result.status == ResultStatus.CREATED)
    assert total == 10 and {r.result_id for r in listed} == {*outputs, *foreign}
    total, listed = results.list_results(
        (Result.result_id == outputs[1]) | (Result.result_id == inputs[2]) | (Result.result_id == "nope")
    )
    assert total == 2 and {r.result_id for r in listed} == {outputs[1], inputs[2]}
    total, listed = results.list_results((Result.size > 3) & (Result.session_id == sid))
    assert total == 5, "every payload holds 4 bytes"

    # Pages of 5 over 12 results: exact totals, every result once, in the requested order.
    seen: list[Result] = []
    for page, size in enumerate((5, 5, 2)):
        total, chunk = results.list_results(
            Result.session_id == sid,
            page=page,
            page_size=5,
            sort_field=Result.name,
            sort_direction=Direction.ASC,
        )
        assert total == 12 and len(chunk) == size
        seen.extend(chunk)
    assert [r.name for r in seen] == sorted(r.name for r in seen)
    assert len({r.result_id for r in seen}) == 12
    # The SDK's default sort (status) has many ties: pages must still cover every result exactly once.
    seen = []
    for page in range(3):
        seen.extend(results.list_results(Result.session_id == sid, page=page, page_size=5)[1])
    assert sorted(r.result_id for r in seen) == sorted([*outputs, *inputs])
    assert [r.status for r in seen] == sorted(r.status for r in seen)
    total, beyond = results.list_results(Result.session_id == sid, page=3, page_size=5)
    assert total == 12 and beyond == []
    _, by_name_desc = results.list_results(
        Result.session_id == sid, sort_field=Result.name, sort_direction=Direction.DESC
    )
    assert [r.name for r in by_name_desc] == sorted((r.name for r in seen), reverse=True)


def test_owner_task_and_deleted_data(results: ArmoniKResults, tasks: ArmoniKTasks, sid: str) -> None:
    data = payload(results, sid)
    output, spare = metadata(results, sid, "output", "spare")
    assert results.get_owner_task_id([output, data], sid) == {output: "", data: sid}

    task_id = tasks.submit_tasks(sid, [TaskDefinition(payload_id=data, expected_output_ids=[output])])[0].id
    owners = results.get_owner_task_id([output, data, spare], sid)
    assert owners == {output: task_id, data: sid, spare: ""}
    assert results.get_result(output).owner_task_id == task_id
    rpc_error(grpc.StatusCode.NOT_FOUND, results.get_owner_task_id, ["no-such-result"], sid)

    results.delete_result_data([data], sid)
    deleted = results.get_result(data)
    assert deleted.status == ResultStatus.DELETED
    rpc_error_in(
        {grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND},
        results.download_result_data,
        data,
        sid,
    )
    # Deleting again is harmless; a deleted result can feed no new task.
    results.delete_result_data([data], sid)
    assert results.get_result(data).status == ResultStatus.DELETED
    error = rpc_error(
        grpc.StatusCode.FAILED_PRECONDITION,
        tasks.submit_tasks,
        sid,
        [TaskDefinition(payload_id=data, expected_output_ids=[spare])],
    )
    assert data in error.details()
    rpc_error(grpc.StatusCode.NOT_FOUND, results.delete_result_data, ["no-such-result"], sid)
    # The output has no data yet: deleting it would strand every task waiting on it.
    error = rpc_error(grpc.StatusCode.FAILED_PRECONDITION, results.delete_result_data, [output], sid)
    assert output in error.details()
    assert results.get_result(output).status == ResultStatus.CREATED


# -- tasks ----------------------------------------------------------------------------------------------------


def test_submit_many_tasks_and_task_details(results: ArmoniKResults, tasks: ArmoniKTasks, sid: str) -> None:
    shared = payload(results, sid)
    outputs = metadata(results, sid, *(f"out-{i}" for i in range(250)))
    definitions = [TaskDefinition(payload_id=shared, expected_output_ids=[out]) for out in outputs]
    submitted = tasks.submit_tasks(sid, definitions)  # chunk_size 100: three requests
    assert len(submitted) == 250 and len({t.id for t in submitted}) == 250
    assert [t.expected_output_ids for t in submitted] == [[out] for out in outputs]
    assert all(t.payload_id == shared and t.session_id == sid for t in submitted)

    first = tasks.get_task(submitted[0].id)
    assert first.id == submitted[0].id and first.session_id == sid
    assert first.status == TaskStatus.SUBMITTED
    assert close_to_now(first.created_at)
    assert first.submitted_at is not None and first.submitted_at >= first.created_at
    assert first.payload_id == shared
    assert first.expected_output_ids == [outputs[0]] and first.data_dependencies == []
    assert first.initial_task_id == first.id
    assert first.parent_task_ids == [sid]
    assert first.retry_of_ids == [] and first.created_by == ""
    assert first.started_at is None and first.ended_at is None
    assert first.options.partition_id == "default" and first.options.max_retries == 2

    # One task waiting on a result with no data, one on two inputs of which one is complete.
    missing, done, out_a, out_b = metadata(results, sid, "missing", "done", "out-a", "out-b")
    results.upload_result_data(done, sid, b"done")
    waiting = tasks.submit_tasks(
        sid,
        [
            TaskDefinition(payload_id=shared, expected_output_ids=[out_a], data_dependencies=[missing]),
            TaskDefinition(payload_id=shared, expected_output_ids=[out_b], data_dependencies=[done, missing]),
        ],
    )
    pending = tasks.get_task(waiting[1].id)
    assert pending.status == TaskStatus.PENDING and pending.submitted_at is None
    assert pending.data_dependencies == [done, missing] and pending.expected_output_ids == [out_b]

    assert tasks.count_tasks_by_status(Task.session_id == sid) == {
        TaskStatus.SUBMITTED: 250,
        TaskStatus.PENDING: 2,
    }
    assert tasks.count_tasks_by_status(Task.session_id == "another") == {}

    ids = [t.id for t in submitted] + [t.id for t in waiting]
    mapping = tasks.get_result_ids(ids, chunk_size=100)
    assert mapping == {t.id: t.expected_output_ids for t in [*submitted, *waiting]}
    rpc_error(grpc.StatusCode.NOT_FOUND, tasks.get_result_ids, ["no-such-task"])
    rpc_error(grpc.StatusCode.NOT_FOUND, tasks.get_task, "no-such-task")

    seen: list[str] = []
    for page, size in enumerate((100, 100, 52)):
        total, chunk = tasks.list_tasks(Task.session_id == sid, page=page, page_size=100)
        assert total == 252 and len(chunk) == size
        seen.extend(t.id for t in chunk)
    assert sorted(seen) == sorted(ids) and seen == sorted(seen), "default sort: task id ascending"
    # Sorted on a field where 250 tasks tie (one request, one creation date): pages must still neither
    # repeat nor skip a task.
    for direction in (Direction.ASC, Direction.DESC):
        seen = []
        for page in range(6):
            total, chunk = tasks.list_tasks(
                Task.session_id == sid,
                page=page,
                page_size=50,
                sort_field=Task.created_at,
                sort_direction=direction,
            )
            assert total == 252
            seen.extend(t.id for t in chunk)
        assert len(seen) == 252 and set(seen) == set(ids), direction


def test_list_tasks_filters_sorts_and_summaries(
    sessions: ArmoniKSessions, results: ArmoniKResults, tasks: ArmoniKTasks, sid: str
) -> None:
    other = sessions.create_session(options())
    shared = payload(results, sid)
    missing = metadata(results, sid, "missing")[0]

    def submit(session: str, data: str, key: str, deps: list[str] | None = None) -> str:
        out = metadata(results, session, "out")[0]
        definition = TaskDefinition(
            payload_id=data,
            expected_output_ids=[out],
            data_dependencies=deps or [],
            options=options(options={"key": key}),
        )
        return tasks.submit_tasks(session, [definition])[0].id

    a_ready = [submit(sid, shared, "a") for _ in range(3)]
    a_waiting = [submit(sid, shared, "a", [missing]) for _ in range(2)]
    b_ready = [submit(sid, shared, "b") for _ in range(2)]
    foreign = [submit(other, payload(results, other), "a") for _ in range(2)]
    mine = [*a_ready, *a_waiting, *b_ready]

    total, listed = tasks.list_tasks(Task.options["key"] == "a")
    assert total == 7 and {t.id for t in listed} == {*a_ready, *a_waiting, *foreign}
    total, listed = tasks.list_tasks((Task.options["key"] == "a") & (Task.session_id == sid))
    assert total == 5 and {t.id for t in listed} == {*a_ready, *a_waiting}
    total, listed = tasks.list_tasks(Task.status == TaskStatus.PENDING)
    assert total == 2 and {t.id for t in listed} == set(a_waiting)
    assert all(t.status == TaskStatus.PENDING and t.data_dependencies == [missing] for t in listed)
    total, listed = tasks.list_tasks((Task.status == TaskStatus.SUBMITTED) & (Task.options["key"] == "b"))
    assert total == 2 and {t.id for t in listed} == set(b_ready)
    total, listed = tasks.list_tasks(Task.session_id == other)
    assert total == 2 and {t.id for t in listed} == set(foreign)
    total, listed = tasks.list_tasks(Task.payload_id == shared)
    assert total == 7
    total, listed = tasks.list_tasks(Task.options.partition_id == "default")
    assert total == 9

    # Summaries carry counts instead of lists.
    total, summaries = tasks.list_tasks(Task.status == TaskStatus.PENDING, detailed=False)
    assert total == 2
    for summary in summaries:
        assert summary.id in a_waiting and summary.status == TaskStatus.PENDING
        assert summary.data_dependencies is None
        assert summary.count_data_dependencies == 1 and summary.count_expected_output_ids == 1
        assert summary.count_parent_task_ids == 1
        assert summary.options.options == {"key": "a"} and summary.payload_id == shared

    _, newest_first = tasks.list_tasks(
        Task.session_id == sid, sort_field=Task.created_at, sort_direction=Direction.DESC
    )
    dates = [t.created_at for t in newest_first]
    assert dates == sorted(dates, reverse=True) and len(dates) == 7
    assert newest_first[0].id == mine[-1] and newest_first[-1].id == mine[0]
    _, oldest_first = tasks.list_tasks(Task.session_id == sid, sort_field=Task.created_at)
    assert [t.id for t in oldest_first] == mine
    _, by_id = tasks.list_tasks(sort_direction=Direction.DESC, detailed=False)
    assert [t.id for t in by_id] == sorted([*mine, *foreign], reverse=True)
    total, page = tasks.list_tasks(Task.session_id == sid, page=1, page_size=4, sort_field=Task.created_at)
    assert total == 7 and [t.id for t in page] == mine[4:]


def test_cancel_tasks_aborts_outputs_and_cancels_dependents(
    results: ArmoniKResults, tasks: ArmoniKTasks, sid: str
) -> None:
    data = payload(results, sid)
    out_a, out_b, out_c, out_d = metadata(results, sid, "a", "b", "c", "d")

    def submit(output: str, deps: list[str]) -> str:
        definition = TaskDefinition(payload_id=data, expected_output_ids=[output], data_dependencies=deps)
        return tasks.submit_tasks(sid, [definition])[0].id

    a = submit(out_a, [])
    b = submit(out_b, [out_a])
    c = submit(out_c, [out_b])
    d = submit(out_d, [])
    assert [tasks.get_task(t).status for t in (a, b, c, d)] == [
        TaskStatus.SUBMITTED,
        TaskStatus.PENDING,
        TaskStatus.PENDING,
        TaskStatus.SUBMITTED,
    ]

    tasks.cancel_tasks([a])
    cancelled = tasks.get_task(a)
    assert cancelled.status == TaskStatus.CANCELLED and cancelled.ended_at is not None
    assert results.get_result(out_a).status == ResultStatus.ABORTED
    assert tasks.get_task(b).status == TaskStatus.CANCELLED, "b can never run: its input was aborted"
    assert results.get_result(out_b).status == ResultStatus.ABORTED
    assert tasks.get_task(c).status == TaskStatus.CANCELLED
    assert results.get_result(out_c).status == ResultStatus.ABORTED
    assert tasks.get_task(d).status == TaskStatus.SUBMITTED, "an unrelated task is untouched"
    assert results.get_result(out_d).status == ResultStatus.CREATED
    assert results.get_result(data).status == ResultStatus.COMPLETED

    # Cancelling cancelled tasks again changes nothing and is not an error.
    tasks.cancel_tasks([a, b])
    assert tasks.get_task(a).status == TaskStatus.CANCELLED
    assert tasks.count_tasks_by_status(Task.session_id == sid) == {
        TaskStatus.CANCELLED: 3,
        TaskStatus.SUBMITTED: 1,
    }
    rpc_error(grpc.StatusCode.NOT_FOUND, tasks.cancel_tasks, ["no-such-task"])
    assert tasks.get_task(d).status == TaskStatus.SUBMITTED

    # An ABORTED result can feed no new task.
    out_e = metadata(results, sid, "e")[0]
    error = rpc_error(grpc.StatusCode.FAILED_PRECONDITION, submit, out_e, [out_a])
    assert out_a in error.details()
    # Nor can it receive data any more.
    rpc_error(grpc.StatusCode.FAILED_PRECONDITION, results.upload_result_data, out_a, sid, b"too late")
    assert results.get_result(out_a).status == ResultStatus.ABORTED


def test_submission_errors(sessions: ArmoniKSessions, results: ArmoniKResults, tasks: ArmoniKTasks) -> None:
    sid = sessions.create_session(options())  # on "default" only
    data = payload(results, sid)
    out, taken, dep = metadata(results, sid, "out", "taken", "dep")

    def submit(**fields: Any) -> list[Task]:
        values: dict[str, Any] = {"payload_id": data, "expected_output_ids": [out]}
        values.update(fields)
        return tasks.submit_tasks(sid, [TaskDefinition(**values)])

    error = rpc_error(grpc.StatusCode.NOT_FOUND, submit, payload_id="no-such-payload")
    assert "no-such-payload" in error.details()
    error = rpc_error(grpc.StatusCode.NOT_FOUND, submit, data_dependencies=[dep, "no-such-dependency"])
    assert "no-such-dependency" in error.details()
    error = rpc_error(grpc.StatusCode.NOT_FOUND, submit, expected_output_ids=["no-such-output"])
    assert "no-such-output" in error.details()
    error = rpc_error(grpc.StatusCode.FAILED_PRECONDITION, submit, options=options(partition_id="pymonik"))
    assert "pymonik" in error.details()

    # A result belongs to one session: naming another session's result is NOT_FOUND.
    other = sessions.create_session(options())
    foreign = payload(results, other)
    rpc_error(grpc.StatusCode.NOT_FOUND, submit, payload_id=foreign)

    owner = submit(expected_output_ids=[taken])[0].id
    error = rpc_error(grpc.StatusCode.FAILED_PRECONDITION, submit, expected_output_ids=[taken])
    assert taken in error.details()
    assert results.get_owner_task_id([taken], sid) == {taken: owner}
    # A completed result cannot be an output either.
    rpc_error(grpc.StatusCode.FAILED_PRECONDITION, submit, expected_output_ids=[data])

    # A refused batch leaves nothing behind, even its valid tasks.
    batch = [
        TaskDefinition(payload_id=data, expected_output_ids=[out]),
        TaskDefinition(payload_id=data, expected_output_ids=[dep], data_dependencies=["no-such-dependency"]),
    ]
    rpc_error(grpc.StatusCode.NOT_FOUND, tasks.submit_tasks, sid, batch)
    total, listed = tasks.list_tasks(Task.session_id == sid)
    assert total == 1 and listed[0].id == owner
    assert results.get_result(out).owner_task_id == ""
    # out is still free: the same valid task now goes through.
    assert len(submit()) == 1


def _raw_task_filter(field: tasks_fields_pb2.TaskField, **condition: Any) -> tasks_filters_pb2.Filters:
    return tasks_filters_pb2.Filters(
        **{
            "or": [
                tasks_filters_pb2.FiltersAnd(
                    **{"and": [tasks_filters_pb2.FilterField(field=field, **condition)]}
                )
            ]
        }
    )


def test_malformed_filters_are_invalid_argument(channel: grpc.Channel, sid: str) -> None:
    status_field = tasks_fields_pb2.TaskField(
        task_summary_field=tasks_fields_pb2.TaskSummaryField(
            field=tasks_fields_pb2.TASK_SUMMARY_ENUM_FIELD_STATUS
        )
    )
    string_on_status = filters_common_pb2.FilterString(
        value="SUBMITTED", operator=filters_common_pb2.FILTER_STRING_OPERATOR_EQUAL
    )
    request = tasks_common_pb2.ListTasksRequest(
        page=0, page_size=10, filters=_raw_task_filter(status_field, filter_string=string_on_status)
    )
    stub = TasksStub(channel)
    for method in (stub.ListTasks, stub.ListTasksDetailed):
        error = rpc_error(grpc.StatusCode.INVALID_ARGUMENT, method, request, timeout=TIMEOUT)
        assert error.details()
    count = tasks_common_pb2.CountTasksByStatusRequest(filters=request.filters)
    rpc_error(grpc.StatusCode.INVALID_ARGUMENT, stub.CountTasksByStatus, count, timeout=TIMEOUT)

    # A date condition on a string field of results.
    name_field = results_fields_pb2.ResultField(
        result_raw_field=results_fields_pb2.ResultRawField(
            field=results_fields_pb2.RESULT_RAW_ENUM_FIELD_NAME
        )
    )
    date_on_name = results_filters_pb2.FilterField(
        field=name_field,
        filter_date=filters_common_pb2.FilterDate(operator=filters_common_pb2.FILTER_DATE_OPERATOR_EQUAL),
    )
    bad_results = results_common_pb2.ListResultsRequest(
        page=0,
        page_size=10,
        filters=results_filters_pb2.Filters(
            **{"or": [results_filters_pb2.FiltersAnd(**{"and": [date_on_name]})]}
        ),
    )
    rpc_error(
        grpc.StatusCode.INVALID_ARGUMENT, ResultsStub(channel).ListResults, bad_results, timeout=TIMEOUT
    )

    # The same request with a well-formed condition is answered.
    good = tasks_common_pb2.ListTasksRequest(
        page=0,
        page_size=10,
        filters=_raw_task_filter(
            status_field,
            filter_status=tasks_filters_pb2.FilterStatus(
                value=TaskStatus.SUBMITTED, operator=filters_common_pb2.FILTER_STATUS_OPERATOR_EQUAL
            ),
        ),
    )
    assert stub.ListTasks(good, timeout=TIMEOUT).total == 0
