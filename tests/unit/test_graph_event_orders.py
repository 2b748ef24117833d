"""armonik_graph's updates do not depend on the order events arrive in (hypothesis).

Sessions are generated as the event streams a control plane sends (new results, new tasks with their inputs,
parents and retries, owner changes when a subtask takes its parent's output over or a retry takes over, status
changes through the life cycle); the graph built from any permutation of a stream must equal the one built in
stream order. The deployment tests check the same on recorded streams of real sessions.
"""

from __future__ import annotations

from armonik.protogen.common.events_common_pb2 import EventSubscriptionResponse as Event
from armonik.protogen.common.result_status_pb2 import ResultStatus
from armonik.protogen.common.task_status_pb2 import TaskStatus
from hypothesis import given, settings
from hypothesis import strategies as st

from armonik_graph import Edge, SessionGraph

SID = "session"
RUN = [TaskStatus.TASK_STATUS_SUBMITTED, TaskStatus.TASK_STATUS_DISPATCHED, TaskStatus.TASK_STATUS_PROCESSING]


@st.composite
def streams(draw: st.DrawFn) -> list[Event]:
    """The events of a random session, in the order a control plane emits them."""
    events: list[Event] = []
    owner: dict[str, str] = {}  # result -> task owning it now (a task may only hand over what it owns)
    count = draw(st.integers(1, 8))
    for i in range(count):
        task, out, payload = f"t{i}", f"r{i}", f"p{i}"
        deps = draw(st.lists(st.sampled_from([f"r{j}" for j in range(i)]), unique=True)) if i else []
        parent = draw(st.sampled_from([None, *[f"t{j}" for j in range(i)]]))
        events.append(
            Event(session_id=SID, new_result=Event.NewResult(result_id=payload, owner_id=SID, status=2))
        )
        events.append(Event(session_id=SID, new_result=Event.NewResult(result_id=out, owner_id="", status=1)))
        outputs = [out]
        owned = sorted(r for r, t in owner.items() if t == parent)
        if owned and draw(st.booleans()):  # the subtask takes one of its parent's outputs over
            outputs.append(draw(st.sampled_from(owned)))
        new = Event.NewTask(
            task_id=task, payload_id=payload, status=TaskStatus.TASK_STATUS_PENDING,
            expected_output_keys=outputs, data_dependencies=deps,
            parent_task_ids=[SID] + ([parent] if parent else []), origin_task_id=parent or SID,
        )  # fmt: skip
        events.append(Event(session_id=SID, new_task=new))
        owner.update(dict.fromkeys(outputs, task))
        for handed in outputs[1:]:
            update = Event.ResultOwnerUpdate(
                result_id=handed, previous_owner_id=parent, current_owner_id=task
            )
            events.append(Event(session_id=SID, result_owner_update=update))
        for status in RUN:
            events.append(
                Event(session_id=SID, task_status_update=Event.TaskStatusUpdate(task_id=task, status=status))
            )
        if draw(st.booleans()):  # crashed once: retried, the retry takes the outputs over
            retry = f"{task}###1"
            update = Event.TaskStatusUpdate(task_id=task, status=TaskStatus.TASK_STATUS_RETRIED)
            events.append(Event(session_id=SID, task_status_update=update))
            again = Event.NewTask()
            again.CopyFrom(new)
            again.task_id, again.status = retry, TaskStatus.TASK_STATUS_SUBMITTED
            again.retry_of_ids.append(task)
            events.append(Event(session_id=SID, new_task=again))
            for output in [r for r, t in owner.items() if t == task]:
                moved = Event.ResultOwnerUpdate(
                    result_id=output, previous_owner_id=task, current_owner_id=retry
                )
                events.append(Event(session_id=SID, result_owner_update=moved))
                owner[output] = retry
            task = retry
        final = draw(st.sampled_from([TaskStatus.TASK_STATUS_COMPLETED, TaskStatus.TASK_STATUS_ERROR]))
        events.append(
            Event(session_id=SID, task_status_update=Event.TaskStatusUpdate(task_id=task, status=final))
        )
        done = ResultStatus.RESULT_STATUS_COMPLETED if final == TaskStatus.TASK_STATUS_COMPLETED else 3
        events.append(
            Event(session_id=SID, result_status_update=Event.ResultStatusUpdate(result_id=out, status=done))
        )
    return events


def build(events: list[Event]) -> SessionGraph:
    graph = SessionGraph(SID)
    for event in events:
        graph.apply_event(event, now=1.0)
    return graph


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_any_order_of_a_stream_gives_the_graph_of_the_stream(data: st.DataObject) -> None:
    events = data.draw(streams())
    expected = build(events)
    shuffled = data.draw(st.permutations(events))
    assert build(shuffled).snapshot() == expected.snapshot()


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_a_stream_applied_twice_changes_nothing(data: st.DataObject) -> None:
    events = data.draw(streams())
    graph = build(events)
    once = graph.snapshot()
    for event in data.draw(st.permutations(events)):
        graph.apply_event(event)
    assert graph.snapshot() == once


def test_a_delegated_output_reads_as_such_and_its_producer_follows_the_owner_changes() -> None:
    events = [
        Event(new_task=Event.NewTask(task_id="a", payload_id="pa", expected_output_keys=["out"], status=2)),
        Event(
            new_task=Event.NewTask(
                task_id="b",
                payload_id="pb",
                expected_output_keys=["out"],
                parent_task_ids=[SID, "a"],
                status=12,
            )
        ),  # fmt: skip
        Event(
            result_owner_update=Event.ResultOwnerUpdate(
                result_id="out", previous_owner_id="a", current_owner_id="b"
            )
        ),
        Event(task_status_update=Event.TaskStatusUpdate(task_id="b", status=TaskStatus.TASK_STATUS_RETRIED)),
        Event(
            result_owner_update=Event.ResultOwnerUpdate(
                result_id="out", previous_owner_id="b", current_owner_id="b2"
            )
        ),
        Event(
            new_task=Event.NewTask(
                task_id="b2",
                payload_id="pb",
                expected_output_keys=["out"],
                retry_of_ids=["b"],
                parent_task_ids=[SID, "a"],
                status=2,
            )
        ),  # fmt: skip
    ]
    for order in (events, events[::-1]):
        graph = build(order)
        index = graph.index
        out, a, b = index("out"), index("a"), index("b")
        assert out is not None and a is not None and b is not None
        assert graph.ids[graph.producer(out)] == "b2"
        kinds = {(graph.ids[s], graph.ids[t]): k for s, t, k in graph.edges()}
        assert (
            kinds[("a", "out")] == kinds[("b", "out")] == Edge.DELEGATED
            and kinds[("b2", "out")] == Edge.OUTPUT
        )
        assert kinds[("a", "b")] == kinds[("a", "b2")] == Edge.SUBTASK and kinds[("b", "b2")] == Edge.RETRY
