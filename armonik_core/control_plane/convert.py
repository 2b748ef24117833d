"""Translation between domain records and the official protobuf messages.

Unset timestamps stay unset on the wire (the clients read a zero Timestamp as None), which is how the
official SDK tells "has not happened yet" from a date.
"""

from __future__ import annotations

from typing import Any

from armonik.protogen.common import (
    objects_pb2,
    partitions_common_pb2,
    results_common_pb2,
    sessions_common_pb2,
    tasks_common_pb2,
)
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from armonik_core.domain.options import TaskOptions
from armonik_core.domain.records import TASK_TIMES, Partition, Result, Session, Task
from armonik_core.domain.statuses import TaskStatus


def _set_timestamp(field: Timestamp, seconds: float) -> None:
    field.seconds = whole = int(seconds)
    field.nanos = int(round((seconds - whole) * 1e9)) % 1_000_000_000


def _set_duration(field: Duration, seconds: float) -> None:
    field.seconds = whole = int(seconds)
    field.nanos = int(round((seconds - whole) * 1e9))


def timestamp(seconds: float | None) -> Timestamp | None:
    if seconds is None:
        return None
    stamp = Timestamp()
    _set_timestamp(stamp, seconds)
    return stamp


def duration(seconds: float | None) -> Duration | None:
    if seconds is None:
        return None
    span = Duration()
    _set_duration(span, seconds)
    return span


def seconds_of(value: Duration) -> float:
    return value.seconds + value.nanos / 1e9


def options_from_proto(msg: objects_pb2.TaskOptions) -> TaskOptions:
    return TaskOptions(
        max_duration=seconds_of(msg.max_duration),
        max_retries=msg.max_retries,
        priority=msg.priority,
        partition_id=msg.partition_id,
        application_name=msg.application_name,
        application_version=msg.application_version,
        application_namespace=msg.application_namespace,
        application_service=msg.application_service,
        engine_type=msg.engine_type,
        options=dict(msg.options),
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
    msg.max_retries = options.max_retries
    msg.priority = options.priority
    msg.partition_id = options.partition_id
    msg.application_name = options.application_name
    msg.application_version = options.application_version
    msg.application_namespace = options.application_namespace
    msg.application_service = options.application_service
    msg.engine_type = options.engine_type
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


def session_to_proto(s: Session, with_options: bool = True) -> sessions_common_pb2.SessionRaw:
    return sessions_common_pb2.SessionRaw(
        session_id=s.session_id,
        status=int(s.status),  # type: ignore[arg-type]
        client_submission=s.client_submission,
        worker_submission=s.worker_submission,
        partition_ids=s.partition_ids,
        options=options_to_proto(s.options) if with_options else None,
        created_at=timestamp(s.created_at),
        cancelled_at=timestamp(s.cancelled_at),
        closed_at=timestamp(s.closed_at),
        purged_at=timestamp(s.purged_at),
        deleted_at=timestamp(s.deleted_at),
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


def _task_scalars(t: Task) -> dict[str, Any]:
    return {
        "id": t.task_id,
        "session_id": t.session_id,
        "owner_pod_id": t.owner_pod_id,
        "initial_task_id": t.initial_task_id,
        "status": int(t.status),
        "status_message": t.status_message,
        "payload_id": t.payload_id,
        "created_by": t.created_by,
        "pod_hostname": t.pod_hostname,
    }


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


def result_to_proto(r: Result) -> results_common_pb2.ResultRaw:
    return results_common_pb2.ResultRaw(
        session_id=r.session_id,
        name=r.name,
        owner_task_id=r.owner_task_id,
        status=int(r.status),  # type: ignore[arg-type]
        created_at=timestamp(r.created_at),
        completed_at=timestamp(r.completed_at),
        result_id=r.result_id,
        size=r.size,
        created_by=r.created_by,
        opaque_id=r.opaque_id,
        manual_deletion=r.manual_deletion,
    )


def partition_to_proto(p: Partition) -> partitions_common_pb2.PartitionRaw:
    return partitions_common_pb2.PartitionRaw(
        id=p.partition_id,
        parent_partition_ids=p.parent_partition_ids,
        pod_reserved=p.pod_reserved,
        pod_max=p.pod_max,
        pod_configuration=p.pod_configuration,
        preemption_percentage=p.preemption_percentage,
        priority=p.priority,
    )
