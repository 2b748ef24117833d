"""Everything that crosses the compute gateway comes back as it left."""

import pytest

from armonik_core.adapters.queue.base import Lease, QueueMessage
from armonik_core.domain.options import TaskOptions
from armonik_core.domain.outcomes import DataCompletion, OutcomeKind, TaskOutcome
from armonik_core.domain.records import Result, Task
from armonik_core.domain.statuses import ResultStatus, TaskStatus
from armonik_core.gateway import codec


def test_outcome_round_trip() -> None:
    options = TaskOptions(12.5, 3, 2, "p", "app", "1.0", "ns", "svc", "engine", {"k": "v", "é": "ü"})
    sub = Task(
        "t2",
        "s",
        TaskStatus.CREATING,
        options,
        "pay",
        1.5,
        ["o"],
        ["d"],
        ["s", "t1"],
        [],
        "t2",
        "t1",
        submitted_at=2.0,
    )
    made = Result(
        "r",
        "s",
        "name",
        ResultStatus.CREATED,
        3.0,
        created_by="t1",
        opaque_id=b"\x00\xff",
        manual_deletion=True,
    )
    outcome = TaskOutcome(
        OutcomeKind.SUCCESS,
        "fine",
        [made],
        [DataCompletion("o", 7, b"\x01key")],
        [sub],
        started_at=10.25,
        fetched_at=10.125,
        processed_at=11.5,
    )
    decoded = codec.outcome_from_wire(codec.loads(codec.dumps(codec.outcome_to_wire(outcome))))
    assert decoded == outcome


def test_lease_round_trip() -> None:
    lease = Lease("h-1", QueueMessage("t", "s", "p", 4), deliveries=2)
    assert codec.lease_from_json(codec.lease_to_json(lease)) == lease


def test_bytes_cross_as_they_are_and_undecodable_messages_are_said_so() -> None:
    result = Result("r", "s", "n", ResultStatus.COMPLETED, 1.0, opaque_id=bytes(range(256)))
    wire = codec.dumps(codec.result_to_wire(result))
    assert bytes(range(256)) in wire  # no base64 on the way
    assert codec.result_from_wire(codec.loads(wire)) == result
    for damaged, words in ((b"\xc1", "not MessagePack"), (wire[:-3], "not MessagePack")):
        with pytest.raises(codec.UndecodableMessage, match=words):
            codec.loads(damaged)
    with pytest.raises(codec.UndecodableMessage, match="not a map"):
        codec.loads_map(codec.dumps(["a"]))
    assert codec.loads_map(codec.dumps({"a": 1})) == {"a": 1}
