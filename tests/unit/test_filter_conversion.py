"""Protobuf filters and sorts, built with the official Python client's DSL, turned into the domain AST."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from armonik.common import Partition, Result, ResultStatus, Session, SessionStatus, Task, TaskStatus
from armonik.common.objects import Application
from armonik.protogen.common import (
    applications_fields_pb2,
    filters_common_pb2,
    partitions_fields_pb2,
    results_fields_pb2,
    results_filters_pb2,
    sessions_fields_pb2,
    sessions_filters_pb2,
    sort_direction_pb2,
    tasks_fields_pb2,
    tasks_filters_pb2,
)

from armonik_core.control_plane import filters as conv
from armonik_core.domain.errors import InvalidArgument
from armonik_core.domain.filters import Condition, FieldKind, FieldRef, Filter, Op, SortKey
from tests.unit.filter_cases import ST, A, B, D, N, S, T, cond

ASC, DESC = sort_direction_pb2.SORT_DIRECTION_ASC, sort_direction_pb2.SORT_DIRECTION_DESC
WHEN = datetime(2024, 5, 6, 7, 8, 9, 250000, tzinfo=timezone.utc)


def only(flt: Filter) -> Condition:
    """The single condition of a one-condition filter."""
    assert len(flt.any_of) == 1 and len(flt.any_of[0]) == 1, flt
    return flt.any_of[0][0]


# -- the DSL's expressions --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        (Task.id == "t1", cond("task_id", S, Op.EQ, "t1")),
        (Task.session_id != "s", cond("session_id", S, Op.NE, "s")),
        (Task.owner_pod_id.contains("pod"), cond("owner_pod_id", S, Op.CONTAINS, "pod")),
        (~Task.initial_task_id.contains("x"), cond("initial_task_id", S, Op.NOT_CONTAINS, "x")),
        (Task.created_by.startswith("a%_"), cond("created_by", S, Op.STARTS_WITH, "a%_")),
        (Task.pod_hostname.endswith(".local"), cond("pod_hostname", S, Op.ENDS_WITH, ".local")),
        (Task.payload_id == "", cond("payload_id", S, Op.EQ, "")),
        (Task.output.error.contains("boom"), cond("error", S, Op.CONTAINS, "boom")),
        (Task.status == TaskStatus.COMPLETED, cond("status", ST, Op.EQ, 4)),
        (Task.status != TaskStatus.ERROR, cond("status", ST, Op.NE, 5)),
        (Task.created_at < WHEN, cond("created_at", D, Op.LT, WHEN.timestamp())),
        (Task.submitted_at <= WHEN, cond("submitted_at", D, Op.LE, WHEN.timestamp())),
        (Task.started_at >= WHEN, cond("started_at", D, Op.GE, WHEN.timestamp())),
        (Task.ended_at > WHEN, cond("ended_at", D, Op.GT, WHEN.timestamp())),
        (Task.received_at == WHEN, cond("received_at", D, Op.EQ, WHEN.timestamp())),
        (Task.acquired_at != WHEN, cond("acquired_at", D, Op.NE, WHEN.timestamp())),
        (Task.processed_at > WHEN, cond("processed_at", D, Op.GT, WHEN.timestamp())),
        (Task.fetched_at > WHEN, cond("fetched_at", D, Op.GT, WHEN.timestamp())),
        (Task.pod_ttl < WHEN, cond("pod_ttl", D, Op.LT, WHEN.timestamp())),
        (
            Task.creation_to_end_duration < timedelta(seconds=2.5),
            cond("creation_to_end_duration", T, Op.LT, 2.5),
        ),
        (
            Task.processing_to_end_duration <= timedelta(minutes=1),
            cond("processing_to_end_duration", T, Op.LE, 60.0),
        ),
        (
            Task.received_to_end_duration >= timedelta(milliseconds=5),
            cond("received_to_end_duration", T, Op.GE, 0.005),
        ),
        (Task.options.max_duration > timedelta(hours=1), cond("options.max_duration", T, Op.GT, 3600.0)),
        (Task.options.max_retries == 3, cond("options.max_retries", N, Op.EQ, 3)),
        (Task.options.priority >= 2, cond("options.priority", N, Op.GE, 2)),
        (Task.options.partition_id == "p", cond("options.partition_id", S, Op.EQ, "p")),
        (Task.options.application_name == "a", cond("options.application_name", S, Op.EQ, "a")),
        (Task.options.application_version == "1", cond("options.application_version", S, Op.EQ, "1")),
        (Task.options.application_namespace == "n", cond("options.application_namespace", S, Op.EQ, "n")),
        (Task.options.application_service == "sv", cond("options.application_service", S, Op.EQ, "sv")),
        (Task.options.engine_type != "e", cond("options.engine_type", S, Op.NE, "e")),
        (Task.options["k"] == "v", cond("options.options", S, Op.EQ, "v", key="k")),
        (Task.options['we"ird'].startswith("x"), cond("options.options", S, Op.STARTS_WITH, "x", 'we"ird')),
    ],
)
def test_task_expressions(expression: Any, expected: Condition) -> None:
    assert only(conv.task_filter(expression.to_message())) == expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        (Session.session_id == "s", cond("session_id", S, Op.EQ, "s")),
        (Session.status == SessionStatus.CLOSED, cond("status", ST, Op.EQ, 4)),
        (Session.partition_ids.contains("p"), cond("partition_ids", A, Op.CONTAINS, "p")),
        (~Session.partition_ids.contains("p"), cond("partition_ids", A, Op.NOT_CONTAINS, "p")),
        (Session.client_submission == True, cond("client_submission", B, Op.EQ, True)),  # noqa: E712
        (Session.worker_submission == False, cond("worker_submission", B, Op.EQ, False)),  # noqa: E712
        (Session.worker_submission != True, cond("worker_submission", B, Op.EQ, False)),  # noqa: E712
        (Session.created_at > WHEN, cond("created_at", D, Op.GT, WHEN.timestamp())),
        (Session.cancelled_at <= WHEN, cond("cancelled_at", D, Op.LE, WHEN.timestamp())),
        (Session.closed_at >= WHEN, cond("closed_at", D, Op.GE, WHEN.timestamp())),
        (Session.purged_at < WHEN, cond("purged_at", D, Op.LT, WHEN.timestamp())),
        (Session.deleted_at != WHEN, cond("deleted_at", D, Op.NE, WHEN.timestamp())),
        (Session.duration != timedelta(seconds=3), cond("duration", T, Op.NE, 3.0)),
        (Session.duration == timedelta(seconds=3), cond("duration", T, Op.EQ, 3.0)),
        (Session.options.priority < 5, cond("options.priority", N, Op.LT, 5)),
        (Session.options.max_duration <= timedelta(0), cond("options.max_duration", T, Op.LE, 0.0)),
        (Session.options.partition_id.endswith("x"), cond("options.partition_id", S, Op.ENDS_WITH, "x")),
        (Session.options["gpu"] != "yes", cond("options.options", S, Op.NE, "yes", key="gpu")),
    ],
)
def test_session_expressions(expression: Any, expected: Condition) -> None:
    assert only(conv.session_filter(expression.to_message())) == expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        (Result.session_id == "s", cond("session_id", S, Op.EQ, "s")),
        (Result.name.contains("out"), cond("name", S, Op.CONTAINS, "out")),
        (Result.owner_task_id != "t", cond("owner_task_id", S, Op.NE, "t")),
        (Result.result_id.startswith("r"), cond("result_id", S, Op.STARTS_WITH, "r")),
        (Result.created_by == "t0", cond("created_by", S, Op.EQ, "t0")),
        (Result.status == ResultStatus.COMPLETED, cond("status", ST, Op.EQ, 2)),
        (Result.created_at >= WHEN, cond("created_at", D, Op.GE, WHEN.timestamp())),
        (Result.completed_at < WHEN, cond("completed_at", D, Op.LT, WHEN.timestamp())),
        (Result.size > 10, cond("size", N, Op.GT, 10)),
        (Result.size <= -1, cond("size", N, Op.LE, -1)),
    ],
)
def test_result_expressions(expression: Any, expected: Condition) -> None:
    """Results number their conditions differently from tasks (filter_number is 6, not 3)."""
    assert only(conv.result_filter(expression.to_message())) == expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        (Partition.id == "default", cond("partition_id", S, Op.EQ, "default")),
        (Partition.parent_partition_ids.contains("p"), cond("parent_partition_ids", A, Op.CONTAINS, "p")),
        (Partition.pod_reserved >= 1, cond("pod_reserved", N, Op.GE, 1)),
        (Partition.pod_max < 100, cond("pod_max", N, Op.LT, 100)),
        (Partition.preemption_percentage == 50, cond("preemption_percentage", N, Op.EQ, 50)),
        (Partition.priority != 2, cond("priority", N, Op.NE, 2)),
    ],
)
def test_partition_expressions(expression: Any, expected: Condition) -> None:
    assert only(conv.partition_filter(expression.to_message())) == expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        (Application.name == "app", cond("options.application_name", S, Op.EQ, "app")),
        (Application.version != "1.0", cond("options.application_version", S, Op.NE, "1.0")),
        (
            Application.namespace.startswith("ns"),
            cond("options.application_namespace", S, Op.STARTS_WITH, "ns"),
        ),
        (Application.service.contains("svc"), cond("options.application_service", S, Op.CONTAINS, "svc")),
    ],
)
def test_application_expressions(expression: Any, expected: Condition) -> None:
    assert only(conv.application_filter(expression.to_message())) == expected


def test_disjunction_of_conjunctions_keeps_its_shape() -> None:
    expression = ((Task.status == TaskStatus.COMPLETED) & (Task.session_id == "s")) | ~(Task.id == "x")
    assert conv.task_filter(expression.to_message()) == Filter.of(
        [cond("status", ST, Op.EQ, int(TaskStatus.COMPLETED)), cond("session_id", S, Op.EQ, "s")],
        [cond("task_id", S, Op.NE, "x")],
    )


def test_negated_conjunction_distributes_into_dnf() -> None:
    expression = ~((Result.size > 10) & (Result.name == "a"))
    assert conv.result_filter(expression.to_message()) == Filter.of(
        [cond("size", N, Op.LE, 10)], [cond("name", S, Op.NE, "a")]
    )


def test_empty_filters_match_everything() -> None:
    assert conv.task_filter(tasks_filters_pb2.Filters()).is_empty
    assert conv.session_filter(sessions_filters_pb2.Filters()) == Filter()


def test_date_and_duration_keep_sub_second_precision() -> None:
    date = {"seconds": 1_700_000_000, "nanos": 123_000_000}
    after = filters_common_pb2.FILTER_DATE_OPERATOR_AFTER_OR_EQUAL
    message = filters_of(tasks_filters_pb2, task_summary("POD_TTL"), "filter_date", operator=after)
    getattr(getattr(message, "or")[0], "and")[0].filter_date.value.FromJsonString("2023-11-14T22:13:20.123Z")
    assert only(conv.task_filter(message)) == cond("pod_ttl", D, Op.GE, date["seconds"] + date["nanos"] / 1e9)
    shorter = filters_common_pb2.FILTER_DURATION_OPERATOR_SHORTER_THAN_OR_EQUAL
    message = filters_of(tasks_filters_pb2, task_option("MAX_DURATION"), "filter_duration", operator=shorter)
    getattr(getattr(message, "or")[0], "and")[0].filter_duration.value.FromNanoseconds(1_500_000_001)
    assert only(conv.task_filter(message)) == cond("options.max_duration", T, Op.LE, 1 + 500_000_001 / 1e9)


# -- every enum value of every field table ---------------------------------------------------------------------
TASK_SUMMARY = {
    "TASK_ID": ("task_id", S),
    "SESSION_ID": ("session_id", S),
    "OWNER_POD_ID": ("owner_pod_id", S),
    "INITIAL_TASK_ID": ("initial_task_id", S),
    "STATUS": ("status", ST),
    "CREATED_AT": ("created_at", D),
    "SUBMITTED_AT": ("submitted_at", D),
    "STARTED_AT": ("started_at", D),
    "ENDED_AT": ("ended_at", D),
    "RECEIVED_AT": ("received_at", D),
    "ACQUIRED_AT": ("acquired_at", D),
    "PROCESSED_AT": ("processed_at", D),
    "FETCHED_AT": ("fetched_at", D),
    "POD_TTL": ("pod_ttl", D),
    "CREATION_TO_END_DURATION": ("creation_to_end_duration", T),
    "PROCESSING_TO_END_DURATION": ("processing_to_end_duration", T),
    "RECEIVED_TO_END_DURATION": ("received_to_end_duration", T),
    "POD_HOSTNAME": ("pod_hostname", S),
    "ERROR": ("error", S),
    "PAYLOAD_ID": ("payload_id", S),
    "CREATED_BY": ("created_by", S),
}
OPTIONS = {
    "MAX_DURATION": ("options.max_duration", T),
    "MAX_RETRIES": ("options.max_retries", N),
    "PRIORITY": ("options.priority", N),
    "PARTITION_ID": ("options.partition_id", S),
    "APPLICATION_NAME": ("options.application_name", S),
    "APPLICATION_VERSION": ("options.application_version", S),
    "APPLICATION_NAMESPACE": ("options.application_namespace", S),
    "APPLICATION_SERVICE": ("options.application_service", S),
    "ENGINE_TYPE": ("options.engine_type", S),
}
SESSION_RAW = {
    "SESSION_ID": ("session_id", S),
    "STATUS": ("status", ST),
    "PARTITION_IDS": ("partition_ids", A),
    "CREATED_AT": ("created_at", D),
    "CANCELLED_AT": ("cancelled_at", D),
    "CLOSED_AT": ("closed_at", D),
    "PURGED_AT": ("purged_at", D),
    "DELETED_AT": ("deleted_at", D),
    "DURATION": ("duration", T),
    "CLIENT_SUBMISSION": ("client_submission", B),
    "WORKER_SUBMISSION": ("worker_submission", B),
}
RESULT_RAW = {
    "SESSION_ID": ("session_id", S),
    "NAME": ("name", S),
    "OWNER_TASK_ID": ("owner_task_id", S),
    "STATUS": ("status", ST),
    "CREATED_AT": ("created_at", D),
    "COMPLETED_AT": ("completed_at", D),
    "RESULT_ID": ("result_id", S),
    "SIZE": ("size", N),
    "CREATED_BY": ("created_by", S),
    "OPAQUE_ID": ("opaque_id", S),
    "MANUAL_DELETION": ("manual_deletion", B),
}
PARTITION_RAW = {
    "ID": ("partition_id", S),
    "PARENT_PARTITION_IDS": ("parent_partition_ids", A),
    "POD_RESERVED": ("pod_reserved", N),
    "POD_MAX": ("pod_max", N),
    "PREEMPTION_PERCENTAGE": ("preemption_percentage", N),
    "PRIORITY": ("priority", N),
}
APPLICATION_RAW = {
    "NAME": ("options.application_name", S),
    "VERSION": ("options.application_version", S),
    "NAMESPACE": ("options.application_namespace", S),
    "SERVICE": ("options.application_service", S),
}


def task_summary(name: str) -> tasks_fields_pb2.TaskField:
    value = tasks_fields_pb2.TaskSummaryEnumField.Value("TASK_SUMMARY_ENUM_FIELD_" + name)
    return tasks_fields_pb2.TaskField(task_summary_field=tasks_fields_pb2.TaskSummaryField(field=value))


def task_option(name: str) -> tasks_fields_pb2.TaskField:
    value = tasks_fields_pb2.TaskOptionEnumField.Value("TASK_OPTION_ENUM_FIELD_" + name)
    return tasks_fields_pb2.TaskField(task_option_field=tasks_fields_pb2.TaskOptionField(field=value))


def session_raw(name: str) -> sessions_fields_pb2.SessionField:
    value = sessions_fields_pb2.SessionRawEnumField.Value("SESSION_RAW_ENUM_FIELD_" + name)
    return sessions_fields_pb2.SessionField(
        session_raw_field=sessions_fields_pb2.SessionRawField(field=value)
    )


def session_option(name: str) -> sessions_fields_pb2.SessionField:
    value = sessions_fields_pb2.TaskOptionEnumField.Value("TASK_OPTION_ENUM_FIELD_" + name)
    return sessions_fields_pb2.SessionField(
        task_option_field=sessions_fields_pb2.TaskOptionField(field=value)
    )


def result_raw(name: str) -> results_fields_pb2.ResultField:
    value = results_fields_pb2.ResultRawEnumField.Value("RESULT_RAW_ENUM_FIELD_" + name)
    return results_fields_pb2.ResultField(result_raw_field=results_fields_pb2.ResultRawField(field=value))


def partition_raw(name: str) -> partitions_fields_pb2.PartitionField:
    value = partitions_fields_pb2.PartitionRawEnumField.Value("PARTITION_RAW_ENUM_FIELD_" + name)
    return partitions_fields_pb2.PartitionField(
        partition_raw_field=partitions_fields_pb2.PartitionRawField(field=value)
    )


def application_raw(name: str) -> applications_fields_pb2.ApplicationField:
    value = applications_fields_pb2.ApplicationRawEnumField.Value("APPLICATION_RAW_ENUM_FIELD_" + name)
    return applications_fields_pb2.ApplicationField(
        application_field=applications_fields_pb2.ApplicationRawField(field=value)
    )


#: (field-message builder, sort function, filter function, filter module, expected table)
ENTITY_TABLES = [
    (task_summary, conv.task_sort, conv.task_filter, tasks_filters_pb2, TASK_SUMMARY),
    (task_option, conv.task_sort, conv.task_filter, tasks_filters_pb2, OPTIONS),
    (session_raw, conv.session_sort, conv.session_filter, sessions_filters_pb2, SESSION_RAW),
    (session_option, conv.session_sort, conv.session_filter, sessions_filters_pb2, OPTIONS),
    (result_raw, conv.result_sort, conv.result_filter, results_filters_pb2, RESULT_RAW),
    (partition_raw, conv.partition_sort, conv.partition_filter, None, PARTITION_RAW),
    (application_raw, None, conv.application_filter, None, APPLICATION_RAW),
]
CONDITION_FOR = {
    S: "filter_string",
    N: "filter_number",
    D: "filter_date",
    T: "filter_duration",
    B: "filter_boolean",
    A: "filter_array",
    ST: "filter_status",
}


def filters_of(module: Any, field: Any, member: str, **condition: Any) -> Any:
    """A one-condition `Filters` message of `module`, built field by field as a non-DSL client would."""
    flt = module.Filters()
    conjunction = getattr(flt, "or").add()
    filter_field = getattr(conjunction, "and").add()
    filter_field.field.CopyFrom(field)
    getattr(filter_field, member).SetInParent()
    for name, value in condition.items():
        setattr(getattr(filter_field, member), name, value)
    return flt


@pytest.mark.parametrize(
    ("build", "sort", "name", "path", "kind"),
    [
        (build, sort, name, path, kind)
        for build, sort, _, _, table in ENTITY_TABLES
        if sort is not None
        for name, (path, kind) in table.items()
    ],
)
def test_every_field_sorts_on_its_record_path(build: Any, sort: Any, name: str, path: str, kind: Any) -> None:
    keys = sort(build(name), DESC)
    assert keys[0] == SortKey(FieldRef(path), descending=True)


@pytest.mark.parametrize(
    ("build", "convert", "module", "name", "path", "kind"),
    [
        (build, convert, module, name, path, kind)
        for build, _, convert, module, table in ENTITY_TABLES
        if module is not None
        for name, (path, kind) in table.items()
        if CONDITION_FOR[kind] in module.FilterField.DESCRIPTOR.fields_by_name
    ],
)
def test_every_field_filters_on_its_record_path_and_kind(
    build: Any, convert: Any, module: Any, name: str, path: str, kind: FieldKind
) -> None:
    condition = only(convert(filters_of(module, build(name), CONDITION_FOR[kind])))
    assert (condition.field, condition.kind) == (FieldRef(path), kind)


def test_tables_cover_every_enum_value() -> None:
    """A field added to the protos must be mapped (or rejected on purpose), not silently unknown."""
    enums: list[tuple[Any, set[str]]] = [
        (tasks_fields_pb2.TaskSummaryEnumField, set(TASK_SUMMARY)),
        (tasks_fields_pb2.TaskOptionEnumField, set(OPTIONS)),
        (sessions_fields_pb2.SessionRawEnumField, {*SESSION_RAW, "OPTIONS"}),
        (results_fields_pb2.ResultRawEnumField, set(RESULT_RAW)),
        (partitions_fields_pb2.PartitionRawEnumField, set(PARTITION_RAW)),
        (applications_fields_pb2.ApplicationRawEnumField, set(APPLICATION_RAW)),
    ]
    for enum, expected in enums:
        names = {name.split("_ENUM_FIELD_", 1)[1] for name in enum.keys()} - {"UNSPECIFIED"}
        assert names == expected, enum


# -- sorts -----------------------------------------------------------------------------------------------------
def test_unset_sort_field_gives_the_default_sort_ascending() -> None:
    unspecified = sort_direction_pb2.SORT_DIRECTION_UNSPECIFIED
    assert conv.task_sort(tasks_fields_pb2.TaskField(), unspecified) == (SortKey(FieldRef("task_id")),)
    assert conv.session_sort(sessions_fields_pb2.SessionField(), ASC) == (SortKey(FieldRef("session_id")),)
    assert conv.result_sort(results_fields_pb2.ResultField(), ASC) == (SortKey(FieldRef("result_id")),)
    assert conv.partition_sort(partitions_fields_pb2.PartitionField(), ASC) == (
        SortKey(FieldRef("partition_id")),
    )
    assert conv.application_sort([], unspecified) == tuple(
        SortKey(FieldRef(f"options.application_{name}"))
        for name in ("name", "version", "namespace", "service")
    )


def test_unspecified_enum_in_sort_counts_as_unset() -> None:
    assert conv.task_sort(task_summary("UNSPECIFIED"), DESC) == (SortKey(FieldRef("task_id"), True),)


def test_sort_appends_the_identity_as_tie_break() -> None:
    assert conv.task_sort(Task.status.field, DESC) == (
        SortKey(FieldRef("status"), True),
        SortKey(FieldRef("task_id"), True),
    )
    assert conv.result_sort(Result.result_id.field, ASC) == (SortKey(FieldRef("result_id")),)


def test_sort_on_an_options_key() -> None:
    field = Session.options["tier"].field
    assert conv.session_sort(field, ASC) == (
        SortKey(FieldRef("options.options", "tier")),
        SortKey(FieldRef("session_id")),
    )


def test_application_sort_keeps_the_requested_order_then_the_rest() -> None:
    fields = [Application.service.field, Application.name.field]
    assert [key.field.path for key in conv.application_sort(fields, DESC)] == [
        "options.application_service",
        "options.application_name",
        "options.application_version",
        "options.application_namespace",
    ]
    assert all(key.descending for key in conv.application_sort(fields, DESC))


# -- what cannot be understood ---------------------------------------------------------------------------------
def error_of(call: Any, *args: Any) -> str:
    with pytest.raises(InvalidArgument) as info:
        call(*args)
    return str(info.value)


def test_unset_field_is_rejected() -> None:
    message = filters_of(tasks_filters_pb2, tasks_fields_pb2.TaskField(), "filter_string", value="x")
    assert "does not say which field" in error_of(conv.task_filter, message)
    message = filters_of(tasks_filters_pb2, task_summary("UNSPECIFIED"), "filter_string", value="x")
    assert "does not say which field" in error_of(conv.task_filter, message)


def test_condition_of_the_wrong_kind_is_rejected() -> None:
    message = filters_of(results_filters_pb2, result_raw("SIZE"), "filter_string", value="10")
    error = error_of(conv.result_filter, message)
    assert "filter_string" in error and "'size'" in error and "number" in error and "filter_number" in error
    message = filters_of(tasks_filters_pb2, task_summary("CREATED_AT"), "filter_status", value=1)
    assert "'created_at'" in error_of(conv.task_filter, message)
    message = filters_of(tasks_filters_pb2, task_summary("STATUS"), "filter_number", value=1)
    assert "filter_status" in error_of(conv.task_filter, message)


def test_options_key_only_takes_strings() -> None:
    message = filters_of(tasks_filters_pb2, Task.options["n"].field, "filter_number", value=1)
    assert "options.options['n']" in error_of(conv.task_filter, message)


def test_missing_condition_is_rejected() -> None:
    message = tasks_filters_pb2.Filters()
    getattr(getattr(message, "or").add(), "and").add().field.CopyFrom(task_summary("ERROR"))
    assert "has no condition; expected filter_string" in error_of(conv.task_filter, message)


def test_unknown_field_enum_value_is_rejected() -> None:
    field = tasks_fields_pb2.TaskField(task_summary_field=tasks_fields_pb2.TaskSummaryField(field=99))
    message = filters_of(tasks_filters_pb2, field, "filter_string", value="x")
    assert "99" in error_of(conv.task_filter, message)
    assert "99" in error_of(conv.task_sort, field, ASC)


def test_session_options_field_is_rejected_with_a_hint() -> None:
    message = filters_of(sessions_filters_pb2, session_raw("OPTIONS"), "filter_string", value="x")
    error = error_of(conv.session_filter, message)
    assert "SESSION_RAW_ENUM_FIELD_OPTIONS" in error and "task option fields" in error
    assert "SESSION_RAW_ENUM_FIELD_OPTIONS" in error_of(conv.session_sort, session_raw("OPTIONS"), ASC)


def test_unknown_operator_is_rejected() -> None:
    message = filters_of(results_filters_pb2, result_raw("SIZE"), "filter_number", value=1, operator=42)
    error = error_of(conv.result_filter, message)
    assert "42" in error and "LESS_THAN" in error
    message = filters_of(sessions_filters_pb2, session_raw("CLIENT_SUBMISSION"), "filter_boolean", operator=1)
    assert "expected one of IS" in error_of(conv.session_filter, message)


@pytest.mark.parametrize(
    ("module", "field", "convert", "status"),
    [
        (tasks_filters_pb2, task_summary("STATUS"), conv.task_filter, "COMPLETED"),
        (sessions_filters_pb2, session_raw("STATUS"), conv.session_filter, "RUNNING"),
        (results_filters_pb2, result_raw("STATUS"), conv.result_filter, "ABORTED"),
    ],
)
def test_status_must_be_a_value_of_the_entity_status(
    module: Any, field: Any, convert: Any, status: str
) -> None:
    error = error_of(convert, filters_of(module, field, "filter_status", value=42))
    assert "42" in error and status in error


def test_result_status_notfound_is_accepted() -> None:
    message = filters_of(results_filters_pb2, result_raw("STATUS"), "filter_status", value=127)
    assert only(conv.result_filter(message)) == cond("status", ST, Op.EQ, 127)


def test_unknown_sort_direction_is_rejected() -> None:
    assert "sort direction 7" in error_of(conv.task_sort, Task.id.field, 7)
