"""The SQLite state store's acquisitions and outcomes of runs: one agent's call alone (`_acquire_one`,
`_finish_one`), and a batch of them in one unit of work (`_acquire_batch`, `_finish_batch`).

An agent's exchange hands back several outcomes and takes several tasks. Applied call by call, each task pays
its own statements (its row read, its session read, its update, its inputs read) and its own savepoint; a
batch does the common case set-wise instead: one read of all the tasks, one of their sessions, one update,
one read of all the inputs, and for successes one statement per step for all of them. What is rare (a
cancellation, a lost agent's task, a paused session, a failure, a retry, subtasks) goes call by call inside
the same unit. Either way each call gets what it would have had on its own: the same records, and its own
changes and queue messages, as if the calls had been applied one after the other in order.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import TypeVar

from armonik_core.adapters.queue.base import QueueMessage
from armonik_core.adapters.state import common
from armonik_core.adapters.state import sqlite_schema as schema
from armonik_core.adapters.state.base import AcquireRequest, FinishRequest, TaskAcquisition
from armonik_core.adapters.state.sqlite_outcomes import (
    Success,
    _apply_success,
    _apply_successes,
    _cancel_running,
    _fail,
    _plain_success,
    _record_start,
    _release,
    _retry_or_fail,
)
from armonik_core.adapters.state.sqlite_sql import _columns, _select_in
from armonik_core.adapters.state.sqlite_writes import (
    _load_session,
    _load_tasks,
    _set_task_status,
    _status_rows,
    _status_update,
)
from armonik_core.domain import graph
from armonik_core.domain.changes import Change
from armonik_core.domain.outcomes import OutcomeKind, TaskOutcome
from armonik_core.domain.records import Session, Task
from armonik_core.domain.statuses import SessionStatus, TaskStatus
from armonik_core.domain.tasks import Acquisition, decide_acquisition

_Request = TypeVar("_Request", AcquireRequest, FinishRequest)
_Answer = TypeVar("_Answer")
_State = TypeVar("_State")
#: What a batch of acquisitions reads: the tasks by id, and their sessions by id.
_Acquiring = tuple[dict[str, Task], dict[str, Session]]

#: The columns an acquisition sets besides the status.
_TAKEN = ("owner_pod_id", "pod_hostname", "received_at", "acquired_at")
_INPUTS = f"SELECT {_columns(schema.RESULT_COLUMNS)} FROM results WHERE result_id IN ({{marks}})"


# -- acquisitions ----------------------------------------------------------------------------------------------
def _acquire_one(
    conn: sqlite3.Connection, changes: list[Change], request: AcquireRequest, now: float
) -> TaskAcquisition:
    task_id, agent_id, hostname = request
    task = _load_tasks(conn, [task_id]).get(task_id)
    if task is None:
        return TaskAcquisition()
    decision = decide_acquisition(task, agent_id)
    if decision is Acquisition.CANCEL:
        _cancel_running(conn, changes, task, now)
        return TaskAcquisition()
    if decision is Acquisition.RECOVER_CRASH:
        return TaskAcquisition(
            to_enqueue=_retry_or_fail(conn, changes, task, common.crash_message(task), now)
        )
    if decision is Acquisition.SKIP:
        return TaskAcquisition()
    session = _load_session(conn, task.session_id)
    if session.status == SessionStatus.PAUSED:
        _set_task_status(conn, changes, [task], TaskStatus.PAUSED)
        return TaskAcquisition()
    return _take(conn, [changes], [(task, agent_id, hostname)], {session.session_id: session}, now)[0]


def _acquire_batch(
    conn: sqlite3.Connection, changes: list[Change], requests: Sequence[AcquireRequest], now: float
) -> list[TaskAcquisition]:
    def read(run: Sequence[AcquireRequest]) -> _Acquiring:
        tasks = _load_tasks(conn, [task_id for task_id, _, _ in run])
        return tasks, _load_sessions(conn, {t.session_id for t in tasks.values()})

    def fits(run: Sequence[AcquireRequest], state: _Acquiring) -> int:
        tasks, sessions = state
        return _leading(run, lambda request: _acquirable(tasks.get(request[0]), request[1], sessions))

    def setwise(
        changes_of: Sequence[list[Change]], run: Sequence[AcquireRequest], state: _Acquiring
    ) -> list[TaskAcquisition]:
        tasks, sessions = state
        taken = [
            (i, (tasks[task_id], agent, host))
            for i, (task_id, agent, host) in enumerate(run)
            if _acquirable(tasks.get(task_id), agent, sessions)
        ]
        given = _take(conn, [changes_of[i] for i, _ in taken], [take for _, take in taken], sessions, now)
        answers = [TaskAcquisition() for _ in run]  # a task that is gone, or not to run (SKIP)
        for (i, _), acquisition in zip(taken, given, strict=True):
            answers[i] = acquisition
        return answers

    return _in_runs(changes, requests, read, fits, setwise, lambda c, r: _acquire_one(conn, c, r, now))


def _acquirable(task: Task | None, agent_id: str, sessions: dict[str, Session]) -> bool | None:
    """How a batch takes a request: True when the agent takes the task, False when there is nothing to do (no
    such task, or one not to run), None when it needs a unit of its own (`_acquire_one`)."""
    if task is None:
        return False
    decision = decide_acquisition(task, agent_id)
    if decision is Acquisition.SKIP:
        return False
    session = sessions.get(task.session_id)
    if decision is not Acquisition.TAKE or session is None or session.status == SessionStatus.PAUSED:
        return None
    return True


def _take(
    conn: sqlite3.Connection,
    changes_of: Sequence[list[Change]],
    takes: Sequence[tuple[Task, str, str]],
    sessions: dict[str, Session],
    now: float,
) -> list[TaskAcquisition]:
    """Give each (task, agent id, hostname) to its agent (DISPATCHED) in one statement, with its session and
    whatever of its inputs exists (a missing one is the agent's to report, as the task's error)."""
    rows: list[tuple[object, ...]] = []
    for changes, (task, agent_id, hostname) in zip(changes_of, takes, strict=True):
        taken = (agent_id, hostname, task.received_at or now, now)
        rows += _status_rows(changes, [task], TaskStatus.DISPATCHED, dict(zip(_TAKEN, taken, strict=True)))
    conn.executemany(_status_update(_TAKEN), rows)
    wanted = [sorted(graph.task_inputs(task)) for task, _, _ in takes]
    found = {row["result_id"]: row for row in _select_in(conn, _INPUTS, [r for ids in wanted for r in ids])}
    return [
        TaskAcquisition(
            task=task,
            session=sessions[task.session_id],
            inputs=[schema.result_from_row(found[rid]) for rid in ids if rid in found],
        )
        for (task, _, _), ids in zip(takes, wanted, strict=True)
    ]


def _load_sessions(conn: sqlite3.Connection, session_ids: Collection[str]) -> dict[str, Session]:
    rows = _select_in(
        conn,
        f"SELECT {_columns(schema.SESSION_COLUMNS)} FROM sessions WHERE session_id IN ({{marks}})",
        sorted(session_ids),
    )
    return {s.session_id: s for s in map(schema.session_from_row, rows)}


# -- outcomes --------------------------------------------------------------------------------------------------
def _finish_one(
    conn: sqlite3.Connection, changes: list[Change], request: FinishRequest, now: float
) -> list[QueueMessage]:
    task_id, agent_id, outcome = request
    task = _load_tasks(conn, [task_id]).get(task_id)
    if not _held_by(task, agent_id):
        return []
    assert task is not None
    start = _reported_start(task, outcome)
    if outcome.kind is OutcomeKind.SUCCESS and task.status != TaskStatus.CANCELLING:
        return _apply_success(conn, changes, task, outcome, now, start)
    _record_start(conn, task_id, start)
    if task.status == TaskStatus.CANCELLING or outcome.kind is OutcomeKind.CANCELLED:
        _cancel_running(conn, changes, task, now)
        return []
    if outcome.kind is OutcomeKind.RELEASED:
        return _release(conn, changes, task)
    if outcome.kind is OutcomeKind.CRASH:
        return _retry_or_fail(conn, changes, task, outcome.message, now)
    # ERROR or TIMEOUT
    _fail(conn, changes, task, common.failure_status(outcome.kind), outcome.message, now)
    return []


def _finish_batch(
    conn: sqlite3.Connection, changes: list[Change], requests: Sequence[FinishRequest], now: float
) -> list[list[QueueMessage]]:
    def read(run: Sequence[FinishRequest]) -> dict[str, Task]:
        return _load_tasks(conn, [task_id for task_id, _, _ in run])

    def fits(run: Sequence[FinishRequest], tasks: dict[str, Task]) -> int:
        def kind(request: FinishRequest) -> bool | None:
            if not _held(tasks, request):
                return False  # an outcome from an agent that lost the task: ignored
            return True if _plain_success(tasks[request[0]], request[2]) else None

        return _leading(run, kind)

    def setwise(
        changes_of: Sequence[list[Change]], run: Sequence[FinishRequest], tasks: dict[str, Task]
    ) -> list[list[QueueMessage]]:
        done = [(i, tasks[request[0]], request[2]) for i, request in enumerate(run) if _held(tasks, request)]
        runs: list[Success] = [(task, outcome, _reported_start(task, outcome)) for _, task, outcome in done]
        released = _apply_successes(conn, [changes_of[i] for i, _, _ in done], runs, now)
        answers: list[list[QueueMessage]] = [[] for _ in run]
        for (i, _, _), messages in zip(done, released, strict=True):
            answers[i] = messages
        return answers

    return _in_runs(changes, requests, read, fits, setwise, lambda c, r: _finish_one(conn, c, r, now))


def _held_by(task: Task | None, agent_id: str) -> bool:
    """The task is running on the agent: an outcome from any other agent is ignored."""
    return task is not None and task.owner_pod_id == agent_id and task.status in common.RUNNING_STATUSES


def _held(tasks: dict[str, Task], request: FinishRequest) -> bool:
    return _held_by(tasks.get(request[0]), request[1])


def _reported_start(task: Task, outcome: TaskOutcome) -> tuple[float, float] | None:
    """The run's start as its outcome reports it (`common.reported_start`), applied to the task."""
    start = common.reported_start(task, outcome)
    if start is not None:
        task.fetched_at, task.started_at = start
    return start


