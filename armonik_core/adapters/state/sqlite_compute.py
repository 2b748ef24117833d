"""The SQLite state store's compute plane: what the agents' calls do to tasks (acquire, start, finish), the
tasks in flight the queue is rebuilt from, and the outbox."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from armonik_core.adapters.queue.base import QueueMessage
from armonik_core.adapters.state import common
from armonik_core.adapters.state.base import AcquireRequest, FinishRequest, TaskAcquisition
from armonik_core.adapters.state.sqlite_batches import (
    _acquire_batch,
    _acquire_one,
    _finish_batch,
    _finish_one,
)
from armonik_core.adapters.state.sqlite_sql import _select_in
from armonik_core.adapters.state.sqlite_units import SqliteUnits
from armonik_core.adapters.state.sqlite_writes import _load_tasks, _set_task_status
from armonik_core.domain.changes import Change
from armonik_core.domain.outcomes import TaskOutcome
from armonik_core.domain.statuses import TaskStatus

log = logging.getLogger("armonik.state")

_Request = TypeVar("_Request", AcquireRequest, FinishRequest)
_Answer = TypeVar("_Answer")


class SqliteComputePlane(SqliteUnits):
    """The units of work of the compute plane, a layer of `SqliteStateStore`: apart from the clients'
    operations because they follow their own rules (outcomes of a run) and change for their own reasons."""

    async def acquire_task(self, task_id: str, agent_id: str, hostname: str) -> TaskAcquisition:
        now, request = self._clock(), (task_id, agent_id, hostname)
        return await self._engine.write(lambda conn, changes: _acquire_one(conn, changes, request, now))

    async def acquire_tasks(self, requests: Sequence[AcquireRequest]) -> list[TaskAcquisition | Exception]:
        """The batch in one unit of work, set-wise (`sqlite_batches`), see `_in_one_unit`."""
        return await self._in_one_unit(list(requests), _acquire_batch, super().acquire_tasks, "acquiring")

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
        now, request = self._clock(), (task_id, agent_id, outcome)
        return await self._engine.write(lambda conn, changes: _finish_one(conn, changes, request, now))

    async def finish_tasks(self, requests: Sequence[FinishRequest]) -> list[list[QueueMessage] | Exception]:
        """The batch in one unit of work, set-wise (`sqlite_batches`), see `_in_one_unit`."""
        return await self._in_one_unit(list(requests), _finish_batch, super().finish_tasks, "finishing")

    async def _in_one_unit(
        self,
        batch: list[_Request],
        apply: Callable[[sqlite3.Connection, list[Change], Sequence[_Request], float], list[_Answer]],
        one_by_one: Callable[[Sequence[_Request]], Awaitable[list[_Answer | Exception]]],
        what: str,
    ) -> list[_Answer | Exception]:
        """`apply` to the whole batch in one unit of work; should that unit fail (a request the store refuses),
        each request in a unit of its own (`one_by_one`), so that the failure stays with its request. A single
        request takes the single call's shorter path."""
        if len(batch) < 2:
            return await one_by_one(batch)
        now = self._clock()
        try:
            answers = await self._engine.write(lambda conn, changes: apply(conn, changes, batch, now))
        except Exception as exc:
            log.debug("%s %d tasks one by one: %s", what, len(batch), exc)
            return await one_by_one(batch)
        return list(answers)

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
