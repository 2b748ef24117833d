"""The SQLite state store's shared steps: loading records, submitting tasks (client's or worker's), moving task
statuses (one by one or a whole session's, set-wise), the outbox and releasing the tasks that waited on
completed results. Each is a function of the unit of work's connection, inside its transaction."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence

from armonik_core.adapters.queue.base import QueueMessage
from armonik_core.adapters.state import common
from armonik_core.adapters.state import sqlite_schema as schema
from armonik_core.adapters.state.sqlite_sql import (
    _INSERT_TASK,
    _columns,
    _select_in,
)
from armonik_core.domain import graph
from armonik_core.domain.changes import Change
from armonik_core.domain.errors import FailedPrecondition, NotFound
from armonik_core.domain.records import Result, Session, Task
from armonik_core.domain.statuses import EventType, ResultStatus, SessionStatus, TaskStatus


def _load_session(conn: sqlite3.Connection, session_id: str) -> Session:
    row = conn.execute(
        f"SELECT {_columns(schema.SESSION_COLUMNS)} FROM sessions WHERE session_id = ?", (session_id,)
    ).fetchone()
    if row is None:
        raise NotFound(f"Session not found: {session_id}")
    return schema.session_from_row(row)


def _save_session_state(conn: sqlite3.Connection, s: Session) -> None:
    conn.execute(
        "UPDATE sessions SET status = ?, client_submission = ?, worker_submission = ?, cancelled_at = ?, "
        "closed_at = ?, purged_at = ?, deleted_at = ? WHERE session_id = ?",
        (
            int(s.status),
            int(s.client_submission),
            int(s.worker_submission),
            s.cancelled_at,
            s.closed_at,
            s.purged_at,
            s.deleted_at,
            s.session_id,
        ),
    )


def _load_results(conn: sqlite3.Connection, result_ids: Sequence[str], session_id: str) -> dict[str, Result]:
    rows = _select_in(
        conn,
        f"SELECT {_columns(schema.RESULT_COLUMNS)} FROM results WHERE result_id IN ({{marks}})",
        result_ids,
    )
    found = {r.result_id: r for r in map(schema.result_from_row, rows) if r.session_id == session_id}
    common.require_found("Result", result_ids, found, f" in session {session_id}")
    return found


def _insert_tasks(
    conn: sqlite3.Connection,
    changes: list[Change],
    session: Session,
    tasks: Sequence[Task],
    parent_task_id: str | None,
    now: float,
) -> list[QueueMessage]:
    """Validate and insert new tasks (client submission or a worker's subtasks) and queue the ready ones."""
    session_id = session.session_id
    common.check_task_partitions(session, tasks)
    results = _load_graph_results(conn, sorted(common.results_named_by(tasks)))
    plan = graph.plan_submission(tasks, results, session_id, parent_task_id)
    ready = set(plan.ready)
    paused = session.status == SessionStatus.PAUSED
    for task in tasks:
        if task.task_id in ready:
            task.status = TaskStatus.PAUSED if paused else TaskStatus.SUBMITTED
            task.submitted_at = now
        else:
            task.status = TaskStatus.PENDING
    try:
        conn.executemany(_INSERT_TASK, [schema.task_to_row(t) for t in tasks])
    except sqlite3.IntegrityError as exc:
        raise FailedPrecondition(f"A task id is already taken: {exc}") from exc
    conn.executemany(
        "INSERT OR IGNORE INTO task_waits (result_id, task_id) VALUES (?, ?)",
        [(rid, tid) for tid, needed in plan.waiting.items() for rid in needed],
    )
    conn.executemany(
        "UPDATE results SET owner_task_id = ? WHERE result_id = ?",
        [(new, rid) for rid, (_, new) in plan.owner_changes.items()],
    )
    changes.extend(common.new_task_changes(session_id, tasks))
    changes.extend(common.owner_changes(session_id, plan.owner_changes))
    return _enqueue(conn, [t for t in tasks if t.status == TaskStatus.SUBMITTED])


def _load_graph_results(conn: sqlite3.Connection, result_ids: Sequence[str]) -> dict[str, Result]:
    """Just what the graph rules read of each result (session, status, owner): a submission names two
    results per task, and building full records for them is a measurable share of its cost."""
    rows = _select_in(
        conn,
        "SELECT result_id, session_id, status, owner_task_id FROM results WHERE result_id IN ({marks})",
        result_ids,
    )
    return {rid: Result(rid, sid, "", ResultStatus(status), 0.0, owner) for rid, sid, status, owner in rows}


def _load_tasks(conn: sqlite3.Connection, task_ids: Sequence[str]) -> dict[str, Task]:
    rows = _select_in(
        conn, f"SELECT {_columns(schema.TASK_COLUMNS)} FROM tasks WHERE task_id IN ({{marks}})", task_ids
    )
    return {t.task_id: t for t in map(schema.task_from_row, rows)}


def _enqueue(conn: sqlite3.Connection, tasks: Iterable[Task]) -> list[QueueMessage]:
    """Record ready tasks in the outbox; the caller publishes the returned messages after commit.

    Without an outbox (the queue is rebuilt from the SUBMITTED tasks themselves), only the messages."""
    return _enqueue_messages(conn, [common.queue_message(t) for t in tasks])


def _status_assignments(columns: Iterable[str]) -> str:
    """The SET clause of a status move: the status, then each column, as parameters in that order."""
    return ", ".join(["status = ?", *(f"{name} = ?" for name in columns)])


def _set_task_status(
    conn: sqlite3.Connection,
    changes: list[Change],
    tasks: Iterable[Task],
    status: TaskStatus,
    **columns: float | str,
) -> None:
    """Move the tasks to `status`, setting the other `columns` (timestamps, owner...) in the same statement."""
    conn.executemany(_status_update(columns), _status_rows(changes, tasks, status, columns))


def _status_update(columns: Iterable[str]) -> str:
    """The UPDATE of a status move setting `columns` too, its parameters as `_status_rows` gives them."""
    return f"UPDATE tasks SET {_status_assignments(columns)} WHERE task_id = ?"


def _status_rows(
    changes: list[Change], tasks: Iterable[Task], status: TaskStatus, columns: Mapping[str, float | str]
) -> list[tuple[object, ...]]:
    """A status move, up to its statement: the tasks moved in memory, their changes appended, and one row of
    parameters each for `_status_update`. Rows of several moves setting the same columns (each task with its
    own values, its changes in its own list) then go to the database in one statement."""
    rows: list[tuple[object, ...]] = []
    for task in tasks:
        task.status = status
        for name, value in columns.items():
            setattr(task, name, value)
        rows.append((int(status), *columns.values(), task.task_id))
        changes.append(Change(EventType.TASK_STATUS_UPDATE, task.session_id, task.task_id, int(status)))
    return rows


def _resolve_dependents(
    conn: sqlite3.Connection, changes: list[Change], completed: Sequence[str], now: float
) -> list[QueueMessage]:
    """Drop the completed inputs from every waiting task and queue the tasks that now have them all."""
    return _resolve_dependents_of(conn, [changes], [completed], now)[0]


def _resolve_dependents_of(
    conn: sqlite3.Connection,
    changes_of: Sequence[list[Change]],
    completed_by: Sequence[Sequence[str]],
    now: float,
) -> list[list[QueueMessage]]:
    """`_resolve_dependents` for several completions at once, with what each releases as if they had been
    applied one after the other: a task waiting on results of several is released by the last of those, its
    changes appended to that one's list of `changes_of` and its message among that one's messages."""
    released: list[list[QueueMessage]] = [[] for _ in completed_by]
    completed = [rid for group in completed_by for rid in group]
    rows = _select_in(
        conn,
        "SELECT task_id, result_id FROM task_waits WHERE task_id IN "
        "(SELECT task_id FROM task_waits WHERE result_id IN ({marks}))",
        completed,
    )
    if not rows:  # nothing waits on these results (the usual end of a graph's branch): nothing to delete
        return released
    remaining: dict[str, set[str]] = {}
    for row in rows:
        remaining.setdefault(row["task_id"], set()).add(row["result_id"])
    conn.executemany(
        "DELETE FROM task_waits WHERE result_id = ?", [(rid,) for rid in dict.fromkeys(completed)]
    )
    ready_ids = graph.ready_after_completion(remaining, completed)
    if not ready_ids:
        return released
    last = {rid: index for index, group in enumerate(completed_by) for rid in group}
    ready = [t for t in _load_tasks(conn, ready_ids).values() if t.status == TaskStatus.PENDING]
    paused_sessions = _paused_sessions(conn, {t.session_id for t in ready})
    paused_rows: list[tuple[object, ...]] = []
    queued_rows: list[tuple[object, ...]] = []
    for index, changes in enumerate(changes_of):
        mine = [t for t in ready if max(last[rid] for rid in remaining[t.task_id]) == index]
        paused, runnable = common.split_paused(mine, paused_sessions)
        paused_rows += _status_rows(changes, paused, TaskStatus.PAUSED, {"submitted_at": now})
        queued_rows += _status_rows(changes, runnable, TaskStatus.SUBMITTED, {"submitted_at": now})
        released[index] = [common.queue_message(t) for t in runnable]
    conn.executemany(_status_update({"submitted_at": now}), paused_rows + queued_rows)
    _enqueue_messages(conn, [message for messages in released for message in messages])
    return released


def _paused_sessions(conn: sqlite3.Connection, session_ids: set[str]) -> set[str]:
    rows = _select_in(
        conn, "SELECT session_id, status FROM sessions WHERE session_id IN ({marks})", list(session_ids)
    )
    return {r["session_id"] for r in rows if r["status"] == int(SessionStatus.PAUSED)}


def _move_session_tasks(
    conn: sqlite3.Connection,
    changes: list[Change],
    session_id: str,
    moves: dict[TaskStatus, TaskStatus],
    **timestamps: float,
) -> list[QueueMessage]:
    """Move a whole session's tasks between statuses, set-wise; returns the queue messages of those moved.

    A session may hold millions of tasks: one UPDATE per move, and only what the changes and the messages
    need read back, where loading each task would cost seconds and gigabytes."""
    moved: list[QueueMessage] = []
    for source, target in moves.items():
        moved += _update_session_tasks(conn, changes, session_id, (source,), target, **timestamps)
    return moved


def _update_session_tasks(
    conn: sqlite3.Connection,
    changes: list[Change],
    session_id: str,
    sources: Sequence[TaskStatus],
    target: TaskStatus,
    **timestamps: float,
) -> list[QueueMessage]:
    if not sources:
        return []
    where = f"session_id = ? AND status IN ({','.join(str(int(s)) for s in sources)})"
    rows = conn.execute(
        f"SELECT task_id, opt_partition_id, opt_priority FROM tasks WHERE {where}", (session_id,)
    ).fetchall()
    if not rows:
        return []
    conn.execute(
        f"UPDATE tasks SET {_status_assignments(timestamps)} WHERE {where}",
        (int(target), *timestamps.values(), session_id),
    )
    changes.extend(Change(EventType.TASK_STATUS_UPDATE, session_id, r[0], int(target)) for r in rows)
    return [QueueMessage(r[0], session_id, r[1], r[2]) for r in rows]


def _enqueue_messages(conn: sqlite3.Connection, messages: list[QueueMessage]) -> list[QueueMessage]:
    if getattr(conn, "outbox", True) and messages:
        conn.executemany(
            "INSERT OR REPLACE INTO outbox (task_id, session_id, partition_id, priority) VALUES (?, ?, ?, ?)",
            [(m.task_id, m.session_id, m.partition_id, m.priority) for m in messages],
        )
    return messages
