"""What every state store does the same way, whatever it stores rows in.

The SQLite and MongoDB stores differ in how they read and write (SQL statements in one transaction on one
side; documents, conditional updates and claims on the other), not in the rules they apply, the errors they
raise or the changes they announce. Those live here, once, so that the two cannot drift apart: the contract
tests hold both stores to the same behaviour, and this module is where that behaviour is written.
Nothing here performs I/O.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

from armonik_core.adapters.queue.base import QueueMessage
from armonik_core.adapters.state.base import ChangeListener, StateStore
from armonik_core.domain import graph
from armonik_core.domain.changes import Change
from armonik_core.domain.errors import FailedPrecondition, InvalidArgument, NotFound, describe_missing
from armonik_core.domain.outcomes import OutcomeKind, TaskOutcome
from armonik_core.domain.records import Result, Session, Task
from armonik_core.domain.statuses import FINAL_TASK_STATUSES, EventType, ResultStatus, TaskStatus
from armonik_core.domain.tasks import cancellation_status, missing_outputs

#: Rows of a listing page when the request leaves `page_size` at 0.
DEFAULT_PAGE_SIZE = 100
#: The statuses in which an agent may report how a run ended.
RUNNING_STATUSES = (TaskStatus.DISPATCHED, TaskStatus.PROCESSING, TaskStatus.CANCELLING)
#: The statuses of tasks a session's cancellation leaves as they are: ended, or being cancelled already.
NOT_TO_CANCEL = (*FINAL_TASK_STATUSES, TaskStatus.CANCELLING)
#: The statuses each cancellation target is reached from (`cancellation_status`), for stores that move a
#: whole session's tasks at once rather than task by task.
CANCELLATION_SOURCES: dict[TaskStatus, tuple[TaskStatus, ...]] = {
    target: tuple(s for s in TaskStatus if cancellation_status(s) is target)
    for target in (TaskStatus.CANCELLED, TaskStatus.CANCELLING)
}


class ChangeFeedStore(StateStore):
    """A state store whose committed changes are handed to listeners, in registration order."""

    def __init__(self) -> None:
        self._listeners: list[ChangeListener] = []

    def add_listener(self, listener: ChangeListener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: ChangeListener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _dispatch(self, changes: list[Change]) -> None:
        # A copy: a listener may remove itself while being called.
        for listener in list(self._listeners):
            listener(changes)


# -- requests --------------------------------------------------------------------------------------------------
def page_window(page: int, page_size: int) -> tuple[int, int]:
    """The (offset, limit) of a listing's page; a negative page or size is the caller's mistake."""
    if page < 0 or page_size < 0:
        raise InvalidArgument("page and page_size must not be negative")
    limit = page_size or DEFAULT_PAGE_SIZE
    return page * limit, limit


def require_found(kind: str, wanted: Iterable[str], found: Collection[str], where: str = "") -> None:
    """NotFound naming the ids of `wanted` not in `found` (`where`, e.g. " in session s", ends the message)."""
    missing = set(wanted) - set(found)
    if missing:
        raise NotFound(describe_missing(kind, missing) + where)


def check_can_receive_data(results: Iterable[Result]) -> None:
    """Only a CREATED result receives data: a second upload would replace data tasks may have read."""
    for result in results:
        if result.status != ResultStatus.CREATED:
            raise FailedPrecondition(
                f"Result {result.result_id} is {result.status.name}: only a CREATED result can receive data"
            )


def results_to_delete(results: Iterable[Result]) -> list[Result]:
    """The results whose data a deletion request removes: not those kept for manual deletion, nor those
    already deleted. Refused when one has no data yet: the tasks waiting on it would stay pending forever."""
    results = list(results)
    waiting = sorted(r.result_id for r in results if r.status == ResultStatus.CREATED)
    if waiting:
        raise FailedPrecondition(
            f"Results have no data to delete yet: {', '.join(waiting[:5])}; cancel their owner task instead"
        )
    return [r for r in results if not r.manual_deletion and r.status != ResultStatus.DELETED]


def check_task_partitions(session: Session, tasks: Iterable[Task]) -> None:
    """A task may only target one of its session's partitions."""
    for task in tasks:
        if task.options.partition_id not in session.partition_ids:
            raise FailedPrecondition(
                f"Task {task.task_id} targets partition '{task.options.partition_id}', which is not "
                f"one of session {session.session_id}'s partitions ({', '.join(session.partition_ids)})"
            )


def results_named_by(tasks: Iterable[Task]) -> set[str]:
    """The results a submission reads: every task's inputs and expected outputs."""
    return {rid for t in tasks for rid in (*graph.task_inputs(t), *t.expected_output_ids)}


# -- outcomes of a run -----------------------------------------------------------------------------------------
def start_times(fetched_at: float | None, started_at: float | None, now: float) -> tuple[float, float]:
    """(fetched, started) of a run reported started: the agent's times when it gives them, kept in order
    and never after `now` (the agent's clock and the store's may differ a little); `now` otherwise. An agent
    reports a long task's start a moment after calling the worker: its own times say when it really began."""
    started = now if started_at is None else min(started_at, now)
    fetched = started if fetched_at is None else min(fetched_at, started)
    return fetched, started


