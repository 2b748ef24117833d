"""Task life cycle rules: retries, cancellation, what a status means for the queue."""

from __future__ import annotations

from enum import Enum

from armonik_core.domain.records import Task
from armonik_core.domain.statuses import FINAL_TASK_STATUSES, TaskStatus

RETRY_SEPARATOR = "###"


def retry_task_id(task: Task) -> str:
    """Id of the next attempt: `<initial id>###<n>`, n counting the attempts already retried."""
    initial = task.initial_task_id or task.task_id
    return f"{initial}{RETRY_SEPARATOR}{len(task.retry_of_ids) + 1}"


def can_retry(task: Task) -> bool:
    """A failed attempt is retried while fewer than `max_retries` attempts have been retried."""
    return len(task.retry_of_ids) < task.options.max_retries


def make_retry(task: Task, now: float) -> Task:
    """The new attempt of `task`: same inputs, outputs and options; waiting to be queued."""
    return Task(
        task_id=retry_task_id(task),
        session_id=task.session_id,
        status=TaskStatus.SUBMITTED,
        options=task.options.copy(),
        payload_id=task.payload_id,
        created_at=now,
        submitted_at=now,
        expected_output_ids=list(task.expected_output_ids),
        data_dependencies=list(task.data_dependencies),
        parent_task_ids=list(task.parent_task_ids),
        retry_of_ids=[*task.retry_of_ids, task.task_id],
        initial_task_id=task.initial_task_id or task.task_id,
        created_by=task.created_by,
    )


def cancellation_status(status: TaskStatus) -> TaskStatus | None:
    """Where a cancelled task goes: CANCELLING while an agent holds it (the agent finishes the job), else
    CANCELLED at once; None when the task is already final and cancelling it changes nothing."""
    if status in FINAL_TASK_STATUSES or status in (TaskStatus.CANCELLED, TaskStatus.CANCELLING):
        return None
    if status in (TaskStatus.DISPATCHED, TaskStatus.PROCESSING, TaskStatus.PROCESSED):
        return TaskStatus.CANCELLING
    return TaskStatus.CANCELLED


class Acquisition(str, Enum):
    """What an agent that received a task's message may do with it."""

    #: Queued (or dispatched to an agent that lost its lease before starting): run it.
    TAKE = "take"
    #: It was running on an agent whose lease expired: that attempt crashed; retry it, do not run it here.
    RECOVER_CRASH = "recover_crash"
    #: Cancelled while queued or dispatched: finish the cancellation, run nothing.
    CANCEL = "cancel"
    #: Anything else (finished, paused, waiting): the message is stale; drop it.
    SKIP = "skip"


def decide_acquisition(task: Task, agent_id: str) -> Acquisition:
    """Decide from the task's status alone; a redelivered message proves its previous holder lost the lease."""
    if task.status == TaskStatus.SUBMITTED:
        return Acquisition.TAKE
    if task.status == TaskStatus.DISPATCHED:
        return Acquisition.TAKE
    if task.status in (TaskStatus.PROCESSING, TaskStatus.PROCESSED):
        return Acquisition.TAKE if task.owner_pod_id == agent_id else Acquisition.RECOVER_CRASH
    if task.status == TaskStatus.CANCELLING:
        return Acquisition.CANCEL
    return Acquisition.SKIP


def missing_outputs(task: Task, owners: dict[str, str], produced: set[str]) -> list[str]:
    """Expected outputs a successful task neither produced nor handed over to a subtask.

    `owners` maps each expected output to its owner after the task's subtasks were applied."""
    return sorted(
        rid for rid in task.expected_output_ids if rid not in produced and owners.get(rid) == task.task_id
    )
