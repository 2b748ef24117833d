"""armonik_graph's task times: the store's records win over the times events were applied.

An agent reports a task's start (PROCESSING) only once the task has run for a moment, so the event arrives
after the run began; the run's real times are in the task's record (`started_at`, `ended_at`), which the live
graph reads back once the task ended. The critical path must then count the recorded run, and a status event
repeated by the stream must not move a time already known.
"""

from __future__ import annotations

from armonik.protogen.common.events_common_pb2 import EventSubscriptionResponse as Event
from armonik.protogen.common.task_status_pb2 import TaskStatus
from armonik.protogen.common.tasks_common_pb2 import TaskDetailed
from google.protobuf.timestamp_pb2 import Timestamp

from armonik_graph import SessionGraph, critical_path

SID = "session"


def at(seconds: float) -> Timestamp:
    stamp = Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp


def status(task_id: str, value: int) -> Event:
    return Event(session_id=SID, task_status_update=Event.TaskStatusUpdate(task_id=task_id, status=value))


def one_task_graph() -> SessionGraph:
    graph = SessionGraph(SID)
    new = Event.NewTask(
        task_id="t", payload_id="p", status=TaskStatus.TASK_STATUS_SUBMITTED, expected_output_keys=["out"]
    )
    graph.apply_event(Event(session_id=SID, new_task=new), now=100.0)
    graph.apply_event(status("t", TaskStatus.TASK_STATUS_DISPATCHED), now=100.01)
    graph.apply_event(status("t", TaskStatus.TASK_STATUS_PROCESSING), now=100.12)  # reported late
    return graph


def test_the_recorded_run_replaces_the_times_events_were_applied() -> None:
    graph = one_task_graph()
    graph.apply_event(status("t", TaskStatus.TASK_STATUS_COMPLETED), now=100.25)
    assert round(critical_path(graph).steps[0].running_seconds, 3) == 0.13  # from the events alone
    record = TaskDetailed(
        id="t",
        status=TaskStatus.TASK_STATUS_COMPLETED,
        created_at=at(100.0),
        submitted_at=at(100.0),
        acquired_at=at(100.005),
        started_at=at(100.02),
        processed_at=at(100.22),
        ended_at=at(100.23),
    )
    graph.add_task_times([record, TaskDetailed(id="unknown", ended_at=at(1.0))])
    (step,) = critical_path(graph).steps
    assert (step.started, step.ended) == (record.started_at.ToNanoseconds() / 1e9, 100.23)
    assert round(step.running_seconds, 3) == 0.21 and round(step.queue_seconds, 3) == 0.02
    assert graph.index("unknown") is None


def test_a_repeated_status_keeps_the_time_it_was_first_given() -> None:
    graph = one_task_graph()
    graph.apply_event(status("t", TaskStatus.TASK_STATUS_PROCESSING), now=105.0)  # sent twice
    graph.apply_event(status("t", TaskStatus.TASK_STATUS_COMPLETED), now=106.0)
    graph.apply_event(status("t", TaskStatus.TASK_STATUS_COMPLETED), now=107.0)
    (step,) = critical_path(graph).steps
    assert (step.started, step.ended) == (100.12, 106.0)