# -- batches ---------------------------------------------------------------------------------------------------
def _in_runs(
    changes: list[Change],
    requests: Sequence[_Request],
    read: Callable[[Sequence[_Request]], _State],
    fits: Callable[[Sequence[_Request], _State], int],
    setwise: Callable[[Sequence[list[Change]], Sequence[_Request], _State], list[_Answer]],
    alone: Callable[[list[Change], _Request], _Answer],
) -> list[_Answer]:
    """Apply the requests in order: each leading run of those the set-wise step takes (`fits`: how many, from
    what `read` finds of the requests left) by that step, then the next one alone, after which what is left
    is read again (a request applied alone may have changed its tasks). Each request's changes are kept
    apart, then appended request by request, in order."""
    answers: list[_Answer] = []
    changes_of: list[list[Change]] = [[] for _ in requests]
    while len(answers) < len(requests):
        done = len(answers)
        rest = requests[done:]
        state = read(rest)
        count = fits(rest, state)
        if count:
            answers += setwise(changes_of[done : done + count], rest[:count], state)
        else:
            answers.append(alone(changes_of[done], rest[0]))
    for own in changes_of:
        changes.extend(own)
    return answers


def _leading(run: Iterable[_Request], kind: Callable[[_Request], bool | None]) -> int:
    """How many of the first requests a set-wise step takes: up to the first that needs a unit of its own
    (`kind` None), or that names a task named before it (the step reads each task once)."""
    seen: set[str] = set()
    count = 0
    for request in run:
        if kind(request) is None or request[0] in seen:
            break
        seen.add(request[0])
        count += 1
    return count
