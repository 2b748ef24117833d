"""The MongoDB state store's outcomes of a run: the claim a unit of work takes on a task before changing it,
success (new results, data, subtasks, dependents, then COMPLETED), failure, cancellation, release and retry.

The claim and the final status written only while it holds (`_finalize`) are what keep these units exclusive
without transactions (see `mongodb`'s docstring)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from armonik_core.adapters.queue.base import QueueMessage
from armonik_core.adapters.state import common
from armonik_core.adapters.state import mongodb_schema as schema
from armonik_core.adapters.state.mongodb_cascade import _abort_downstream
from armonik_core.adapters.state.mongodb_db import (
    Query,
    _Db,
)
from armonik_core.adapters.state.mongodb_writes import (
    _enqueue,
    _load_graph_results,
    _load_session,
    _plan_tasks,
    _resolve_dependents,
    _set_task_status,
    _store_data,
    _write_tasks,
)
from armonik_core.domain import graph
from armonik_core.domain.changes import Change
from armonik_core.domain.errors import FailedPrecondition
from armonik_core.domain.outcomes import TaskOutcome
from armonik_core.domain.records import Result, Session, Task
from armonik_core.domain.statuses import ResultStatus, SessionStatus, TaskStatus
from armonik_core.domain.tasks import can_retry, make_retry


@dataclass(slots=True)
class _Held:
    """A task this unit of work claimed (PROCESSED with `claim`), and attributes to write with its final status."""

    task: Task
    claim: str
    extra: list[str] = field(default_factory=list)

    @property
    def expect(self) -> Query:
        return {"Status": int(TaskStatus.PROCESSED), "ClaimId": self.claim}


def _state_of(doc: Mapping[str, Any]) -> Query:
    """The compare-and-set condition of a task document as read: status, owner and claim."""
    return {"Status": doc["Status"], "OwnerPodId": doc.get("OwnerPodId", ""), "ClaimId": doc.get("ClaimId")}


def _claim(db: _Db, task: Task, state: Query) -> _Held | None:
    """Take the task for this unit of work, if it is still as read (see the module's docstring)."""
    token = uuid.uuid4().hex
    update = {"$set": {"Status": int(TaskStatus.PROCESSED), "ClaimId": token}}
    if db.swap(schema.TASKS, {"_id": task.task_id, **state}, update, {"_id": 1}) is None:
        return None
    return _Held(task, token)


def _finalize(
    db: _Db,
    changes: list[Change],
    held: _Held,
    status: TaskStatus,
    now: float,
    also: Sequence[str] = (),
    **timestamps: float,
) -> bool:
    """The commit point of a claimed task: its final status, written only while the claim still holds.

    Only a cancellation by another writer (CANCELLING, the claim kept) can change a claimed task: the
    cancellation is then finished here, rather than the task left CANCELLING with no agent to end it."""
    if _set_task_status(db, changes, [held.task], status, held.expect, [*also, *held.extra], **timestamps):
        return True
    held.task.status = TaskStatus.CANCELLING
    expect = {"Status": int(TaskStatus.CANCELLING), "ClaimId": held.claim}
    if _set_task_status(db, changes, [held.task], TaskStatus.CANCELLED, expect, held.extra, ended_at=now):
        _abort_downstream(db, changes, [held.task.task_id], TaskStatus.CANCELLED, now)
    return False


@dataclass(slots=True)
class _Success:
    """A successful outcome, validated before the task is claimed."""

    session: Session
    plan: graph.SubmissionPlan | None
    produced: list[str]


def _prepare_success(db: _Db, task: Task, outcome: TaskOutcome) -> _Success:
    session = _load_session(db, task.session_id)
    created = outcome.created_results
    if created:
        taken = db.find_ids(schema.RESULTS, [r.result_id for r in created], {"_id": 1})
        if taken:
            raise FailedPrecondition(
                f"A result id is already taken: {', '.join(sorted(d['_id'] for d in taken)[:5])}"
            )
    produced = common.produced_results(task, outcome)
    plan = None
    if outcome.subtasks:
        # The subtasks see the results as this outcome leaves them: created, and completed when still CREATED.
        made = {
            r.result_id: Result(r.result_id, r.session_id, "", r.status, 0.0, r.owner_task_id)
            for r in created
        }
        current = _load_graph_results(db, set(produced) - set(made))
        made.update(current)
        for rid in produced:
            if rid in made and made[rid].status == ResultStatus.CREATED:
                made[rid].status = ResultStatus.COMPLETED
        plan = _plan_tasks(db, session, outcome.subtasks, task.task_id, made)
    return _Success(session, plan, produced)


def _apply_success(
    db: _Db, changes: list[Change], held: _Held, outcome: TaskOutcome, success: _Success, now: float
) -> list[QueueMessage]:
    """A successful run: its new results, its data, its subtasks, its dependents, then the task COMPLETED."""
    task = held.task
    created = outcome.created_results
    for result in created:
        result.created_at = schema.round_time(result.created_at)
    db.insert(schema.RESULTS, [schema.result_to_document(r) for r in created])
    changes.extend(common.new_result_changes(created))
    _store_data(db, outcome.completions, now)
    changes.extend(common.result_status_changes(task.session_id, success.produced, ResultStatus.COMPLETED))
    messages: list[QueueMessage] = []
    if success.plan is not None:
        messages += _write_tasks(db, changes, success.session, outcome.subtasks, success.plan, now)
    messages += _resolve_dependents(db, changes, success.produced, now)
    docs = db.find_ids(schema.RESULTS, task.expected_output_ids, {"OwnerTaskId": 1})
    owners = {d["_id"]: d.get("OwnerTaskId", "") for d in docs}
    unfinished = common.unfinished_outputs(task, owners, success.produced)
    if unfinished is not None:
        _fail(db, changes, held, TaskStatus.ERROR, unfinished, now)
        return messages
    task.error = ""
    processed = schema.round_time(common.processed_time(task, outcome, now))
    _finalize(db, changes, held, TaskStatus.COMPLETED, now, ("error",), processed_at=processed, ended_at=now)
    return messages


def _fail(db: _Db, changes: list[Change], held: _Held, status: TaskStatus, message: str, now: float) -> None:
    """The task fails for good: what waited on its outputs fails first, then the task itself (commit point)."""
    task = held.task
    task.error = task.status_message = message
    downstream: list[Change] = []
    _abort_downstream(db, downstream, [task.task_id], TaskStatus.ERROR, now)
    _finalize(db, changes, held, status, now, ("error", "status_message"), ended_at=now)
    changes.extend(downstream)


def _cancel_running(db: _Db, changes: list[Change], held: _Held, now: float) -> None:
    """A cancelled task's agent is done with it: what waited on its outputs is cancelled, then the task."""
    downstream: list[Change] = []
    _abort_downstream(db, downstream, [held.task.task_id], TaskStatus.CANCELLED, now)
    _finalize(db, changes, held, TaskStatus.CANCELLED, now, ended_at=now)
    changes.extend(downstream)


def _release(db: _Db, changes: list[Change], held: _Held, now: float) -> list[QueueMessage]:
    """The agent gives the task back unrun: queued again for any agent, no attempt counted."""
    task = held.task
    # Untouched: as if never received, so the next acquisition records its own times.
    task.owner_pod_id = task.pod_hostname = ""
    task.received_at = task.acquired_at = None
    reset = ("owner_pod_id", "pod_hostname", "received_at", "acquired_at")
    if _load_session(db, task.session_id).status == SessionStatus.PAUSED:
        _finalize(db, changes, held, TaskStatus.PAUSED, now, reset)
        return []
    messages = _enqueue(db, [task])
    return messages if _finalize(db, changes, held, TaskStatus.SUBMITTED, now, reset) else []


def _retry_or_fail(
    db: _Db, changes: list[Change], held: _Held, message: str, now: float
) -> list[QueueMessage]:
    """A crashed attempt: a new attempt takes over its outputs while retries remain, else it fails."""
    task = held.task
    if not can_retry(task):
        _fail(db, changes, held, TaskStatus.ERROR, common.out_of_retries(task, message), now)
        return []
    _take_back_from_unfinished_subtasks(db, task)
    retry = make_retry(task, now)
    paused = _load_session(db, task.session_id).status == SessionStatus.PAUSED
    target = TaskStatus.PAUSED if paused else TaskStatus.SUBMITTED
    retry.status = TaskStatus.CREATING
    db.insert(schema.TASKS, [schema.task_to_document(retry)])  # already there: an interrupted recovery's
    owned = db.find_ids(schema.RESULTS, retry.expected_output_ids, {"OwnerTaskId": 1})
    handed = [d["_id"] for d in owned if d.get("OwnerTaskId") == task.task_id]
    db.update_each(
        schema.RESULTS,
        [
            ({"_id": rid, "OwnerTaskId": task.task_id}, {"$set": {"OwnerTaskId": retry.task_id}})
            for rid in handed
        ],
    )
    retry.status = target
    messages = [] if paused else _enqueue(db, [retry])
    db.update(
        schema.TASKS,
        {"_id": retry.task_id, "Status": int(TaskStatus.CREATING)},
        {"$set": {"Status": int(target)}},
    )
    task.error = task.status_message = message
    if not _finalize(db, changes, held, TaskStatus.RETRIED, now, ("error", "status_message"), ended_at=now):
        return []
    changes.extend(common.new_task_changes(task.session_id, [retry]))
    changes.extend(
        common.owner_changes(task.session_id, {rid: (task.task_id, retry.task_id) for rid in handed})
    )
    return messages


def _take_back_from_unfinished_subtasks(db: _Db, task: Task) -> None:
    """Subtasks still CREATING were being submitted when a previous unit for this task stopped: the task gets
    back the outputs it was handing them, and they are dropped (no change was ever announced for them)."""
    unfinished = [
        d["_id"]
        for d in db.find(
            schema.TASKS, {"CreatedBy": task.task_id, "Status": int(TaskStatus.CREATING)}, {"_id": 1}
        )
    ]
    if not unfinished:
        return
    db.update(
        schema.RESULTS,
        {"_id": {"$in": task.expected_output_ids}, "OwnerTaskId": {"$in": unfinished}},
        {"$set": {"OwnerTaskId": task.task_id}},
    )
    db.delete(schema.TASKS, {"_id": {"$in": unfinished}, "Status": int(TaskStatus.CREATING)})
