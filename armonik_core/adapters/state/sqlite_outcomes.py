"""The SQLite state store's outcomes of a run: success (new results, data, subtasks, dependents, then
COMPLETED), failure, retry, release and cancellation."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from armonik_core.adapters.queue.base import QueueMessage
from armonik_core.adapters.state import common
from armonik_core.adapters.state import sqlite_schema as schema
from armonik_core.adapters.state.sqlite_cascade import _abort_downstream
from armonik_core.adapters.state.sqlite_sql import (
    _INSERT_RESULT,
    _INSERT_TASK,
    _select_in,
)
from armonik_core.adapters.state.sqlite_writes import (
    _enqueue,
    _insert_tasks,
    _load_session,
    _resolve_dependents,
    _resolve_dependents_of,
    _set_task_status,
    _status_rows,
    _status_update,
)
from armonik_core.domain.changes import Change
from armonik_core.domain.outcomes import OutcomeKind, TaskOutcome
from armonik_core.domain.records import Task
from armonik_core.domain.statuses import ResultStatus, SessionStatus, TaskStatus
from armonik_core.domain.tasks import can_retry, make_retry

#: A successful run to record: its task (its reported start applied), its outcome and that start.
Success = tuple[Task, TaskOutcome, tuple[float, float] | None]


def _record_start(conn: sqlite3.Connection, task_id: str, start: tuple[float, float] | None) -> None:
    """The run's start as its outcome reported it (`common.reported_start`), when the task did not know it."""
    if start is not None:
        conn.execute("UPDATE tasks SET fetched_at = ?, started_at = ? WHERE task_id = ?", (*start, task_id))


def _apply_success(
    conn: sqlite3.Connection,
    changes: list[Change],
    task: Task,
    outcome: TaskOutcome,
    now: float,
    start: tuple[float, float] | None,
) -> list[QueueMessage]:
    """A successful run: its new results, its data, its subtasks, then the task itself COMPLETED, its reported
    start included in that one update (a statement less per task than writing the start on its own)."""
    [produced] = _record_data(conn, [changes], [(task, outcome)], now)
    messages: list[QueueMessage] = []
    if outcome.subtasks:
        session = _load_session(conn, task.session_id)
        messages += _insert_tasks(conn, changes, session, outcome.subtasks, task.task_id, now)
    messages += _resolve_dependents(conn, changes, produced, now)
    unfinished = None
    if not set(task.expected_output_ids) <= set(produced):  # else all are produced: whoever owns them now
        owners = {
            r["result_id"]: r["owner_task_id"]
            for r in _select_in(
                conn,
                "SELECT result_id, owner_task_id FROM results WHERE result_id IN ({marks})",
                task.expected_output_ids,
            )
        }
        unfinished = common.unfinished_outputs(task, owners, produced)
    if unfinished is not None:
        _record_start(conn, task.task_id, start)
        _fail(conn, changes, task, TaskStatus.ERROR, unfinished, now)
        return messages
    _complete(conn, [changes], [(task, outcome, start)], now)
    return messages


def _plain_success(task: Task, outcome: TaskOutcome) -> bool:
    """A success that submits nothing and produced every output of its task: what `_apply_successes` takes."""
    return (
        outcome.kind is OutcomeKind.SUCCESS
        and task.status != TaskStatus.CANCELLING
        and not outcome.subtasks
        and set(task.expected_output_ids) <= {c.result_id for c in outcome.completions}
    )


def _apply_successes(
    conn: sqlite3.Connection, changes_of: Sequence[list[Change]], runs: Sequence[Success], now: float
) -> list[list[QueueMessage]]:
    """`_apply_success` of several plain successes (`_plain_success`) at once, a statement per step for all
    of them: the same records, and for each the changes and messages it would have had on its own."""
    produced = _record_data(conn, changes_of, [(task, outcome) for task, outcome, _ in runs], now)
    released = _resolve_dependents_of(conn, changes_of, produced, now)
    _complete(conn, changes_of, runs, now)
    return released


def _record_data(
    conn: sqlite3.Connection,
    changes_of: Sequence[list[Change]],
    runs: Sequence[tuple[Task, TaskOutcome]],
    now: float,
) -> list[list[str]]:
    """The results successful runs created and the data they sent, one statement each for all the runs;
    returns what each run produced."""
    created = [result for _, outcome in runs for result in outcome.created_results]
    if created:
        conn.executemany(_INSERT_RESULT, [schema.result_to_row(r) for r in created])
    produced = [common.produced_results(task, outcome) for task, outcome in runs]
    conn.executemany(
        "UPDATE results SET status = ?, size = ?, opaque_id = ?, completed_at = ? WHERE result_id = ? AND status = ?",
        [
            (int(ResultStatus.COMPLETED), c.size, c.opaque_id, now, c.result_id, int(ResultStatus.CREATED))
            for _, outcome in runs
            for c in outcome.completions
        ],
    )
    for changes, (task, outcome), mine in zip(changes_of, runs, produced, strict=True):
        changes.extend(common.new_result_changes(outcome.created_results))
        changes.extend(common.result_status_changes(task.session_id, mine, ResultStatus.COMPLETED))
    return produced


