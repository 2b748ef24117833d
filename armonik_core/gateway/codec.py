"""JSON encoding of the records and outcomes that cross the compute gateway."""

from __future__ import annotations

import base64
import dataclasses
import json
from typing import Any

from armonik_core.adapters.queue.base import Lease, QueueMessage
from armonik_core.domain.options import TaskOptions
from armonik_core.domain.outcomes import DataCompletion, OutcomeKind, TaskOutcome
from armonik_core.domain.records import Result, Task
from armonik_core.domain.statuses import ResultStatus, TaskStatus

# Every field but the status and the options, which are encoded on their own.
_TASK_FIELDS = tuple(f.name for f in dataclasses.fields(Task) if f.name not in ("status", "options"))
_OPTION_FIELDS = tuple(f.name for f in dataclasses.fields(TaskOptions))
_RESULT_FIELDS = (
    "result_id",
    "session_id",
    "name",
    "created_at",
    "owner_task_id",
    "created_by",
    "completed_at",
    "size",
)


#: One encoder for every message: `json.dumps` with arguments builds a new one per call.
_ENCODER = json.JSONEncoder(separators=(",", ":"))


def dumps(value: Any) -> bytes:
    return _ENCODER.encode(value).encode()


def loads(data: bytes) -> Any:
    return json.loads(data)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def options_to_json(o: TaskOptions) -> dict[str, Any]:
    return {name: getattr(o, name) for name in _OPTION_FIELDS}


def options_from_json(d: dict[str, Any]) -> TaskOptions:
    return TaskOptions(**{name: d[name] for name in _OPTION_FIELDS})


def task_to_json(t: Task) -> dict[str, Any]:
    d = {name: getattr(t, name) for name in _TASK_FIELDS}
    d["status"] = int(t.status)
    d["options"] = options_to_json(t.options)
    return d


def task_from_json(d: dict[str, Any]) -> Task:
    fields = {name: d[name] for name in _TASK_FIELDS}
    return Task(status=TaskStatus(d["status"]), options=options_from_json(d["options"]), **fields)


def result_to_json(r: Result) -> dict[str, Any]:
    d = {name: getattr(r, name) for name in _RESULT_FIELDS}
    d.update(status=int(r.status), opaque_id=_b64(r.opaque_id), manual_deletion=r.manual_deletion)
    return d


def result_from_json(d: dict[str, Any]) -> Result:
    fields = {name: d[name] for name in _RESULT_FIELDS}
    return Result(
        status=ResultStatus(d["status"]),
        opaque_id=base64.b64decode(d["opaque_id"]),
        manual_deletion=d["manual_deletion"],
        **fields,
    )


def outcome_to_json(o: TaskOutcome) -> dict[str, Any]:
    return {
        "kind": o.kind.value,
        "message": o.message,
        "created_results": [result_to_json(r) for r in o.created_results],
        "completions": [[c.result_id, c.size, _b64(c.opaque_id)] for c in o.completions],
        "subtasks": [task_to_json(t) for t in o.subtasks],
        "started_at": o.started_at,
        "fetched_at": o.fetched_at,
        "processed_at": o.processed_at,
    }


def outcome_from_json(d: dict[str, Any]) -> TaskOutcome:
    return TaskOutcome(
        kind=OutcomeKind(d["kind"]),
        message=d["message"],
        created_results=[result_from_json(r) for r in d["created_results"]],
        completions=[
            DataCompletion(rid, size, base64.b64decode(opaque)) for rid, size, opaque in d["completions"]
        ],
        subtasks=[task_from_json(t) for t in d["subtasks"]],
        started_at=d.get("started_at"),
        fetched_at=d.get("fetched_at"),
        processed_at=d.get("processed_at"),
    )


def lease_to_json(lease: Lease) -> str:
    m = lease.message
    return json.dumps([lease.handle, m.task_id, m.session_id, m.partition_id, m.priority, lease.deliveries])


def lease_from_json(text: str) -> Lease:
    handle, task_id, session_id, partition_id, priority, deliveries = json.loads(text)
    return Lease(handle, QueueMessage(task_id, session_id, partition_id, priority), deliveries)
