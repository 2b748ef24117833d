"""Translation between domain records and the official protobuf messages.

Unset timestamps stay unset on the wire (the clients read a zero Timestamp as None), which is how the
official SDK tells "has not happened yet" from a date.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from armonik.protogen.common import (
    objects_pb2,
    partitions_common_pb2,
    results_common_pb2,
    sessions_common_pb2,
    tasks_common_pb2,
)
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from armonik_core.domain.options import STRING_FIELDS, TaskOptions
from armonik_core.domain.records import TASK_TIMES, Partition, Result, Session, Task
from armonik_core.domain.statuses import TaskStatus


def _set_timestamp(field: Timestamp, seconds: float) -> None:
    field.seconds = whole = int(seconds)
    field.nanos = int(round((seconds - whole) * 1e9)) % 1_000_000_000


def _set_duration(field: Duration, seconds: float) -> None:
    field.seconds = whole = int(seconds)
    field.nanos = int(round((seconds - whole) * 1e9))


_Time = TypeVar("_Time", Timestamp, Duration)


def _time(kind: type[_Time], setter: Callable[[_Time, float], None], seconds: float | None) -> _Time | None:
    """A Timestamp or Duration of `seconds`, or None (left unset on the wire) when there are none."""
    if seconds is None:
        return None
    value = kind()
    setter(value, seconds)
    return value


def timestamp(seconds: float | None) -> Timestamp | None:
    return _time(Timestamp, _set_timestamp, seconds)


def duration(seconds: float | None) -> Duration | None:
    return _time(Duration, _set_duration, seconds)


def seconds_of(value: Duration) -> float:
    return value.seconds + value.nanos / 1e9


def _same_named(source: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """The attributes `names` of `source`, as keyword arguments of a message or record that names them alike."""
    return {name: getattr(source, name) for name in names}


def _timestamps(source: Any, names: tuple[str, ...]) -> dict[str, Timestamp | None]:
    return {name: timestamp(getattr(source, name)) for name in names}


#: The options' fields that are the same scalar on the wire and in the record (not the duration, not the map).
_OPTION_SCALARS = ("max_retries", "priority", *STRING_FIELDS)


def options_from_proto(msg: objects_pb2.TaskOptions) -> TaskOptions:
    return TaskOptions(
        max_duration=seconds_of(msg.max_duration),
        options=dict(msg.options),
        **_same_named(msg, _OPTION_SCALARS),
    )


def optional_options(parent: Any, field: str) -> TaskOptions | None:
    """Options a request carries, or None when the field is absent (so that merging falls back)."""
    return options_from_proto(getattr(parent, field)) if parent.HasField(field) else None


def options_to_proto(options: TaskOptions) -> objects_pb2.TaskOptions:
    msg = objects_pb2.TaskOptions()
    _fill_options(msg, options)
    return msg


def _fill_options(msg: objects_pb2.TaskOptions, options: TaskOptions) -> None:
    """Write `options` into `msg`, which may be a sub-message of a task or a session."""
    _set_duration(msg.max_duration, options.max_duration)
    for name in _OPTION_SCALARS:
        setattr(msg, name, getattr(options, name))
    if options.options:
        msg.options.update(options.options)


def task_from_creation(
    creation: Any,
    task_id: str,
    session_id: str,
    options: TaskOptions,
    now: float,
    parent_task_ids: list[str],
    created_by: str = "",
) -> Task:
    """A new task from a `TaskCreation` of Tasks.SubmitTasks or of Agent.SubmitTasks (same fields)."""
    return Task(
        task_id=task_id,
        session_id=session_id,
        status=TaskStatus.CREATING,
        options=options,
        payload_id=creation.payload_id,
        created_at=now,
        expected_output_ids=list(creation.expected_output_keys),
        data_dependencies=list(creation.data_dependencies),
        parent_task_ids=parent_task_ids,
        initial_task_id=task_id,
        created_by=created_by,
    )


_SESSION_FIELDS = ("session_id", "client_submission", "worker_submission", "partition_ids")
_SESSION_TIMES = ("created_at", "cancelled_at", "closed_at", "purged_at", "deleted_at")


def add_task_infos(infos: Any, tasks: Iterable[Task]) -> None:
    """Append each submitted task's TaskInfo to a SubmitTasks reply's `task_infos` (Tasks' and Agent's alike),
    in place: a third faster than building a list of messages."""
    add = infos.add
    for task in tasks:
        add(
            task_id=task.task_id,
            expected_output_ids=task.expected_output_ids,
            data_dependencies=task.data_dependencies,
            payload_id=task.payload_id,
        )


def session_to_proto(s: Session, with_options: bool = True) -> sessions_common_pb2.SessionRaw:
    return sessions_common_pb2.SessionRaw(
        **_same_named(s, _SESSION_FIELDS),
        **_timestamps(s, _SESSION_TIMES),
        status=int(s.status),  # type: ignore[arg-type]
        options=options_to_proto(s.options) if with_options else None,
        duration=duration(s.duration),
    )


# A listing page converts a thousand tasks: their timestamps, durations and options are written into the
# message's own sub-messages rather than built as messages of their own and copied in, which made the
# conversion take 40 % longer.
_TASK_DURATIONS = ("creation_to_end_duration", "processing_to_end_duration", "received_to_end_duration")


def _fill_task_common(msg: Any, t: Task) -> None:
    """The fields TaskDetailed and TaskSummary share, written into `msg` (scalars are set by the caller)."""
    for name in TASK_TIMES:
        seconds = getattr(t, name)
        if seconds is not None:
            _set_timestamp(getattr(msg, name), seconds)
    for name in _TASK_DURATIONS:
        seconds = getattr(t, name)
        if seconds is not None:
            _set_duration(getattr(msg, name), seconds)
    _fill_options(msg.options, t.options)


_TASK_SCALARS = (
    "session_id",
    "owner_pod_id",
    "initial_task_id",
    "status_message",
    "payload_id",
    "created_by",
    "pod_hostname",
)


def _task_scalars(t: Task) -> dict[str, Any]:
    return {"id": t.task_id, "status": int(t.status), **_same_named(t, _TASK_SCALARS)}


def task_to_detailed(t: Task) -> tasks_common_pb2.TaskDetailed:
    msg = tasks_common_pb2.TaskDetailed(
        **_task_scalars(t),
        parent_task_ids=t.parent_task_ids,
        data_dependencies=t.data_dependencies,
        expected_output_ids=t.expected_output_ids,
        retry_of_ids=t.retry_of_ids,
    )
    _fill_task_common(msg, t)
    msg.output.success = t.succeeded
    msg.output.error = t.error
    return msg


def task_to_summary(t: Task, with_errors: bool = True) -> tasks_common_pb2.TaskSummary:
    msg = tasks_common_pb2.TaskSummary(
        **_task_scalars(t),
        count_parent_task_ids=len(t.parent_task_ids),
        count_data_dependencies=len(t.data_dependencies),
        count_expected_output_ids=len(t.expected_output_ids),
        count_retry_of_ids=len(t.retry_of_ids),
        error=t.error if with_errors else "",
    )
    _fill_task_common(msg, t)
    return msg


_RESULT_FIELDS = (
    "session_id",
    "name",
    "owner_task_id",
    "result_id",
    "size",
    "created_by",
    "opaque_id",
    "manual_deletion",
)


def result_to_proto(r: Result) -> results_common_pb2.ResultRaw:
    return results_common_pb2.ResultRaw(
        **_same_named(r, _RESULT_FIELDS),
        **_timestamps(r, ("created_at", "completed_at")),
        status=int(r.status),  # type: ignore[arg-type]
    )


_PARTITION_FIELDS = (
    "parent_partition_ids",
    "pod_reserved",
    "pod_max",
    "pod_configuration",
    "preemption_percentage",
    "priority",
)


def partition_to_proto(p: Partition) -> partitions_common_pb2.PartitionRaw:
    return partitions_common_pb2.PartitionRaw(id=p.partition_id, **_same_named(p, _PARTITION_FIELDS))
