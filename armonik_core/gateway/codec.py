"""The encoding of the records and outcomes that cross the compute gateway: MessagePack.

Every task crosses the gateway twice (handed to an agent, its outcome back), and the agent and the control
plane each encode one message and decode the other: with JSON that was 50 microseconds of CPU per task, a
tenth of what a no-op task costs the gateway, and bytes (object keys) went through base64. MessagePack
(`msgpack`, C-accelerated) takes a fifth of that and carries bytes as they are. Lease handles are text
signed as they are (`lease_to_json`): JSON inside the message.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import msgpack

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


class UndecodableMessage(ValueError):
    """A message that is not MessagePack, or not a map at its top."""


def dumps(value: Any) -> bytes:
    return msgpack.packb(value)  # type: ignore[no-any-return]


def loads(data: bytes) -> Any:
    try:
        return msgpack.unpackb(data)
    except Exception as exc:  # the decoder's errors differ by kind of damage
        raise UndecodableMessage(f"The message is not MessagePack: {exc}") from None


def loads_map(data: bytes) -> dict[str, Any]:
    """A request: a map (a client's mistake is said as such, rather than failing further on)."""
    value = loads(data)
    if not isinstance(value, dict):
        raise UndecodableMessage(f"The message is a {type(value).__name__}, not a map")
    return value


def options_to_wire(o: TaskOptions) -> dict[str, Any]:
    return {name: getattr(o, name) for name in _OPTION_FIELDS}


def options_from_wire(d: dict[str, Any]) -> TaskOptions:
    return TaskOptions(**{name: d[name] for name in _OPTION_FIELDS})


def task_to_wire(t: Task) -> dict[str, Any]:
    d = {name: getattr(t, name) for name in _TASK_FIELDS}
    d["status"] = int(t.status)
    d["options"] = options_to_wire(t.options)
    return d


def task_from_wire(d: dict[str, Any]) -> Task:
    fields = {name: d[name] for name in _TASK_FIELDS}
    return Task(status=TaskStatus(d["status"]), options=options_from_wire(d["options"]), **fields)


def result_to_wire(r: Result) -> dict[str, Any]:
    d = {name: getattr(r, name) for name in _RESULT_FIELDS}
    d.update(status=int(r.status), opaque_id=r.opaque_id, manual_deletion=r.manual_deletion)
    return d


def result_from_wire(d: dict[str, Any]) -> Result:
    fields = {name: d[name] for name in _RESULT_FIELDS}
    return Result(
        status=ResultStatus(d["status"]),
        opaque_id=bytes(d["opaque_id"]),
        manual_deletion=d["manual_deletion"],
        **fields,
    )


def outcome_to_wire(o: TaskOutcome) -> dict[str, Any]:
    return {
        "kind": o.kind.value,
        "message": o.message,
        "created_results": [result_to_wire(r) for r in o.created_results],
        "completions": [[c.result_id, c.size, c.opaque_id] for c in o.completions],
        "subtasks": [task_to_wire(t) for t in o.subtasks],
        "started_at": o.started_at,
        "fetched_at": o.fetched_at,
        "processed_at": o.processed_at,
    }


def outcome_from_wire(d: dict[str, Any]) -> TaskOutcome:
    return TaskOutcome(
        kind=OutcomeKind(d["kind"]),
        message=d["message"],
        created_results=[result_from_wire(r) for r in d["created_results"]],
        completions=[DataCompletion(rid, size, bytes(opaque)) for rid, size, opaque in d["completions"]],
        subtasks=[task_from_wire(t) for t in d["subtasks"]],
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
