"""The MongoDB state store's shared steps: loading records, moving task statuses, the outbox, results' data,
submitting tasks (client's or worker's) and releasing the tasks that waited on completed results.

Each step is a function of the unit of work's `_Db`, written in the order the module `mongodb` describes so
that without transactions the last write of a unit is its commit point."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from armonik_core.adapters.queue.base import QueueMessage
from armonik_core.adapters.state import common
from armonik_core.adapters.state import mongodb_schema as schema
from armonik_core.adapters.state.mongodb_db import (
    _RESULT_PROJECTION,
    CHUNK,
    Document,
    Query,
    _Db,
)
from armonik_core.domain import graph
from armonik_core.domain.changes import Change
from armonik_core.domain.errors import FailedPrecondition, NotFound
from armonik_core.domain.records import Result, Session, Task
from armonik_core.domain.statuses import EventType, ResultStatus, SessionStatus, TaskStatus


def _load_session(db: _Db, session_id: str) -> Session:
    doc = db.find_one(schema.SESSIONS, {"_id": session_id})
    if doc is None:
        raise NotFound(f"Session not found: {session_id}")
    return schema.session_from_document(doc)


def _save_session_state(db: _Db, session: Session, previous: SessionStatus) -> None:
    """The commit point of a session action: only from the status the action was checked against."""
    query = {"_id": session.session_id, "Status": int(previous)}
    if not db.update(schema.SESSIONS, query, {"$set": schema.session_state(session)}):
        raise FailedPrecondition(f"Session {session.session_id} changed meanwhile; try again")


def _load_results(db: _Db, result_ids: Sequence[str], session_id: str) -> dict[str, Result]:
    docs = db.find_ids(schema.RESULTS, result_ids, _RESULT_PROJECTION)
    found = {r.result_id: r for r in map(schema.result_from_document, docs) if r.session_id == session_id}
    common.require_found("Result", result_ids, found, f" in session {session_id}")
    return found


def _load_tasks(db: _Db, task_ids: Iterable[str]) -> dict[str, Task]:
    return {t.task_id: t for t in map(schema.task_from_document, db.find_ids(schema.TASKS, task_ids))}


def _session_tasks(db: _Db, session_id: str, status: TaskStatus) -> list[Task]:
    docs = db.find(schema.TASKS, {"SessionId": session_id, "Status": int(status)})
    return [schema.task_from_document(d) for d in docs]


def _load_graph_results(db: _Db, result_ids: Iterable[str]) -> dict[str, Result]:
    """Just what the graph rules read of each result (session, status, owner)."""
    docs = db.find_ids(schema.RESULTS, result_ids, {"SessionId": 1, "Status": 1, "OwnerTaskId": 1})
    return {
        d["_id"]: Result(
            d["_id"], d["SessionId"], "", ResultStatus(d["Status"]), 0.0, d.get("OwnerTaskId", "")
        )
        for d in docs
    }


def _paused_sessions(db: _Db, session_ids: Iterable[str]) -> set[str]:
    docs = db.find_ids(schema.SESSIONS, session_ids, {"_id": 1}, Status=int(SessionStatus.PAUSED))
    return {d["_id"] for d in docs}


# -- writing --------------------------------------------------------------------------------------------------
def _set_task_status(
    db: _Db,
    changes: list[Change],
    tasks: Sequence[Task],
    status: TaskStatus,
    expect: Query | None = None,
    also: Sequence[str] = (),
    **timestamps: float,
) -> list[Task]:
    """Move tasks to `status` (with `timestamps` and the attributes named in `also`), each only from the
    state it was read in (its status, or `expect` for a single task); returns those that moved."""
    if not tasks:
        return []
    previous = {t.task_id: t.status for t in tasks}
    for task in tasks:
        task.status = status
        for name, value in timestamps.items():
            setattr(task, name, value)
    attributes = ["status", *timestamps, *also]
    if expect is not None or len(tasks) == 1 or also or schema.DURATION_INPUTS.intersection(timestamps):
        updates = [
            (
                {
                    "_id": t.task_id,
                    **(expect if expect is not None else {"Status": int(previous[t.task_id])}),
                },
                {"$set": schema.task_fields(t, attributes)},
            )
            for t in tasks
        ]
        moved = db.update_each(schema.TASKS, updates)
    else:  # the same fields for every task: one update per status they leave
        by_status: dict[TaskStatus, list[str]] = {}
        for task_id, source in previous.items():
            by_status.setdefault(source, []).append(task_id)
        update = {"$set": schema.task_fields(tasks[0], attributes)}
        moved = sum(
            db.update(schema.TASKS, {"_id": {"$in": ids}, "Status": int(source)}, update)
            for source, ids in by_status.items()
        )
    done = list(tasks)
    if moved < len(tasks):  # another writer changed some meanwhile: report only what this unit moved
        now_in = {d["_id"] for d in db.find_ids(schema.TASKS, previous, {"_id": 1}, Status=int(status))}
        done = [t for t in tasks if t.task_id in now_in]
    changes.extend(Change(EventType.TASK_STATUS_UPDATE, t.session_id, t.task_id, int(status)) for t in done)
    return done


def _enqueue(db: _Db, tasks: Iterable[Task]) -> list[QueueMessage]:
    """Record ready tasks in the outbox (before they become SUBMITTED); the caller publishes the messages.

    A task may be there already (queued again before its earlier message was confirmed published): the entry
    is the same. Inserted in bulk, skipping those; in a transaction, where a duplicate key would abort it,
    the existing entries are looked up first."""
    messages = [common.queue_message(t) for t in tasks]
    if not db.outbox or not messages:
        return messages
    docs = [
        {"_id": m.task_id, "SessionId": m.session_id, "PartitionId": m.partition_id, "Priority": m.priority}
        for m in messages
    ]
    if db.in_transaction:
        there = {d["_id"] for d in db.find_ids(schema.OUTBOX, [m.task_id for m in messages], {"_id": 1})}
        docs = [d for d in docs if d["_id"] not in there]
    db.insert(schema.OUTBOX, docs)
    return messages


def _insert_new_results(db: _Db, docs: list[Document]) -> None:
    """Insert results whose ids must all be new: nothing is inserted when one is taken (without a
    transaction, those inserted before the conflict was known are removed again: nothing refers to them)."""
    ids = [d["_id"] for d in docs]
    taken = {rid for rid in ids if ids.count(rid) > 1} if len(set(ids)) < len(ids) else set()
    if not taken:
        taken = db.insert(schema.RESULTS, docs)
        if taken and not db.in_transaction:
            db.delete(schema.RESULTS, {"_id": {"$in": [i for i in ids if i not in taken]}})
    if taken:
        raise FailedPrecondition(f"A result id is already taken: {', '.join(sorted(taken)[:5])}")


def _store_data(db: _Db, completions: Iterable[Any], now: float) -> None:
    """Results receive their data: COMPLETED, only from CREATED."""
    date = schema.to_date(now)
    updates = [
        (
            {"_id": c.result_id, "Status": int(ResultStatus.CREATED)},
            {
                "$set": {
                    "Status": int(ResultStatus.COMPLETED),
                    "Size": c.size,
                    "CompletionDate": date,
                    **schema.opaque_fields(c.opaque_id),
                }
            },
        )
        for c in completions
    ]
    db.update_each(schema.RESULTS, updates)


def _mark_deleted(db: _Db, result_ids: list[str]) -> None:
    if result_ids:
        db.update(
            schema.RESULTS,
            {"_id": {"$in": result_ids}},
            {"$set": {"Status": int(ResultStatus.DELETED), **schema.opaque_fields(b"")}},
        )


def _plan_tasks(
    db: _Db,
    session: Session,
    tasks: Sequence[Task],
    parent_task_id: str | None,
    made: Mapping[str, Result] | None = None,
) -> graph.SubmissionPlan:
    """Validate new tasks (client submission or a worker's subtasks) and decide their fate; no write.
    `made`: results as this unit of work is about to leave them (created or completed by the parent)."""
    common.check_task_partitions(session, tasks)
    named = common.results_named_by(tasks)
    results = _load_graph_results(db, named - set(made or ()))
    results.update({rid: r for rid, r in (made or {}).items() if rid in named})
    return graph.plan_submission(tasks, results, session.session_id, parent_task_id)


def _write_tasks(
    db: _Db,
    changes: list[Change],
    session: Session,
    tasks: Sequence[Task],
    plan: graph.SubmissionPlan,
    now: float,
) -> list[QueueMessage]:
    """Insert planned tasks CREATING, give them their outputs, then make them SUBMITTED (PAUSED) or PENDING."""
    ready = set(plan.ready)
    paused = session.status == SessionStatus.PAUSED
    targets: dict[TaskStatus, list[Task]] = {}
    for task in tasks:
        task.created_at = schema.round_time(task.created_at)
        if task.task_id in ready:
            target = TaskStatus.PAUSED if paused else TaskStatus.SUBMITTED
            task.submitted_at = now
        else:
            target = TaskStatus.PENDING
        targets.setdefault(target, []).append(task)
        task.status = TaskStatus.CREATING
    _insert_creating(db, [schema.task_to_document(t, plan.waiting.get(t.task_id)) for t in tasks])
    waiting_on: dict[str, list[str]] = {}
    for task_id, needed in plan.waiting.items():
        for rid in needed:
            waiting_on.setdefault(rid, []).append(task_id)
    db.update_each(
        schema.RESULTS,
        [
            ({"_id": rid}, {"$addToSet": {"DependentTasks": {"$each": tids}}})
            for rid, tids in waiting_on.items()
        ],
    )
    _take_outputs(db, plan, [t.task_id for t in tasks])
    messages = _enqueue(db, targets.get(TaskStatus.SUBMITTED, []))
    for target, group in targets.items():
        for task in group:
            task.status = target
        ids = [t.task_id for t in group]
        for start in range(0, len(ids), CHUNK):
            db.update(
                schema.TASKS,
                {"_id": {"$in": ids[start : start + CHUNK]}, "Status": int(TaskStatus.CREATING)},
                {"$set": {"Status": int(target)}},
            )
    changes.extend(common.new_task_changes(session.session_id, tasks))
    changes.extend(common.owner_changes(session.session_id, plan.owner_changes))
    # Without a transaction an input may have completed after it was read and before this submission
    # registered as its dependent: release what waits on such inputs now (idempotent otherwise).
    if waiting_on and not db.in_transaction:
        done = db.find_ids(schema.RESULTS, waiting_on, {"_id": 1}, Status=int(ResultStatus.COMPLETED))
        messages += _resolve_dependents(db, changes, [d["_id"] for d in done], now)
    return messages


def _insert_creating(db: _Db, docs: list[Document]) -> None:
    taken = db.insert(schema.TASKS, docs)
    if taken:
        if not db.in_transaction:
            mine = [d["_id"] for d in docs if d["_id"] not in taken]
            db.delete(schema.TASKS, {"_id": {"$in": mine}, "Status": int(TaskStatus.CREATING)})
        raise FailedPrecondition(f"A task id is already taken: {', '.join(sorted(taken)[:5])}")


def _take_outputs(db: _Db, plan: graph.SubmissionPlan, task_ids: list[str]) -> None:
    """Move each output from the owner the plan read to its new task; when another writer moved one meanwhile,
    give back what was taken and drop the CREATING tasks (the submission did not happen)."""
    moves = [
        ({"_id": rid, "OwnerTaskId": previous}, {"$set": {"OwnerTaskId": new}})
        for rid, (previous, new) in plan.owner_changes.items()
    ]
    if db.update_each(schema.RESULTS, moves) == len(moves):
        return
    if not db.in_transaction:
        db.update_each(
            schema.RESULTS,
            [
                ({"_id": rid, "OwnerTaskId": new}, {"$set": {"OwnerTaskId": previous}})
                for rid, (previous, new) in plan.owner_changes.items()
            ],
        )
        db.delete(schema.TASKS, {"_id": {"$in": task_ids}, "Status": int(TaskStatus.CREATING)})
    raise FailedPrecondition("Another task took one of these outputs meanwhile; submit again")


def _resolve_dependents(
    db: _Db, changes: list[Change], completed: Sequence[str], now: float
) -> list[QueueMessage]:
    """Drop the completed inputs from every waiting task and queue the tasks that now have them all."""
    if not completed:
        return []
    docs = db.find_ids(schema.RESULTS, completed, {"DependentTasks": 1})
    dependents = sorted({tid for d in docs for tid in d.get("DependentTasks") or ()})
    if not dependents:
        return []
    unset = {f"RemainingDataDependencies.{schema.encode_key(rid)}": "" for rid in completed}
    for start in range(0, len(dependents), CHUNK):
        db.update(schema.TASKS, {"_id": {"$in": dependents[start : start + CHUNK]}}, {"$unset": unset})
    pending = db.find_ids(schema.TASKS, dependents, Status=int(TaskStatus.PENDING))
    remaining = {
        d["_id"]: [schema.decode_key(k) for k in d.get("RemainingDataDependencies") or {}] for d in pending
    }
    ready_ids = set(graph.ready_after_completion(remaining, completed))
    ready = [schema.task_from_document(d) for d in pending if d["_id"] in ready_ids]
    paused, runnable = common.split_paused(ready, _paused_sessions(db, {t.session_id for t in ready}))
    _set_task_status(db, changes, paused, TaskStatus.PAUSED, submitted_at=now)
    _enqueue(db, runnable)
    moved = _set_task_status(db, changes, runnable, TaskStatus.SUBMITTED, submitted_at=now)
    return [common.queue_message(t) for t in moved]
