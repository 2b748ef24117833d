"""Everything that crosses the compute gateway comes back as it left, and a message of another shape is
refused as malformed."""

import dataclasses
from typing import Any

import pytest

from armonik_core.adapters.queue.base import Lease, QueueMessage
from armonik_core.domain.options import TaskOptions
from armonik_core.domain.outcomes import DataCompletion, OutcomeKind, TaskOutcome
from armonik_core.domain.records import Result, Task
from armonik_core.domain.statuses import ResultStatus, TaskStatus
from armonik_core.gateway import codec
from armonik_core.polling_agent.backend import AcquiredTask

OPTIONS = TaskOptions(12.5, 3, 2, "p", "app", "1.0", "ns", "svc", "engine", {"k": "v", "é": "ü"})


def a_task() -> Task:
    return Task(
        "t2",
        "s",
        TaskStatus.CREATING,
        OPTIONS,
        "pay",
        1.5,
        ["o"],
        ["d"],
        ["s", "t1"],
        [],
        "t2",
        "t1",
        submitted_at=2.0,
        pod_ttl=9.0,
    )


def a_result() -> Result:
    return Result(
        "r",
        "s",
        "name",
        ResultStatus.CREATED,
        3.0,
        created_by="t1",
        opaque_id=b"\x00\xff",
        manual_deletion=True,
    )


def an_outcome() -> TaskOutcome:
    return TaskOutcome(
        OutcomeKind.SUCCESS,
        "fine",
        [a_result()],
        [DataCompletion("o", 7, b"\x01key")],
        [a_task()],
        started_at=10.25,
        fetched_at=10.125,
        processed_at=11.5,
    )


def a_handover() -> codec.Handover:
    return codec.Handover(a_task(), OPTIONS, ["p", "q"], "handle", [a_result()], "prefix")


def test_outcome_round_trip() -> None:
    outcome = an_outcome()
    assert codec.outcome_from_wire(codec.loads(codec.dumps(outcome))) == outcome
    bare = TaskOutcome(OutcomeKind.RELEASED)
    assert codec.outcome_from_wire(codec.to_wire(bare)) == bare


def test_every_record_round_trips_as_an_array_in_field_order() -> None:
    cases: list[tuple[Any, Any]] = [
        (a_task(), codec.task_from_wire),
        (OPTIONS, codec.options_from_wire),
        (a_result(), codec.result_from_wire),
        (an_outcome(), codec.outcome_from_wire),
        (a_handover(), codec.handover_from_wire),
    ]
    for record, decode in cases:
        wire = codec.to_wire(record)
        assert isinstance(wire, list) and len(wire) == len(codec._WIRE[type(record)])
        assert decode(wire) == record
        assert decode(wire) == record, "decoding leaves the message as it came"
    task = codec.to_wire(a_task())
    assert task[:3] == ["t2", "s", int(TaskStatus.CREATING)]  # enums as their values, no field names


def test_a_task_handed_over_is_what_the_agent_runs() -> None:
    names = tuple(f.name for f in dataclasses.fields(AcquiredTask))
    assert codec.Handover._fields == names, "the agent builds its AcquiredTask from the fields in order"
    assert AcquiredTask(*codec.handover_from_wire(codec.to_wire(a_handover()))) == AcquiredTask(
        a_task(), OPTIONS, ["p", "q"], "handle", [a_result()], "prefix"
    )


def with_field(record: Any, position: int, value: Any) -> list[Any]:
    wire = codec.to_wire(record)
    wire[position] = value
    return wire  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("message", "words"),
    [
        ({"kind": "success"}, "outcome is not an array of 8 fields: dict"),  # the map form
        (codec.to_wire(an_outcome())[:-1], "not an array of 8 fields: 7 fields"),
        (with_field(an_outcome(), 0, "finished"), "no such status or kind 'finished'"),
        (with_field(an_outcome(), 0, ["success"]), "outcome is malformed"),
        (with_field(an_outcome(), 2, 5), "outcome is malformed"),
        (with_field(an_outcome(), 2, [["r"]]), "result is not an array of 11 fields: 1 fields"),
        (with_field(an_outcome(), 2, [with_field(a_result(), 3, 99)]), "no such status or kind 99"),
        (
            with_field(an_outcome(), 2, [with_field(a_result(), 9, "key")]),
            "opaque id of a result is not bytes",
        ),
        (with_field(an_outcome(), 3, [["o", 7, "key"]]), "opaque id of a data completion is not bytes"),
        (with_field(an_outcome(), 3, [["o", 7]]), "data completion is not an array of 3 fields"),
        (with_field(an_outcome(), 4, [with_field(a_task(), 2, -1)]), "no such status or kind -1"),
        (with_field(an_outcome(), 4, [with_field(a_task(), 3, {})]), "task options is not an array"),
        (
            with_field(an_outcome(), 4, [with_field(a_task(), 3, with_field(OPTIONS, 9, []))]),
            "options of the task options are not a map",
        ),
    ],
)
def test_a_malformed_outcome_is_refused_as_such(message: Any, words: str) -> None:
    with pytest.raises(codec.MalformedMessage, match=words) as refused:
        codec.outcome_from_wire(message)
    assert isinstance(refused.value, codec.UndecodableMessage)  # the gateway's INVALID_ARGUMENT


def test_a_malformed_task_handed_over_is_refused_as_such() -> None:
    messages: list[Any] = [
        None,
        {"task": []},
        codec.to_wire(a_handover())[:5],
        with_field(a_handover(), 0, []),
    ]
    for message in messages:
        with pytest.raises(codec.MalformedMessage):
            codec.handover_from_wire(message)


def test_only_the_records_of_the_gateway_are_encoded() -> None:
    with pytest.raises(TypeError, match="does not carry object"):
        codec.dumps([object()])


def test_lease_round_trip() -> None:
    lease = Lease("h-1", QueueMessage("t", "s", "p", 4), deliveries=2)
    assert codec.lease_from_json(codec.lease_to_json(lease)) == lease


def test_bytes_cross_as_they_are_and_undecodable_messages_are_said_so() -> None:
    result = Result("r", "s", "n", ResultStatus.COMPLETED, 1.0, opaque_id=bytes(range(256)))
    wire = codec.dumps(result)
    assert bytes(range(256)) in wire  # no base64 on the way
    assert codec.result_from_wire(codec.loads(wire)) == result
    for damaged, words in ((b"\xc1", "not MessagePack"), (wire[:-3], "not MessagePack")):
        with pytest.raises(codec.UndecodableMessage, match=words):
            codec.loads(damaged)
    with pytest.raises(codec.UndecodableMessage, match="not a map"):
        codec.loads_map(codec.dumps(["a"]))
    assert codec.loads_map(codec.dumps({"a": 1})) == {"a": 1}
