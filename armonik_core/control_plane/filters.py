"""Translate the List RPCs' protobuf filters and sorts into the domain filter model.

Each entity has one table per field enum, mapping an enum value to the record attribute it names and the
kind of value that attribute holds; everything else (operators, values, validation, messages) is shared.
The wire format numbers the `value_condition` oneof differently per entity, so conditions are always read
by member name through `WhichOneof`. Whatever cannot be understood raises `InvalidArgument` with a message
naming the field and what was expected, because the client is the one who has to fix it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from types import MappingProxyType
from typing import Any

from armonik.protogen.common import (
    applications_fields_pb2,
    applications_filters_pb2,
    filters_common_pb2,
    partitions_fields_pb2,
    partitions_filters_pb2,
    results_fields_pb2,
    results_filters_pb2,
    sessions_fields_pb2,
    sessions_filters_pb2,
    sort_direction_pb2,
    tasks_fields_pb2,
    tasks_filters_pb2,
)
from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper
from google.protobuf.message import Message

from armonik_core.domain.errors import InvalidArgument
from armonik_core.domain.filters import Condition, FieldKind, FieldRef, Filter, Op, SortKey
from armonik_core.domain.statuses import ResultStatus, SessionStatus, TaskStatus

_Target = tuple[str, FieldKind]
_Table = Mapping[int, _Target]

#: The member of the task and session field oneofs that names a key of the free-form options map.
_GENERIC_OPTION = "task_option_generic_field"
_OPTIONS_MAP = "options.options"


def _table(
    enum: EnumTypeWrapper, path_prefix: str = "", renamed: Mapping[str, str] | None = None, **kinds: str
) -> _Table:
    """Map each value of a field enum to (record path, kind).

    `kinds` lists, per FieldKind name, the attributes of that kind. An attribute's enum value is named after
    it (`created_at` -> `..._CREATED_AT`) unless `renamed` says otherwise, so the table cannot drift from
    the protos silently: a misspelt name fails at import.
    """
    prefix = enum.Name(0).removesuffix("UNSPECIFIED")
    renamed = renamed or {}
    return MappingProxyType(
        {
            enum.Value(prefix + renamed.get(name, name).upper()): (path_prefix + name, FieldKind[kind])
            for kind, names in kinds.items()
            for name in names.split()
        }
    )


def _option_table(enum: EnumTypeWrapper) -> _Table:
    return _table(
        enum,
        "options.",
        DURATION="max_duration",
        NUMBER="max_retries priority",
        STRING="partition_id application_name application_version application_namespace "
        "application_service engine_type",
    )


@dataclass(frozen=True, slots=True)
class _Entity:
    """What the converter needs to know about one listed entity."""

    noun: str
    #: member of the field message's `field` oneof -> table of its enum
    tables: Mapping[str, _Table]
    status: type[IntEnum] | None
    #: sort used when the request names no field; also appended as a tie-break, as it is unique
    default_sort: tuple[str, ...]


_TASKS = _Entity(
    "tasks",
    {
        "task_summary_field": _table(
            tasks_fields_pb2.TaskSummaryEnumField,
            STRING="task_id session_id owner_pod_id initial_task_id pod_hostname error payload_id created_by",
            STATUS="status",
            DATE="created_at submitted_at started_at ended_at received_at acquired_at processed_at "
            "fetched_at pod_ttl",
            DURATION="creation_to_end_duration processing_to_end_duration received_to_end_duration",
        ),
        "task_option_field": _option_table(tasks_fields_pb2.TaskOptionEnumField),
    },
    TaskStatus,
    ("task_id",),
)
_SESSIONS = _Entity(
    "sessions",
    {
        "session_raw_field": _table(
            sessions_fields_pb2.SessionRawEnumField,
            STRING="session_id",
            STATUS="status",
            ARRAY="partition_ids",
            DATE="created_at cancelled_at closed_at purged_at deleted_at",
            DURATION="duration",
            BOOLEAN="client_submission worker_submission",
        ),
        "task_option_field": _option_table(sessions_fields_pb2.TaskOptionEnumField),
    },
    SessionStatus,
    ("session_id",),
)
_RESULTS = _Entity(
    "results",
    {
        "result_raw_field": _table(
            results_fields_pb2.ResultRawEnumField,
            STRING="session_id name owner_task_id result_id created_by opaque_id",
            STATUS="status",
            DATE="created_at completed_at",
            NUMBER="size",
            BOOLEAN="manual_deletion",
        )
    },
    ResultStatus,
    ("result_id",),
)
_PARTITIONS = _Entity(
    "partitions",
    {
        "partition_raw_field": _table(
            partitions_fields_pb2.PartitionRawEnumField,
            renamed={"partition_id": "id"},
            STRING="partition_id",
            ARRAY="parent_partition_ids",
            NUMBER="pod_reserved pod_max preemption_percentage priority",
        )
    },
    None,
    ("partition_id",),
)
_APPLICATIONS = _Entity(
    "applications",
    {
        "application_field": _table(
            applications_fields_pb2.ApplicationRawEnumField,
            "options.application_",
            STRING="name version namespace service",
        )
    },
    None,
    tuple(f"options.application_{name}" for name in ("name", "version", "namespace", "service")),
)

#: Enum values that are real fields but hold no single comparable value, with what to use instead.
_UNSUPPORTED = MappingProxyType(
    {"SESSION_RAW_ENUM_FIELD_OPTIONS": "use the task option fields or an options key instead"}
)

# -- conditions ----------------------------------------------------------------------------------------------
_OPS_BY_SUFFIX = MappingProxyType(
    {
        "EQUAL": Op.EQ,
        "IS": Op.EQ,
        "NOT_EQUAL": Op.NE,
        "LESS_THAN": Op.LT,
        "BEFORE": Op.LT,
        "SHORTER_THAN": Op.LT,
        "LESS_THAN_OR_EQUAL": Op.LE,
        "BEFORE_OR_EQUAL": Op.LE,
        "SHORTER_THAN_OR_EQUAL": Op.LE,
        "GREATER_THAN_OR_EQUAL": Op.GE,
        "AFTER_OR_EQUAL": Op.GE,
        "LONGER_THAN_OR_EQUAL": Op.GE,
        "GREATER_THAN": Op.GT,
        "AFTER": Op.GT,
        "LONGER_THAN": Op.GT,
        "CONTAINS": Op.CONTAINS,
        "NOT_CONTAINS": Op.NOT_CONTAINS,
        "STARTS_WITH": Op.STARTS_WITH,
        "ENDS_WITH": Op.ENDS_WITH,
    }
)


@dataclass(frozen=True, slots=True)
class _ConditionKind:
    """One member of the `value_condition` oneof: the kind of field it applies to, its operators by enum
    value (with their names, for error messages) and how to read its value."""

    kind: FieldKind
    operators: Mapping[int, Op]
    operator_names: Mapping[int, str]
    value: Callable[[Any], Any]


def _condition_kind(kind: FieldKind, read: Callable[[Any], Any]) -> _ConditionKind:
    """The `filter_<kind>` member: its operator enum is `Filter<Kind>Operator`, its value read by `read`."""
    enum: EnumTypeWrapper = getattr(filters_common_pb2, f"Filter{kind.value.capitalize()}Operator")
    names = {number: name.split("_OPERATOR_", 1)[1] for name, number in enum.items()}
    ops = {number: _OPS_BY_SUFFIX[suffix] for number, suffix in names.items() if suffix in _OPS_BY_SUFFIX}
    return _ConditionKind(kind, MappingProxyType(ops), MappingProxyType(names), lambda m: read(m.value))


def _seconds(value: Any) -> float:
    """A google Timestamp or Duration as float seconds, the unit of the domain records."""
    return float(value.seconds + value.nanos / 1e9)


#: How each kind of condition reads its value.
_READERS: dict[FieldKind, Callable[[Any], Any]] = {
    FieldKind.STRING: str,
    FieldKind.NUMBER: int,
    FieldKind.DATE: _seconds,
    FieldKind.DURATION: _seconds,
    FieldKind.BOOLEAN: bool,
    FieldKind.STATUS: int,
    FieldKind.ARRAY: str,
}
_CONDITIONS = MappingProxyType(
    {f"filter_{kind.value}": _condition_kind(kind, read) for kind, read in _READERS.items()}
)
_CONDITION_FOR_KIND = MappingProxyType({spec.kind: name for name, spec in _CONDITIONS.items()})


# -- fields --------------------------------------------------------------------------------------------------
def _enum_name(inner: Message, number: int) -> str | None:
    enum = inner.DESCRIPTOR.fields_by_name["field"].enum_type
    value = None if enum is None else enum.values_by_number.get(number)
    return None if value is None else str(value.name)


def _field(entity: _Entity, msg: Message) -> tuple[FieldRef, FieldKind] | None:
    """The record field a field message names, or None when it names nothing (unset or UNSPECIFIED)."""
    member = msg.WhichOneof("field")
    if member is None:
        return None
    inner = getattr(msg, member)
    if member == _GENERIC_OPTION:
        return FieldRef(_OPTIONS_MAP, key=str(inner.field)), FieldKind.STRING
    number = int(inner.field)
    if number == 0:
        return None
    target = entity.tables.get(member, {}).get(number)
    if target is not None:
        return FieldRef(target[0]), target[1]
    name = _enum_name(inner, number)
    if name is None:
        raise InvalidArgument(f"Unknown {member} value {number}: it names no field of {entity.noun}")
    hint = _UNSUPPORTED.get(name, "it holds no single comparable value")
    raise InvalidArgument(f"{entity.noun.capitalize()} cannot be filtered or sorted on {name}: {hint}")


def _condition(entity: _Entity, msg: Any) -> Condition:
    resolved = _field(entity, msg.field)
    if resolved is None:
        raise InvalidArgument(f"A filter condition on {entity.noun} does not say which field it applies to")
    ref, kind = resolved
    member = msg.WhichOneof("value_condition")
    if member is None:
        expected = _CONDITION_FOR_KIND[kind]
        raise InvalidArgument(
            f"The filter on {entity.noun} field '{ref}' has no condition; expected {expected}"
        )
    spec = _CONDITIONS[member]
    if spec.kind is not kind:
        raise InvalidArgument(
            f"{member} cannot apply to {entity.noun} field '{ref}', which holds {kind.value} values; "
            f"use {_CONDITION_FOR_KIND[kind]}"
        )
    inner = getattr(msg, member)
    op = spec.operators.get(int(inner.operator))
    if op is None:
        known = ", ".join(spec.operator_names[n] for n in spec.operators)
        raise InvalidArgument(
            f"Unsupported operator {int(inner.operator)} in {member} on {entity.noun} field '{ref}'; "
            f"expected one of {known}"
        )
    value = spec.value(inner)
    if kind is FieldKind.STATUS:
        _check_status(entity, ref, value)
    return Condition(ref, kind, op, value)


def _check_status(entity: _Entity, ref: FieldRef, value: int) -> None:
    statuses = list(entity.status or ())
    if value not in statuses:
        expected = ", ".join(status.name for status in statuses)
        raise InvalidArgument(
            f"{value} is not a valid value for {entity.noun} field '{ref}': expected one of {expected}"
        )


def _filter(entity: _Entity, msg: Message) -> Filter:
    return Filter(
        tuple(
            tuple(_condition(entity, condition) for condition in getattr(conjunction, "and"))
            for conjunction in getattr(msg, "or")
        )
    )


def session_filter(msg: sessions_filters_pb2.Filters) -> Filter:
    return _filter(_SESSIONS, msg)


def task_filter(msg: tasks_filters_pb2.Filters) -> Filter:
    return _filter(_TASKS, msg)


def result_filter(msg: results_filters_pb2.Filters) -> Filter:
    return _filter(_RESULTS, msg)


def partition_filter(msg: partitions_filters_pb2.Filters) -> Filter:
    return _filter(_PARTITIONS, msg)


def application_filter(msg: applications_filters_pb2.Filters) -> Filter:
    return _filter(_APPLICATIONS, msg)


# -- sorts ---------------------------------------------------------------------------------------------------
_DESCENDING = MappingProxyType(
    {
        sort_direction_pb2.SORT_DIRECTION_UNSPECIFIED: False,
        sort_direction_pb2.SORT_DIRECTION_ASC: False,
        sort_direction_pb2.SORT_DIRECTION_DESC: True,
    }
)


def _sort(entity: _Entity, fields: Iterable[Message], direction: int) -> tuple[SortKey, ...]:
    """Sort keys for the fields named (unset ones are ignored), else the entity's default sort.

    The default fields are appended as a tie-break: they identify a row, so pages never overlap or skip
    rows that tie on the requested field.
    """
    descending = _DESCENDING.get(int(direction))
    if descending is None:
        raise InvalidArgument(
            f"Unknown sort direction {int(direction)} for {entity.noun}; expected ASC or DESC"
        )
    refs = [resolved[0] for msg in fields if (resolved := _field(entity, msg)) is not None]
    refs += [FieldRef(path) for path in entity.default_sort]
    return tuple(SortKey(ref, descending) for ref in dict.fromkeys(refs))


def session_sort(field: sessions_fields_pb2.SessionField, direction: int) -> tuple[SortKey, ...]:
    return _sort(_SESSIONS, [field], direction)


def task_sort(field: tasks_fields_pb2.TaskField, direction: int) -> tuple[SortKey, ...]:
    return _sort(_TASKS, [field], direction)


def result_sort(field: results_fields_pb2.ResultField, direction: int) -> tuple[SortKey, ...]:
    return _sort(_RESULTS, [field], direction)


def partition_sort(field: partitions_fields_pb2.PartitionField, direction: int) -> tuple[SortKey, ...]:
    return _sort(_PARTITIONS, [field], direction)


def application_sort(
    fields: Iterable[applications_fields_pb2.ApplicationField], direction: int
) -> tuple[SortKey, ...]:
    return _sort(_APPLICATIONS, fields, direction)


_ENTITIES = MappingProxyType({e.noun: e for e in (_TASKS, _SESSIONS, _RESULTS, _PARTITIONS, _APPLICATIONS)})


def of_request(noun: str, request: Any) -> tuple[Filter, tuple[SortKey, ...]]:
    """The filter and sort of a List request on `noun` ("tasks", "sessions", ...): Applications sort on a list
    of fields, the other entities on one."""
    entity = _ENTITIES[noun]
    sort = request.sort
    fields = sort.fields if entity is _APPLICATIONS else [sort.field]
    return _filter(entity, request.filters), _sort(entity, fields, sort.direction)
