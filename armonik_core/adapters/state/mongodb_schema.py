"""MongoDB documents of the state store, as upstream ArmoniK.Core lays them out, and their indexes.

Collections and field names follow upstream's `Adaptors/MongoDB` data model (`TaskData`, `Result`,
`SessionData`, `PartitionData`), so the database reads the same to someone who knows ArmoniK. What the
interface needs beyond it: an `Outbox` collection (ready tasks committed but not yet published), a task's
`ClaimId` (the token of the unit of work that holds it, see `mongodb`), and a result's `OpaqueIdHex` (its
opaque id as hexadecimal text, which filters and sorts compare, since MongoDB can neither search inside
nor order binary data byte by byte).

Conventions:
- Statuses are ints; dates are BSON dates, which hold milliseconds: a record's float seconds are stored
  rounded down to the millisecond (`to_millis`), and read back as `millis / 1000`, so that every comparison
  the database makes agrees with `armonik_core.domain.filters.matches` on the records it returns.
- Durations (`CreationToEndDuration`, ...) are stored as float seconds computed from the stored dates, as
  upstream stores them, so that they can be filtered, sorted and indexed like any field.
- Keys of stored maps (task options, a task's remaining dependencies) are escaped by `encode_key`, since a
  MongoDB field path cannot name a key holding a dot, a `$` or a NUL, nor an empty key.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from pymongo import ASCENDING, IndexModel

from armonik_core.domain.options import TaskOptions
from armonik_core.domain.records import Partition, Result, Session, Task
from armonik_core.domain.statuses import ResultStatus, SessionStatus, TaskStatus

Document = dict[str, Any]

TASKS = "TaskData"
RESULTS = "Result"
SESSIONS = "SessionData"
PARTITIONS = "PartitionData"
OUTBOX = "Outbox"

# -- time ---------------------------------------------------------------------------------------------------
_EPOCH = datetime(1970, 1, 1)
_MILLISECOND = timedelta(milliseconds=1)
#: The range of dates a BSON date can be decoded into (Python's `datetime`).
MIN_MILLIS = (datetime.min - _EPOCH) // _MILLISECOND
MAX_MILLIS = (datetime.max - _EPOCH) // _MILLISECOND


def to_millis(seconds: float) -> int:
    """The largest whole millisecond `m` with `m / 1000 <= seconds`, as floats compare.

    Floor rather than round, so that stored times keep their order and never move after the events they
    follow; exact on the float `m / 1000` itself, so that a time read back and written again is unchanged."""
    millis = math.floor(seconds * 1000)
    while (millis + 1) / 1000 <= seconds:
        millis += 1
    while millis / 1000 > seconds:
        millis -= 1
    return millis


def round_time(seconds: float) -> float:
    """`seconds` as the store keeps it (whole milliseconds)."""
    return to_millis(seconds) / 1000


def date_from_millis(millis: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=millis)


def to_date(seconds: float | None) -> datetime | None:
    return None if seconds is None else date_from_millis(to_millis(seconds))


def from_date(value: datetime | None) -> float | None:
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return ((value - _EPOCH) // _MILLISECOND) / 1000


def span(start: float | None, end: float | None) -> float | None:
    """A stored duration: as the records compute it, from the stored (millisecond) dates."""
    if start is None or end is None:
        return None
    return max(0.0, round_time(end) - round_time(start))


# -- map keys -----------------------------------------------------------------------------------------------
_KEY_ESCAPES = {"%": "%25", ".": "%2E", "$": "%24", "\x00": "%00"}
_EMPTY_KEY = "%"


def encode_key(key: str) -> str:
    """A map key usable in a field path. Keys without `%`, `.`, `$` or NUL are stored unchanged, as
    upstream stores them; the escaping is reversible (`%` itself is escaped) and "" becomes a lone `%`."""
    if not key:
        return _EMPTY_KEY
    if not any(c in key for c in _KEY_ESCAPES):
        return key
    return "".join(_KEY_ESCAPES.get(c, c) for c in key)


def decode_key(key: str) -> str:
    if key == _EMPTY_KEY:
        return ""
    if "%" not in key:
        return key
    parts = key.split("%")
    return parts[0] + "".join(chr(int(part[:2], 16)) + part[2:] for part in parts[1:])


def encode_map(values: Mapping[str, Any]) -> Document:
    return {encode_key(k): v for k, v in values.items()}


def decode_map(values: Mapping[str, Any] | None) -> dict[str, Any]:
    return {decode_key(k): v for k, v in (values or {}).items()}


# -- task options -------------------------------------------------------------------------------------------
#: record attribute of TaskOptions -> field of the `Options` sub-document
OPTION_FIELDS = {
    "max_duration": "MaxDuration",
    "max_retries": "MaxRetries",
    "priority": "Priority",
    "partition_id": "PartitionId",
    "application_name": "ApplicationName",
    "application_version": "ApplicationVersion",
    "application_namespace": "ApplicationNamespace",
    "application_service": "ApplicationService",
    "engine_type": "EngineType",
}


def options_to_document(options: TaskOptions) -> Document:
    """`MaxDuration` in float seconds (upstream: a TimeSpan), which filters compare as durations."""
    return {
        "Options": encode_map(options.options),
        "MaxDuration": float(options.max_duration),
        "MaxRetries": options.max_retries,
        "Priority": options.priority,
        "PartitionId": options.partition_id,
        "ApplicationName": options.application_name,
        "ApplicationVersion": options.application_version,
        "ApplicationNamespace": options.application_namespace,
        "ApplicationService": options.application_service,
        "EngineType": options.engine_type,
    }


def options_from_document(doc: Mapping[str, Any]) -> TaskOptions:
    return TaskOptions(
        max_duration=doc.get("MaxDuration", 0.0),
        max_retries=doc.get("MaxRetries", 0),
        priority=doc.get("Priority", 0),
        partition_id=doc.get("PartitionId", ""),
        application_name=doc.get("ApplicationName", ""),
        application_version=doc.get("ApplicationVersion", ""),
        application_namespace=doc.get("ApplicationNamespace", ""),
        application_service=doc.get("ApplicationService", ""),
        engine_type=doc.get("EngineType", ""),
        options=decode_map(doc.get("Options")),
    )


# -- tasks --------------------------------------------------------------------------------------------------
#: record attribute -> document field, for the task's plain fields
TASK_FIELDS = {
    "task_id": "_id",
    "session_id": "SessionId",
    "status": "Status",
    "payload_id": "PayloadId",
    "initial_task_id": "InitialTaskId",
    "created_by": "CreatedBy",
    "owner_pod_id": "OwnerPodId",
    "pod_hostname": "OwnerPodName",
    "status_message": "StatusMessage",
    "error": "Output.Error",
    "expected_output_ids": "ExpectedOutputIds",
    "data_dependencies": "DataDependencies",
    "parent_task_ids": "ParentTaskIds",
    "retry_of_ids": "RetryOfIds",
}
TASK_DATES = {
    "created_at": "CreationDate",
    "submitted_at": "SubmittedDate",
    "received_at": "ReceptionDate",
    "acquired_at": "AcquisitionDate",
    "fetched_at": "FetchedDate",
    "started_at": "StartDate",
    "processed_at": "ProcessedDate",
    "ended_at": "EndDate",
    "pod_ttl": "PodTtl",
}
TASK_DURATIONS = {
    "creation_to_end_duration": "CreationToEndDuration",
    "processing_to_end_duration": "ProcessingToEndDuration",
    "received_to_end_duration": "ReceivedToEndDuration",
}
#: The dates the stored durations are computed from.
DURATION_INPUTS = frozenset({"created_at", "started_at", "received_at", "ended_at"})


def task_durations(t: Task) -> Document:
    return {
        "CreationToEndDuration": span(t.created_at, t.ended_at),
        "ProcessingToEndDuration": span(t.started_at, t.ended_at),
        "ReceivedToEndDuration": span(t.received_at, t.ended_at),
    }


def task_to_document(t: Task, remaining: Iterable[str] | None = None) -> Document:
    """The task as stored; `remaining` lists the inputs it still waits for (`RemainingDataDependencies`)."""
    doc: Document = {
        "_id": t.task_id,
        "SessionId": t.session_id,
        "Status": int(t.status),
        "OwnerPodId": t.owner_pod_id,
        "OwnerPodName": t.pod_hostname,
        "PayloadId": t.payload_id,
        "ParentTaskIds": list(t.parent_task_ids),
        "DataDependencies": list(t.data_dependencies),
        "RemainingDataDependencies": {encode_key(rid): True for rid in remaining or ()},
        "ExpectedOutputIds": list(t.expected_output_ids),
        "InitialTaskId": t.initial_task_id or t.task_id,
        "CreatedBy": t.created_by,
        "RetryOfIds": list(t.retry_of_ids),
        "StatusMessage": t.status_message,
        "Output": {"Error": t.error},
        "Options": options_to_document(t.options),
    }
    for attribute, name in TASK_DATES.items():
        doc[name] = to_date(getattr(t, attribute))
    doc.update(task_durations(t))
    return doc


def task_from_document(doc: Mapping[str, Any]) -> Task:
    return Task(
        task_id=doc["_id"],
        session_id=doc["SessionId"],
        status=TaskStatus(doc["Status"]),
        options=options_from_document(doc.get("Options") or {}),
        payload_id=doc.get("PayloadId", ""),
        created_at=from_date(doc.get("CreationDate")) or 0.0,
        expected_output_ids=list(doc.get("ExpectedOutputIds") or []),
        data_dependencies=list(doc.get("DataDependencies") or []),
        parent_task_ids=list(doc.get("ParentTaskIds") or []),
        retry_of_ids=list(doc.get("RetryOfIds") or []),
        initial_task_id=doc.get("InitialTaskId", ""),
        created_by=doc.get("CreatedBy", ""),
        owner_pod_id=doc.get("OwnerPodId", ""),
        pod_hostname=doc.get("OwnerPodName", ""),
        status_message=doc.get("StatusMessage", ""),
        error=(doc.get("Output") or {}).get("Error", ""),
        submitted_at=from_date(doc.get("SubmittedDate")),
        received_at=from_date(doc.get("ReceptionDate")),
        acquired_at=from_date(doc.get("AcquisitionDate")),
        fetched_at=from_date(doc.get("FetchedDate")),
        started_at=from_date(doc.get("StartDate")),
        processed_at=from_date(doc.get("ProcessedDate")),
        ended_at=from_date(doc.get("EndDate")),
        pod_ttl=from_date(doc.get("PodTtl")),
    )


def task_fields(t: Task, attributes: list[str]) -> Document:
    """A `$set` of the named attributes of `t`, with the durations whenever a date they depend on is set."""
    update: Document = {}
    for attribute in attributes:
        if attribute in TASK_DATES:
            update[TASK_DATES[attribute]] = to_date(getattr(t, attribute))
        elif attribute == "status":
            update["Status"] = int(t.status)
        else:
            update[TASK_FIELDS[attribute]] = getattr(t, attribute)
    if DURATION_INPUTS.intersection(attributes):
        update.update(task_durations(t))
    return update


# -- results ------------------------------------------------------------------------------------------------
RESULT_FIELDS = {
    "result_id": "_id",
    "session_id": "SessionId",
    "name": "Name",
    "owner_task_id": "OwnerTaskId",
    "status": "Status",
    "size": "Size",
    "created_by": "CreatedBy",
    "manual_deletion": "ManualDeletion",
}
RESULT_DATES = {"created_at": "CreationDate", "completed_at": "CompletionDate"}


def opaque_fields(opaque_id: bytes) -> Document:
    return {"OpaqueId": bytes(opaque_id), "OpaqueIdHex": bytes(opaque_id).hex()}


def result_to_document(r: Result) -> Document:
    return {
        "_id": r.result_id,
        "SessionId": r.session_id,
        "Name": r.name,
        "CreatedBy": r.created_by,
        "OwnerTaskId": r.owner_task_id,
        "Status": int(r.status),
        "DependentTasks": [],
        "CreationDate": to_date(r.created_at),
        "CompletionDate": to_date(r.completed_at),
        "Size": r.size,
        **opaque_fields(r.opaque_id),
        "ManualDeletion": bool(r.manual_deletion),
    }


def result_from_document(doc: Mapping[str, Any]) -> Result:
    return Result(
        result_id=doc["_id"],
        session_id=doc["SessionId"],
        name=doc.get("Name", ""),
        status=ResultStatus(doc["Status"]),
        created_at=from_date(doc.get("CreationDate")) or 0.0,
        owner_task_id=doc.get("OwnerTaskId", ""),
        created_by=doc.get("CreatedBy", ""),
        completed_at=from_date(doc.get("CompletionDate")),
        size=doc.get("Size", 0),
        opaque_id=bytes(doc.get("OpaqueId") or b""),
        manual_deletion=bool(doc.get("ManualDeletion", False)),
    )


# -- sessions -----------------------------------------------------------------------------------------------
SESSION_FIELDS = {
    "session_id": "_id",
    "status": "Status",
    "partition_ids": "PartitionIds",
    "client_submission": "ClientSubmission",
    "worker_submission": "WorkerSubmission",
    "duration": "Duration",
}
SESSION_DATES = {
    "created_at": "CreationDate",
    "cancelled_at": "CancellationDate",
    "closed_at": "ClosureDate",
    "purged_at": "PurgeDate",
    "deleted_at": "DeletionDate",
}


def session_state(s: Session) -> Document:
    """What a session action changes: status, submission doors, dates and the duration."""
    stored = {name: round_time(v) if v is not None else None for name, v in _session_dates(s).items()}
    end = stored["closed_at"] or stored["cancelled_at"]
    created = stored["created_at"]
    return {
        "Status": int(s.status),
        "ClientSubmission": bool(s.client_submission),
        "WorkerSubmission": bool(s.worker_submission),
        **{SESSION_DATES[name]: to_date(value) for name, value in stored.items()},
        "Duration": None if end is None or created is None else max(0.0, end - created),
    }


def _session_dates(s: Session) -> dict[str, float | None]:
    return {name: getattr(s, name) for name in SESSION_DATES}


def session_to_document(s: Session) -> Document:
    return {
        "_id": s.session_id,
        "PartitionIds": list(s.partition_ids),
        "Options": options_to_document(s.options),
        **session_state(s),
    }


def session_from_document(doc: Mapping[str, Any]) -> Session:
    return Session(
        session_id=doc["_id"],
        status=SessionStatus(doc["Status"]),
        partition_ids=list(doc.get("PartitionIds") or []),
        options=options_from_document(doc.get("Options") or {}),
        created_at=from_date(doc.get("CreationDate")) or 0.0,
        client_submission=bool(doc.get("ClientSubmission", True)),
        worker_submission=bool(doc.get("WorkerSubmission", True)),
        cancelled_at=from_date(doc.get("CancellationDate")),
        closed_at=from_date(doc.get("ClosureDate")),
        purged_at=from_date(doc.get("PurgeDate")),
        deleted_at=from_date(doc.get("DeletionDate")),
    )


# -- partitions ---------------------------------------------------------------------------------------------
PARTITION_FIELDS = {
    "partition_id": "_id",
    "parent_partition_ids": "ParentPartitionIds",
    "pod_reserved": "PodReserved",
    "pod_max": "PodMax",
    "preemption_percentage": "PreemptionPercentage",
    "priority": "Priority",
}


def partition_to_document(p: Partition) -> Document:
    configuration = {"Configuration": encode_map(p.pod_configuration)} if p.pod_configuration else None
    return {
        "_id": p.partition_id,
        "ParentPartitionIds": list(p.parent_partition_ids),
        "PodReserved": p.pod_reserved,
        "PodMax": p.pod_max,
        "PreemptionPercentage": p.preemption_percentage,
        "Priority": p.priority,
        "PodConfiguration": configuration,
    }


def partition_from_document(doc: Mapping[str, Any]) -> Partition:
    return Partition(
        partition_id=doc["_id"],
        parent_partition_ids=list(doc.get("ParentPartitionIds") or []),
        pod_reserved=doc.get("PodReserved", 1),
        pod_max=doc.get("PodMax", 100),
        preemption_percentage=doc.get("PreemptionPercentage", 0),
        priority=doc.get("Priority", 1),
        pod_configuration=decode_map((doc.get("PodConfiguration") or {}).get("Configuration")),
    )


# -- indexes ------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Index:
    fields: tuple[str, ...]

    def model(self) -> IndexModel:
        return IndexModel([(name, ASCENDING) for name in self.fields], name="_".join(self.fields))


#: What the units of work look up (statuses per session and partition, owners, dependents, the initial
#: attempt of retries) and what listings commonly filter and sort on (dates; a session's tasks by id and its
#: results by status then id, the SDK's default listings). Ascending rather than upstream's hashed indexes:
#: the same index then serves equality, ranges and sorts.
INDEXES: dict[str, tuple[_Index, ...]] = {
    TASKS: (
        _Index(("SessionId", "Status", "_id")),
        _Index(("SessionId", "_id")),
        _Index(("Status", "SubmittedDate")),
        _Index(("Options.PartitionId", "Status")),
        _Index(("OwnerPodId",)),
        _Index(("InitialTaskId",)),
        _Index(("CreatedBy", "Status")),
        _Index(("CreationDate",)),
        _Index(("EndDate",)),
    ),
    RESULTS: (
        _Index(("SessionId", "Status", "_id")),
        _Index(("OwnerTaskId",)),
        _Index(("CreationDate",)),
    ),
    SESSIONS: (_Index(("Status",)), _Index(("CreationDate",))),
    PARTITIONS: (),
    OUTBOX: (_Index(("SessionId",)),),
}


def index_models(collection: str) -> list[IndexModel]:
    return [index.model() for index in INDEXES[collection]]