def _complete(
    conn: sqlite3.Connection, changes_of: Sequence[list[Change]], runs: Sequence[Success], now: float
) -> None:
    """The runs' tasks COMPLETED, each with its reported start in the same update; one statement for all
    the tasks that set the same columns."""
    groups: dict[tuple[str, ...], list[tuple[object, ...]]] = {}
    for changes, (task, outcome, start) in zip(changes_of, runs, strict=True):
        columns: dict[str, float | str] = {
            "processed_at": common.processed_time(task, outcome, now),
            "ended_at": now,
            "error": "",
        }
        if start is not None:
            columns.update(fetched_at=start[0], started_at=start[1])
        rows = groups.setdefault(tuple(columns), [])
        rows += _status_rows(changes, [task], TaskStatus.COMPLETED, columns)
    for names, rows in groups.items():
        conn.executemany(_status_update(names), rows)


def _fail(
    conn: sqlite3.Connection, changes: list[Change], task: Task, status: TaskStatus, message: str, now: float
) -> None:
    """The task fails for good: its outputs are aborted and what waited on them fails too."""
    task.error = message
    conn.execute(
        "UPDATE tasks SET error = ?, status_message = ? WHERE task_id = ?", (message, message, task.task_id)
    )
    _set_task_status(conn, changes, [task], status, ended_at=now)
    _abort_downstream(conn, changes, [task.task_id], TaskStatus.ERROR, now)


def _retry_or_fail(
    conn: sqlite3.Connection, changes: list[Change], task: Task, message: str, now: float
) -> list[QueueMessage]:
    """A crashed attempt: a new attempt takes over its outputs while retries remain, else it fails."""
    if not can_retry(task):
        _fail(conn, changes, task, TaskStatus.ERROR, common.out_of_retries(task, message), now)
        return []
    retry = make_retry(task, now)
    conn.execute(
        "UPDATE tasks SET error = ?, status_message = ? WHERE task_id = ?", (message, message, task.task_id)
    )
    _set_task_status(conn, changes, [task], TaskStatus.RETRIED, ended_at=now)
    paused = _load_session(conn, task.session_id).status == SessionStatus.PAUSED
    if paused:
        retry.status = TaskStatus.PAUSED
    conn.execute(_INSERT_TASK, schema.task_to_row(retry))
    changes.extend(common.new_task_changes(task.session_id, [retry]))
    owned = _select_in(
        conn,
        "SELECT result_id, owner_task_id FROM results WHERE result_id IN ({marks})",
        retry.expected_output_ids,
    )
    handed = [r["result_id"] for r in owned if r["owner_task_id"] == task.task_id]
    conn.executemany(
        "UPDATE results SET owner_task_id = ? WHERE result_id = ?", [(retry.task_id, rid) for rid in handed]
    )
    changes.extend(
        common.owner_changes(task.session_id, {rid: (task.task_id, retry.task_id) for rid in handed})
    )
    return [] if paused else _enqueue(conn, [retry])


def _release(conn: sqlite3.Connection, changes: list[Change], task: Task) -> list[QueueMessage]:
    """The agent gives the task back unrun: queued again for any agent, no attempt counted."""
    # Untouched: as if never received, so the next acquisition records its own times.
    conn.execute(
        "UPDATE tasks SET owner_pod_id = '', pod_hostname = '', received_at = NULL, acquired_at = NULL "
        "WHERE task_id = ?",
        (task.task_id,),
    )
    task.received_at = task.acquired_at = None
    if _load_session(conn, task.session_id).status == SessionStatus.PAUSED:
        _set_task_status(conn, changes, [task], TaskStatus.PAUSED)
        return []
    _set_task_status(conn, changes, [task], TaskStatus.SUBMITTED)
    return _enqueue(conn, [task])


def _cancel_running(conn: sqlite3.Connection, changes: list[Change], task: Task, now: float) -> None:
    """A cancelled task's agent is done with it: CANCELLED, and what waited on its outputs is cancelled."""
    _set_task_status(conn, changes, [task], TaskStatus.CANCELLED, ended_at=now)
    _abort_downstream(conn, changes, [task.task_id], TaskStatus.CANCELLED, now)
