"""Retries and cancellation of tasks."""

from armonik_core.domain.options import TaskOptions
from armonik_core.domain.records import Task
from armonik_core.domain.statuses import TaskStatus
from armonik_core.domain.tasks import can_retry, cancellation_status, make_retry, retry_task_id


def task(retries: int = 2, retry_of: list[str] | None = None, task_id: str = "t") -> Task:
    return Task(
        task_id=task_id,
        session_id="s",
        status=TaskStatus.PROCESSING,
        options=TaskOptions(max_retries=retries, partition_id="p"),
        payload_id="pay",
        created_at=1.0,
        expected_output_ids=["o"],
        data_dependencies=["d"],
        retry_of_ids=retry_of or [],
        initial_task_id="t",
    )


def test_retry_ids_follow_upstream_naming() -> None:
    first = task()
    assert retry_task_id(first) == "t###1"
    retry = make_retry(first, now=5.0)
    assert retry.task_id == "t###1"
    assert retry.retry_of_ids == ["t"]
    assert retry.initial_task_id == "t"
    assert retry.status == TaskStatus.SUBMITTED
    assert (retry.payload_id, retry.expected_output_ids, retry.data_dependencies) == ("pay", ["o"], ["d"])
    second = make_retry(retry, now=6.0)
    assert second.task_id == "t###2"
    assert second.retry_of_ids == ["t", "t###1"]


def test_retries_stop_at_max_retries() -> None:
    assert can_retry(task(retries=2, retry_of=[]))
    assert can_retry(task(retries=2, retry_of=["t"]))
    assert not can_retry(task(retries=2, retry_of=["t", "t###1"]))
    assert not can_retry(task(retries=0))


def test_cancellation_targets() -> None:
    assert cancellation_status(TaskStatus.PENDING) == TaskStatus.CANCELLED
    assert cancellation_status(TaskStatus.SUBMITTED) == TaskStatus.CANCELLED
    assert cancellation_status(TaskStatus.PAUSED) == TaskStatus.CANCELLED
    assert cancellation_status(TaskStatus.PROCESSING) == TaskStatus.CANCELLING
    assert cancellation_status(TaskStatus.DISPATCHED) == TaskStatus.CANCELLING
    for final in (TaskStatus.COMPLETED, TaskStatus.ERROR, TaskStatus.CANCELLED, TaskStatus.RETRIED):
        assert cancellation_status(final) is None


def test_acquisition_decisions() -> None:
    from armonik_core.domain.tasks import Acquisition, decide_acquisition

    def at(status: TaskStatus, owner: str = "") -> Task:
        t = task()
        t.status, t.owner_pod_id = status, owner
        return t

    assert decide_acquisition(at(TaskStatus.SUBMITTED), "a") is Acquisition.TAKE
    assert decide_acquisition(at(TaskStatus.DISPATCHED, "dead"), "a") is Acquisition.TAKE
    assert decide_acquisition(at(TaskStatus.PROCESSING, "dead"), "a") is Acquisition.RECOVER_CRASH
    assert decide_acquisition(at(TaskStatus.PROCESSING, "a"), "a") is Acquisition.TAKE
    assert decide_acquisition(at(TaskStatus.CANCELLING, "dead"), "a") is Acquisition.CANCEL
    for status in (
        TaskStatus.COMPLETED,
        TaskStatus.PAUSED,
        TaskStatus.PENDING,
        TaskStatus.CANCELLED,
        TaskStatus.RETRIED,
    ):
        assert decide_acquisition(at(status), "a") is Acquisition.SKIP


def test_missing_outputs_are_those_neither_produced_nor_delegated() -> None:
    from armonik_core.domain.tasks import missing_outputs

    t = task()
    t.expected_output_ids = ["made", "handed", "forgotten"]
    owners = {"made": "t", "handed": "child", "forgotten": "t"}
    assert missing_outputs(t, owners, {"made"}) == ["forgotten"]
    assert missing_outputs(t, {**owners, "forgotten": "child2"}, {"made"}) == []