def reported_start(task: Task, outcome: TaskOutcome) -> tuple[float, float] | None:
    """When the run's inputs were fetched and when it started, if the outcome says so and the task does not
    know yet (a released task never started: it is given back unrun)."""
    if outcome.started_at is None or task.started_at is not None or outcome.kind is OutcomeKind.RELEASED:
        return None
    fetched = (
        outcome.started_at if outcome.fetched_at is None else min(outcome.fetched_at, outcome.started_at)
    )
    return fetched, outcome.started_at


def processed_time(task: Task, outcome: TaskOutcome, now: float) -> float:
    """When the worker answered, as the agent saw it, kept between the run's start and `now` (the agent's
    clock and the store's may differ a little); `now` when the agent did not say."""
    answered = outcome.processed_at
    if answered is None:
        return now
    if task.started_at is not None:
        answered = max(answered, task.started_at)
    return min(answered, now)


def failure_status(kind: OutcomeKind) -> TaskStatus:
    """The final status of a run that failed (ERROR) or ran out of time (TIMEOUT)."""
    return TaskStatus.ERROR if kind is OutcomeKind.ERROR else TaskStatus.TIMEOUT


def produced_results(task: Task, outcome: TaskOutcome) -> list[str]:
    """The results a successful run sent data for, each one the task owns or created."""
    produced = [c.result_id for c in outcome.completions]
    allowed = set(task.expected_output_ids) | {r.result_id for r in outcome.created_results}
    foreign = sorted(set(produced) - allowed)
    if foreign:
        raise FailedPrecondition(
            f"Task {task.task_id} sent data for results it neither owns nor created: {', '.join(foreign[:5])}"
        )
    return produced


def unfinished_outputs(task: Task, owners: dict[str, str], produced: Collection[str]) -> str | None:
    """Why a successful run must fail after all (outputs it neither produced nor delegated), or None."""
    missing = missing_outputs(task, owners, set(produced))
    if not missing:
        return None
    return f"The task ended without producing or delegating its outputs: {', '.join(missing)}"


def crash_message(task: Task) -> str:
    """The error of an attempt whose agent's lease expired while it held the task."""
    return f"Agent {task.owner_pod_id} stopped answering while running the task"


def out_of_retries(task: Task, message: str) -> str:
    """The error of a crashed attempt that has no retry left."""
    return f"{message} (no retry left of {task.options.max_retries})"


# -- scheduling ------------------------------------------------------------------------------------------------
def queue_message(task: Task) -> QueueMessage:
    """The message that puts a task in its partition's queue."""
    return QueueMessage(task.task_id, task.session_id, task.options.partition_id, task.options.priority)


def split_paused(tasks: Iterable[Task], paused_sessions: Collection[str]) -> tuple[list[Task], list[Task]]:
    """Ready tasks as (those of paused sessions, which wait PAUSED; the others, which are queued)."""
    tasks = list(tasks)
    return (
        [t for t in tasks if t.session_id in paused_sessions],
        [t for t in tasks if t.session_id not in paused_sessions],
    )


def cancellation_targets(tasks: Iterable[Task]) -> dict[TaskStatus, list[Task]]:
    """Tasks to cancel by where cancellation takes them (CANCELLED, or CANCELLING while an agent holds
    them); those already ended are left out."""
    by_target: dict[TaskStatus, list[Task]] = {}
    for task in tasks:
        target = cancellation_status(task.status)
        if target is not None:
            by_target.setdefault(target, []).append(task)
    return by_target


# -- changes announced -----------------------------------------------------------------------------------------
def new_result_changes(results: Iterable[Result], session_id: str | None = None) -> list[Change]:
    """NEW_RESULT for each result, in `session_id` when given, else in the result's own session."""
    return [
        Change(
            EventType.NEW_RESULT,
            r.session_id if session_id is None else session_id,
            r.result_id,
            int(r.status),
            record=r,
        )
        for r in results
    ]


def result_status_changes(session_id: str, result_ids: Iterable[str], status: ResultStatus) -> list[Change]:
    return [Change(EventType.RESULT_STATUS_UPDATE, session_id, rid, int(status)) for rid in result_ids]


def new_task_changes(session_id: str, tasks: Iterable[Task]) -> list[Change]:
    return [Change(EventType.NEW_TASK, session_id, t.task_id, int(t.status), record=t) for t in tasks]


def owner_changes(session_id: str, moves: Mapping[str, tuple[str, str]]) -> list[Change]:
    """RESULT_OWNER_UPDATE for each result of `moves` (result id -> (previous owner, new owner))."""
    return [
        Change(EventType.RESULT_OWNER_UPDATE, session_id, rid, previous_owner=previous, current_owner=new)
        for rid, (previous, new) in moves.items()
    ]
