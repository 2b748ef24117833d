"""The SQLite state store's compute plane: what the agents' calls do to tasks (acquire, start, finish), the
tasks in flight the queue is rebuilt from, and the outbox."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from armonik_core.adapters.queue.base import QueueMessage
from armonik_core.adapters.state import common
from armonik_core.adapters.state import sqlite_schema as schema
from armonik_core.adapters.state.base import TaskAcquisition
from armonik_core.adapters.state.sqlite_outcomes import (
    _apply_success,
    _cancel_running,
    _fail,
    _record_start,
    _release,
    _retry_or_fail,
)
from armonik_core.adapters.state.sqlite_sql import (
    _columns,
    _select_in,
)
from armonik_core.adapters.state.sqlite_units import SqliteUnits
from armonik_core.adapters.state.sqlite_writes import (
    _load_session,
    _load_tasks,
    _set_task_status,
)
from armonik_core.domain import graph
from armonik_core.domain.changes import Change
from armonik_core.domain.outcomes import OutcomeKind, TaskOutcome
from armonik_core.domain.statuses import SessionStatus, TaskStatus
from armonik_core.domain.tasks import Acquisition, decide_acquisition


class SqliteComputePlane(SqliteUnits):
    """The units of work of the compute plane, a layer of `SqliteStateStore`: apart from the clients'
    operations because they follow their own rules (outcomes of a run) and change for their own reasons."""

    async def acquire_task(self, task_id: str, agent_id: str, hostname: str) -> TaskAcquisition:
        now = self._clock()

        def unit(conn: sqlite3.Connection, changes: list[Change]) -> TaskAcquisition:
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
            _set_task_status(
                conn,
                changes,
                [task],
                TaskStatus.DISPATCHED,
                owner_pod_id=agent_id,
                pod_hostname=hostname,
                received_at=task.received_at or now,
                acquired_at=now,
            )
            # Whatever of the inputs exists: a missing one is the agent's to report, as the task's error.
            rows = _select_in(
                conn,
                f"SELECT {_columns(schema.RESULT_COLUMNS)} FROM results WHERE result_id IN ({{marks}})",
                sorted(graph.task_inputs(task)),
            )
            inputs = [schema.result_from_row(r) for r in rows]
            return TaskAcquisition(task=task, session=session, inputs=inputs)

        return await self._engine.write(unit)

    async def start_task(
        self, task_id: str, agent_id: str, fetched_at: float | None = None, started_at: float | None = None
    ) -> bool:
        fetched, started = common.start_times(fetched_at, started_at, self._clock())

        def unit(conn: sqlite3.Connection, changes: list[Change]) -> bool:
            task = _load_tasks(conn, [task_id]).get(task_id)
            if task is None or task.owner_pod_id != agent_id or task.status != TaskStatus.DISPATCHED:
                return False
            _set_task_status(
                conn, changes, [task], TaskStatus.PROCESSING, fetched_at=fetched, started_at=started
            )
            return True

        return await self._engine.write(unit)

    async def finish_task(self, task_id: str, agent_id: str, outcome: TaskOutcome) -> list[QueueMessage]:
        now = self._clock()

        def unit(conn: sqlite3.Connection, changes: list[Change]) -> list[QueueMessage]:
            task = _load_tasks(conn, [task_id]).get(task_id)
            if task is None or task.owner_pod_id != agent_id or task.status not in common.RUNNING_STATUSES:
                return []
            start = common.reported_start(task, outcome)
            if start is not None:
                task.fetched_at, task.started_at = start
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

        return await self._engine.write(unit)

    async def tasks_in_flight(self) -> tuple[list[QueueMessage], list[tuple[QueueMessage, str]]]:
        statuses = (int(TaskStatus.SUBMITTED), int(TaskStatus.DISPATCHED), int(TaskStatus.PROCESSING))

        def run(conn: sqlite3.Connection) -> tuple[list[QueueMessage], list[tuple[QueueMessage, str]]]:
            # Millions of rows at start-up: plain tuples read as they come (no Row objects, no list of them),
            # and one copy of each session id and partition name shared by all their messages, which the
            # in-memory queue keeps for as long as the tasks wait.
            cursor = conn.cursor()
            cursor.row_factory = None
            rows = cursor.execute(
                "SELECT task_id, session_id, opt_partition_id, opt_priority, status, owner_pod_id FROM tasks "
                "WHERE status IN (?, ?, ?) ORDER BY submitted_at",
                statuses,
            )
            shared: dict[str, str] = {}
            ready, held = [], []
            for task_id, session_id, partition, priority, status, owner in rows:
                session_id = shared.setdefault(session_id, session_id)
                partition = shared.setdefault(partition, partition)
                message = QueueMessage(task_id, session_id, partition, priority)
                if status == statuses[0]:
                    ready.append(message)
                else:
                    held.append((message, owner))
            return ready, held

        return await self._engine.read(run)

    async def cancelled_tasks(self, task_ids: Sequence[str]) -> set[str]:
        cancelled = (int(TaskStatus.CANCELLING), int(TaskStatus.CANCELLED))

        def run(conn: sqlite3.Connection) -> set[str]:
            rows = _select_in(conn, "SELECT task_id, status FROM tasks WHERE task_id IN ({marks})", task_ids)
            return {r["task_id"] for r in rows if r["status"] in cancelled}

        return await self._engine.lookup(run, len(task_ids))

    # -- outbox ------------------------------------------------------------------------------------------
    async def pending_outbox(self, limit: int = 10_000) -> list[QueueMessage]:
        def run(conn: sqlite3.Connection) -> list[QueueMessage]:
            rows = conn.execute(
                "SELECT task_id, session_id, partition_id, priority FROM outbox LIMIT ?", (limit,)
            ).fetchall()
            return [
                QueueMessage(r["task_id"], r["session_id"], r["partition_id"], r["priority"]) for r in rows
            ]

        return await self._engine.read(run)

    async def clear_outbox(self, task_ids: Sequence[str]) -> None:
        ids = list(task_ids)

        def unit(conn: sqlite3.Connection, changes: list[Change]) -> None:
            conn.executemany("DELETE FROM outbox WHERE task_id = ?", [(tid,) for tid in ids])

        await self._engine.write(unit)
