"""The encoding of the records and outcomes that cross the compute gateway: MessagePack arrays.

Every task crosses the gateway twice (handed to an agent, its outcome back), and the agent and the control
plane each encode one message and decode the other. MessagePack (`msgpack`, C-accelerated) carries bytes as
they are (object keys), where JSON took five times the CPU and base64. The records go as positional arrays in
their dataclass's field order, not as maps: the encoder reads every field with one `attrgetter` call and the
packer writes no field names; the decoder passes the array to the constructor as it is, without a lookup per
field. A no-op task's messages took 25 microseconds of CPU as maps (agent and control plane), 10 as arrays.

`_WIRE` lists every record that crosses and its fields, in order: the one place both sides read, so that
they cannot drift (the agent and the control plane always come from the same release). A message that does
not have that shape is refused as `MalformedMessage` (INVALID_ARGUMENT), never a failure further on. The
envelopes (an exchange's request, a finished task's lease and agent) stay maps: one per exchange or per task,
read by name where their fields are optional. Lease handles are text signed as they are (`lease_to_json`):
JSON inside the message.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from operator import attrgetter
from typing import Any, NamedTuple, TypeVar

import msgpack

from armonik_core.adapters.queue.base import Lease, QueueMessage
from armonik_core.domain.options import TaskOptions
from armonik_core.domain.outcomes import DataCompletion, OutcomeKind, TaskOutcome
from armonik_core.domain.records import Result, Task
from armonik_core.domain.statuses import ResultStatus, TaskStatus

_T = TypeVar("_T")


class Handover(NamedTuple):
    """What an agent gets for a task it acquired (in the order of `polling_agent.backend.AcquiredTask`)."""

    task: Task
    session_options: TaskOptions
    session_partitions: list[str]
    #: The lease handle issued for the run (see armonik_core.gateway.auth).
    lease: str
    #: The payload and data dependencies as stored when the task was acquired.
    inputs: list[Result]
    #: What every object key the run stores begins with.
    object_prefix: str


def _fields(kind: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(kind))


#: Every record that crosses the gateway, and its fields in the order of its array.
_WIRE: dict[type, tuple[str, ...]] = {
    Task: _fields(Task),
    TaskOptions: _fields(TaskOptions),
    Result: _fields(Result),
    DataCompletion: _fields(DataCompletion),
    TaskOutcome: _fields(TaskOutcome),
    Handover: Handover._fields,
}
#: How the packer turns a record into its array: its fields, read in one call (enums pack as their values).
_ENCODERS: dict[type, Callable[[Any], tuple[Any, ...]]] = {
    kind: attrgetter(*names) for kind, names in _WIRE.items()
}
_TASK, _OPTIONS, _RESULT = len(_WIRE[Task]), len(_WIRE[TaskOptions]), len(_WIRE[Result])
_COMPLETION, _OUTCOME, _HANDOVER = len(_WIRE[DataCompletion]), len(_WIRE[TaskOutcome]), len(_WIRE[Handover])
# The enums by value: a lookup, where calling the enum takes ten times as long.
_TASK_STATUSES = {status.value: status for status in TaskStatus}
_RESULT_STATUSES = {status.value: status for status in ResultStatus}
_OUTCOME_KINDS = {kind.value: kind for kind in OutcomeKind}
#: Where the fields of a task handed over that the decoder converts are in its array.
_HANDOVER_TASK, _HANDOVER_OPTIONS, _HANDOVER_INPUTS = (
    _WIRE[Handover].index(name) for name in ("task", "session_options", "inputs")
)


class UndecodableMessage(ValueError):
    """A message that is not MessagePack, or not of the shape its call expects."""


class MalformedMessage(UndecodableMessage):
    """MessagePack, but not a record of the shape `_WIRE` gives it (fields missing, of another type)."""


def _encode(value: Any) -> Any:
    """The array of a record (the packer calls this for what it cannot pack itself)."""
    encoder = _ENCODERS.get(type(value))
    if encoder is None:
        raise TypeError(f"The compute gateway does not carry {type(value).__name__}")
    return encoder(value)


def dumps(value: Any) -> bytes:
    return msgpack.packb(value, default=_encode)  # type: ignore[no-any-return]


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


def to_wire(value: Any) -> Any:
    """`value` as the other side reads it off the wire, records as their arrays."""
    return loads(dumps(value))


def _array(value: Any, length: int, what: str) -> list[Any]:
    if type(value) is not list or len(value) != length:
        shape = f"{len(value)} fields" if type(value) is list else type(value).__name__
        raise MalformedMessage(f"The {what} is not an array of {length} fields: {shape}")
    return value


def _decoding(what: str) -> Callable[[Callable[[Any], _T]], Callable[[Any], _T]]:
    """A decoder whose conversions (enums, constructors) refuse a field of the wrong type as malformed."""

    def wrap(decode: Callable[[Any], _T]) -> Callable[[Any], _T]:
        def decoder(value: Any) -> _T:
            try:
                return decode(value)
            except MalformedMessage:
                raise
            except KeyError as exc:  # an enum's value
                raise MalformedMessage(f"The {what} is malformed: no such status or kind {exc}") from None
            except (TypeError, ValueError) as exc:  # a constructor's arguments, a field of the wrong type
                raise MalformedMessage(f"The {what} is malformed: {exc}") from None

        decoder.__doc__ = decode.__doc__
        return decoder

    return wrap


# The decoders build the record from the array as it is, then convert the fields that need it on the record:
# the message is left as it came (it may be decoded again), and nothing is copied.
def _options(value: Any) -> TaskOptions:
    options = TaskOptions(*_array(value, _OPTIONS, "task options"))
    if type(options.options) is not dict:
        raise MalformedMessage("The options of the task options are not a map")
    return options


def _task(value: Any) -> Task:
    task = Task(*_array(value, _TASK, "task"))
    task.status = _TASK_STATUSES[task.status]
    task.options = _options(task.options)
    return task


def _opaque_id(value: Any, of: str) -> None:
    """An object key is bytes: the gateway compares it with the run's prefix (`outcomes.check_outcome`)."""
    if type(value) is not bytes:
        raise MalformedMessage(f"The opaque id of {of} is not bytes")


