"""The SQLite state store's cancellations and abort cascades: tasks cancelled, the outputs they will no longer
produce aborted, and what waited on those cancelled or failed, by the domain's rules (`graph.plan_abort_cascade`);
a whole session's set-wise."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from armonik_core.adapters.state import common
from armonik_core.adapters.state.sqlite_sql import _select_in
from armonik_core.adapters.state.sqlite_writes import (
    _load_tasks,
    _set_task_status,
    _update_session_tasks,
)
from armonik_core.domain import graph
from armonik_core.domain.changes import Change
from armonik_core.domain.records import Task
from armonik_core.domain.statuses import EventType, ResultStatus, TaskStatus


class _SqlGraphView:
    """The cascade's view of the graph, read inside the current transaction."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def dependents(self, result_ids: Iterable[str]) -> dict[str, TaskStatus]:
        rows = _select_in(
            self._conn,
            "SELECT t.task_id, t.status FROM task_waits w JOIN tasks t ON t.task_id = w.task_id "
            "WHERE w.result_id IN ({marks})",
            list(result_ids),
        )
        return {row["task_id"]: TaskStatus(row["status"]) for row in rows}

    def owned_results(self, task_ids: Iterable[str]) -> dict[str, ResultStatus]:
        rows = _select_in(
            self._conn,
            "SELECT result_id, status FROM results WHERE owner_task_id IN ({marks})",
            list(task_ids),
        )
        return {row["result_id"]: ResultStatus(row["status"]) for row in rows}


def _cancel(conn: sqlite3.Connection, changes: list[Change], tasks: list[Task], now: float) -> None:
    """Cancel tasks, abort the outputs they will no longer produce and cancel what waited on those."""
    by_target = common.cancellation_targets(tasks)
    cancelled = by_target.get(TaskStatus.CANCELLED, [])
    _set_task_status(conn, changes, cancelled, TaskStatus.CANCELLED, ended_at=now)
    _set_task_status(conn, changes, by_target.get(TaskStatus.CANCELLING, []), TaskStatus.CANCELLING)
    _abort_downstream(conn, changes, [t.task_id for t in cancelled], TaskStatus.CANCELLED, now)


def _abort_downstream(
    conn: sqlite3.Connection, changes: list[Change], task_ids: list[str], status: TaskStatus, now: float
) -> None:
    """Apply the domain's abort cascade from tasks that will never produce their outputs."""
    if not task_ids:
        return
    plan = graph.plan_abort_cascade(task_ids, _SqlGraphView(conn))
    doomed = list(_load_tasks(conn, sorted(plan.tasks)).values())
    _set_task_status(conn, changes, doomed, status, ended_at=now)
    stopped = [*task_ids, *plan.tasks]
    conn.executemany("DELETE FROM task_waits WHERE task_id = ?", [(tid,) for tid in stopped])
    conn.executemany("DELETE FROM outbox WHERE task_id = ?", [(tid,) for tid in stopped])
    _abort_results(conn, changes, sorted(plan.results))


def _abort_results(conn: sqlite3.Connection, changes: list[Change], result_ids: list[str]) -> None:
    if not result_ids:
        return
    rows = _select_in(
        conn, "SELECT result_id, session_id FROM results WHERE result_id IN ({marks})", result_ids
    )
    conn.executemany(
        "UPDATE results SET status = ? WHERE result_id = ?",
        [(int(ResultStatus.ABORTED), r["result_id"]) for r in rows],
    )
    changes.extend(
        Change(EventType.RESULT_STATUS_UPDATE, r["session_id"], r["result_id"], int(ResultStatus.ABORTED))
        for r in rows
    )


def _cancel_session_tasks(
    conn: sqlite3.Connection, changes: list[Change], session_id: str, now: float
) -> None:
    """Cancel a whole session set-wise: its tasks not yet ended (CANCELLING where an agent holds them), and
    the results still to produce. The abort cascade of a task cancellation has nothing to add here, since a
    task only waits on results of its own session, all of which are aborted."""
    sources = common.CANCELLATION_SOURCES
    cancelled, cancelling = TaskStatus.CANCELLED, TaskStatus.CANCELLING
    _update_session_tasks(conn, changes, session_id, sources[cancelled], cancelled, ended_at=now)
    _update_session_tasks(conn, changes, session_id, sources[cancelling], cancelling)
    conn.execute(
        "DELETE FROM task_waits WHERE task_id IN (SELECT task_id FROM tasks WHERE session_id = ? AND status = ?)",
        (session_id, int(TaskStatus.CANCELLED)),
    )
    where, params = "session_id = ? AND status = ?", (session_id, int(ResultStatus.CREATED))
    aborted = conn.execute(f"SELECT result_id FROM results WHERE {where}", params).fetchall()
    conn.execute(f"UPDATE results SET status = ? WHERE {where}", (int(ResultStatus.ABORTED), *params))
    changes.extend(common.result_status_changes(session_id, [r[0] for r in aborted], ResultStatus.ABORTED))
    conn.execute("DELETE FROM outbox WHERE session_id = ?", (session_id,))


def _drop_session_data(conn: sqlite3.Connection, changes: list[Change], session_id: str) -> list[bytes]:
    """Mark the session's stored results DELETED; return the objects to remove from object storage."""
    rows = conn.execute(
        "SELECT result_id, opaque_id FROM results WHERE session_id = ? AND status = ? AND manual_deletion = 0",
        (session_id, int(ResultStatus.COMPLETED)),
    ).fetchall()
    conn.executemany(
        "UPDATE results SET status = ?, opaque_id = x'' WHERE result_id = ?",
        [(int(ResultStatus.DELETED), r["result_id"]) for r in rows],
    )
    changes.extend(
        common.result_status_changes(session_id, [r["result_id"] for r in rows], ResultStatus.DELETED)
    )
    return [bytes(r["opaque_id"]) for r in rows if r["opaque_id"]]
