"""The MongoDB state store's cancellations and abort cascades: tasks cancelled, the outputs they will no longer
produce aborted, and what waited on those cancelled or failed, by the domain's rules (`graph.plan_abort_cascade`).
"""

from __future__ import annotations

from collections.abc import Collection

from armonik_core.adapters.state import common
from armonik_core.adapters.state import mongodb_schema as schema
from armonik_core.adapters.state.mongodb_db import _Db
from armonik_core.adapters.state.mongodb_writes import (
    _load_tasks,
    _mark_deleted,
    _set_task_status,
)
from armonik_core.domain import graph
from armonik_core.domain.changes import Change
from armonik_core.domain.records import Task
from armonik_core.domain.statuses import EventType, ResultStatus, TaskStatus


class _GraphView:
    """The cascade's view of the graph (`graph.GraphView`): dependents are the `DependentTasks` of results."""

    def __init__(self, db: _Db) -> None:
        self._db = db

    def dependents(self, result_ids: Collection[str]) -> dict[str, TaskStatus]:
        docs = self._db.find_ids(schema.RESULTS, result_ids, {"DependentTasks": 1})
        task_ids = {tid for d in docs for tid in d.get("DependentTasks") or ()}
        rows = self._db.find_ids(schema.TASKS, task_ids, {"Status": 1})
        return {row["_id"]: TaskStatus(row["Status"]) for row in rows}

    def owned_results(self, task_ids: Collection[str]) -> dict[str, ResultStatus]:
        rows = self._db.find_in(schema.RESULTS, "OwnerTaskId", task_ids, {"Status": 1})
        return {row["_id"]: ResultStatus(row["Status"]) for row in rows}


def _cancel(db: _Db, changes: list[Change], tasks: list[Task], now: float) -> None:
    """Cancel tasks, abort the outputs they will no longer produce and cancel what waited on those. What
    waited is cancelled first, so that a cancellation interrupted half-way is whole when asked again."""
    by_target = common.cancellation_targets(tasks)
    cancelled = by_target.get(TaskStatus.CANCELLED, [])
    downstream: list[Change] = []
    _abort_downstream(db, downstream, [t.task_id for t in cancelled], TaskStatus.CANCELLED, now)
    _move_to_cancellation(db, changes, by_target, now)
    changes.extend(downstream)


def _move_to_cancellation(
    db: _Db, changes: list[Change], by_target: dict[TaskStatus, list[Task]], now: float
) -> None:
    """Tasks to CANCELLED (ended now), or to CANCELLING where an agent holds them (`cancellation_targets`)."""
    _set_task_status(db, changes, by_target.get(TaskStatus.CANCELLED, []), TaskStatus.CANCELLED, ended_at=now)
    _set_task_status(db, changes, by_target.get(TaskStatus.CANCELLING, []), TaskStatus.CANCELLING)


def _abort_downstream(
    db: _Db, changes: list[Change], task_ids: list[str], status: TaskStatus, now: float
) -> None:
    """Apply the domain's abort cascade from tasks that will never produce their outputs."""
    if not task_ids:
        return
    plan = graph.plan_abort_cascade(task_ids, _GraphView(db))
    doomed = list(_load_tasks(db, sorted(plan.tasks)).values())
    _set_task_status(db, changes, doomed, status, ended_at=now)
    if db.outbox:
        db.delete(schema.OUTBOX, {"_id": {"$in": [*task_ids, *plan.tasks]}})
    _abort_results(db, changes, sorted(plan.results))


def _abort_results(db: _Db, changes: list[Change], result_ids: list[str]) -> None:
    if not result_ids:
        return
    rows = db.find_ids(schema.RESULTS, result_ids, {"SessionId": 1})
    db.update(
        schema.RESULTS,
        {"_id": {"$in": result_ids}, "Status": int(ResultStatus.CREATED)},
        {"$set": {"Status": int(ResultStatus.ABORTED)}},
    )
    changes.extend(
        Change(EventType.RESULT_STATUS_UPDATE, r["SessionId"], r["_id"], int(ResultStatus.ABORTED))
        for r in rows
    )


def _cancel_session_tasks(db: _Db, changes: list[Change], session_id: str, now: float) -> None:
    """Cancel a whole session: its tasks not yet ended (CANCELLING where an agent holds them), and the
    results still to produce. The abort cascade of a task cancellation has nothing to add here, since a task
    only waits on results of its own session, all of which are aborted: no graph is walked. The tasks are
    still read, as each one's durations are stored with it."""
    finals = [int(s) for s in common.NOT_TO_CANCEL]
    docs = db.find(schema.TASKS, {"SessionId": session_id, "Status": {"$nin": finals}})
    by_target = common.cancellation_targets(schema.task_from_document(d) for d in docs)
    _move_to_cancellation(db, changes, by_target, now)
    leftovers = db.find(
        schema.RESULTS, {"SessionId": session_id, "Status": int(ResultStatus.CREATED)}, {"_id": 1}
    )
    _abort_results(db, changes, [d["_id"] for d in leftovers])
    if db.outbox:
        db.delete(schema.OUTBOX, {"SessionId": session_id})


def _drop_session_data(db: _Db, changes: list[Change], session_id: str) -> list[bytes]:
    """Mark the session's stored results DELETED; return the objects to remove from object storage."""
    docs = db.find(
        schema.RESULTS,
        {"SessionId": session_id, "Status": int(ResultStatus.COMPLETED), "ManualDeletion": False},
        {"OpaqueId": 1},
    )
    _mark_deleted(db, [d["_id"] for d in docs])
    changes.extend(common.result_status_changes(session_id, [d["_id"] for d in docs], ResultStatus.DELETED))
    return [bytes(d["OpaqueId"]) for d in docs if d.get("OpaqueId")]