def _result(value: Any) -> Result:
    result = Result(*_array(value, _RESULT, "result"))
    result.status = _RESULT_STATUSES[result.status]
    _opaque_id(result.opaque_id, "a result")
    return result


def _completion(value: Any) -> DataCompletion:
    completion = DataCompletion(*_array(value, _COMPLETION, "data completion"))
    _opaque_id(completion.opaque_id, "a data completion")
    return completion


def _outcome(value: Any) -> TaskOutcome:
    outcome = TaskOutcome(*_array(value, _OUTCOME, "outcome"))
    outcome.kind = _OUTCOME_KINDS[outcome.kind]
    outcome.created_results = [_result(r) for r in outcome.created_results]
    outcome.completions = [_completion(c) for c in outcome.completions]
    outcome.subtasks = [_task(t) for t in outcome.subtasks]
    return outcome


def _handover(value: Any) -> Handover:
    fields = list(_array(value, _HANDOVER, "task handed over"))  # a tuple's fields are set before it is made
    fields[_HANDOVER_TASK] = _task(fields[_HANDOVER_TASK])
    fields[_HANDOVER_OPTIONS] = _options(fields[_HANDOVER_OPTIONS])
    fields[_HANDOVER_INPUTS] = [_result(r) for r in fields[_HANDOVER_INPUTS]]
    return Handover(*fields)


options_from_wire = _decoding("task options")(_options)
task_from_wire = _decoding("task")(_task)
result_from_wire = _decoding("result")(_result)
#: An agent's outcome, as the control plane reads it.
outcome_from_wire = _decoding("outcome")(_outcome)
#: A task handed over, as the agent reads it.
handover_from_wire = _decoding("task handed over")(_handover)


def lease_to_json(lease: Lease) -> str:
    m = lease.message
    return json.dumps([lease.handle, m.task_id, m.session_id, m.partition_id, m.priority, lease.deliveries])


def lease_from_json(text: str) -> Lease:
    handle, task_id, session_id, partition_id, priority, deliveries = json.loads(text)
    return Lease(handle, QueueMessage(task_id, session_id, partition_id, priority), deliveries)
