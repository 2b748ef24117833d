"""The embedded state store: SQLite in WAL mode, one database file, batched and group-committed writes.

Each public method is one unit of work run by the engine's writer thread (see `sqlite_engine`), applying a
rule of `armonik_core.domain` to the rows it loads. Lookups by many ids are chunked so that no statement
exceeds SQLite's parameter limit.

The store is split by concern, this module keeping the clients' operations (partitions, sessions, results,
tasks, applications): `sqlite_units` (engine, clock, listing), `sqlite_compute` (the agents' operations and the
outbox, a layer of the store class), `sqlite_listing` (a listing's statements), `sqlite_sql` (statement helpers),
and the steps the units share: `sqlite_writes` (loading, submission, status moves, dependents),
`sqlite_outcomes` (outcomes of a run) and `sqlite_cascade` (cancellation, abort cascades).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from armonik_core.adapters.queue.base import QueueMessage
from armonik_core.adapters.state import common
from armonik_core.adapters.state import sqlite_schema as schema
from armonik_core.adapters.state.base import Application, ResultCompletion, SessionActionOutcome
from armonik_core.adapters.state.sql_filters import compile_filter, compile_order
from armonik_core.adapters.state.sqlite_cascade import (
    _cancel,
    _cancel_session_tasks,
    _drop_session_data,
)
from armonik_core.adapters.state.sqlite_compute import SqliteComputePlane
from armonik_core.adapters.state.sqlite_listing import listing_statements
from armonik_core.adapters.state.sqlite_sql import (
    _INSERT_RESULT,
    _INSERT_SESSION,
    _UPSERT_PARTITION,
    _columns,
    _select_in,
)
from armonik_core.adapters.state.sqlite_writes import (
    _enqueue_messages,
    _insert_tasks,
    _load_results,
    _load_session,
    _load_tasks,
    _move_session_tasks,
    _resolve_dependents,
    _save_session_state,
)
from armonik_core.domain import sessions
from armonik_core.domain.changes import Change
from armonik_core.domain.errors import FailedPrecondition, NotFound
from armonik_core.domain.filters import Filter, ListQuery
from armonik_core.domain.records import Partition, Result, Session, Task
from armonik_core.domain.sessions import SessionAction
from armonik_core.domain.statuses import ResultStatus, TaskStatus

__all__ = ["SqliteStateStore", "listing_statements"]


class SqliteStateStore(SqliteComputePlane):
    """The embedded state: the clients' operations here, on the compute plane's (`SqliteComputePlane`) and
    the engine and listings (`SqliteUnits`), layered by who calls them so that each stays readable."""

    # -- partitions --------------------------------------------------------------------------------------
    async def upsert_partitions(self, partitions: Sequence[Partition]) -> None:
        rows = [schema.partition_to_row(p) for p in partitions]

        def unit(conn: sqlite3.Connection, changes: list[Change]) -> None:
            conn.executemany(_UPSERT_PARTITION, rows)

        await self._engine.write(unit)

    async def get_partition(self, partition_id: str) -> Partition:
        def run(conn: sqlite3.Connection) -> Partition:
            row = conn.execute(
                f"SELECT {_columns(schema.PARTITION_COLUMNS)} FROM partitions WHERE partition_id = ?",
                (partition_id,),
            ).fetchone()
            if row is None:
                raise NotFound(f"Partition not found: {partition_id}")
            return schema.partition_from_row(row)

        return await self._engine.lookup(run)

    async def list_partitions(self, query: ListQuery) -> tuple[int, list[Partition]]:
        return await self._list("partitions", schema.PARTITION_COLUMNS, query, schema.partition_from_row)

    # -- sessions ----------------------------------------------------------------------------------------
    async def create_session(self, session: Session) -> None:
        row = schema.session_to_row(session)

        def unit(conn: sqlite3.Connection, changes: list[Change]) -> None:
            wanted = set(session.partition_ids) | {session.options.partition_id}
            found = {
                r["partition_id"]
                for r in _select_in(
                    conn, "SELECT partition_id FROM partitions WHERE partition_id IN ({marks})", list(wanted)
                )
            }
            common.require_found("Partition", wanted, found)
            conn.execute(_INSERT_SESSION, row)

        await self._engine.write(unit)

    async def get_session(self, session_id: str) -> Session:
        return await self._engine.lookup(lambda conn: _load_session(conn, session_id))

    async def list_sessions(self, query: ListQuery) -> tuple[int, list[Session]]:
        return await self._list("sessions", schema.SESSION_COLUMNS, query, schema.session_from_row)

    async def stop_submission(self, session_id: str, client: bool, worker: bool) -> Session:
        def unit(conn: sqlite3.Connection, changes: list[Change]) -> Session:
            session = sessions.stop_submission(_load_session(conn, session_id), client, worker)
            conn.execute(
                "UPDATE sessions SET client_submission = ?, worker_submission = ? WHERE session_id = ?",
                (int(session.client_submission), int(session.worker_submission), session_id),
            )
            return session

        return await self._engine.write(unit)

    async def apply_session_action(self, session_id: str, action: SessionAction) -> SessionActionOutcome:
        now = self._clock()

        def unit(conn: sqlite3.Connection, changes: list[Change]) -> SessionActionOutcome:
            session = sessions.apply_session_action(_load_session(conn, session_id), action, now)
            outcome = SessionActionOutcome(session)
            if action is SessionAction.PAUSE:
                _move_session_tasks(conn, changes, session_id, sessions.PAUSE_TASKS)
                conn.execute("DELETE FROM outbox WHERE session_id = ?", (session_id,))
            elif action is SessionAction.RESUME:
                moved = _move_session_tasks(
                    conn, changes, session_id, sessions.RESUME_TASKS, submitted_at=now
                )
                outcome.to_enqueue = _enqueue_messages(conn, moved)
            elif action is SessionAction.CANCEL:
                _cancel_session_tasks(conn, changes, session_id, now)
            elif action in (SessionAction.PURGE, SessionAction.DELETE):
                outcome.objects_to_delete = _drop_session_data(conn, changes, session_id)
                if action is SessionAction.DELETE:
                    for table in ("task_waits", "outbox"):
                        conn.execute(
                            f"DELETE FROM {table} WHERE task_id IN (SELECT task_id FROM tasks WHERE session_id = ?)",
                            (session_id,),
                        )
                    conn.execute("DELETE FROM tasks WHERE session_id = ?", (session_id,))
                    conn.execute("DELETE FROM results WHERE session_id = ?", (session_id,))
            _save_session_state(conn, session)
            return outcome

        # A whole session's tasks may be millions of rows: off the event loop, in one transaction.
        return await self._engine.write_long(unit)

    # -- results -----------------------------------------------------------------------------------------
    async def create_results(
        self, session_id: str, results: Sequence[Result], by_worker: bool = False
    ) -> None:
        rows = [schema.result_to_row(r) for r in results]

        def unit(conn: sqlite3.Connection, changes: list[Change]) -> None:
            sessions.check_submission_allowed(_load_session(conn, session_id), by_worker)
            try:
                conn.executemany(_INSERT_RESULT, rows)
            except sqlite3.IntegrityError as exc:
                raise FailedPrecondition(f"A result id is already taken: {exc}") from exc
            changes.extend(common.new_result_changes(results, session_id))

        await self._engine.write(unit)

    async def get_results(self, result_ids: Sequence[str]) -> list[Result]:
        sql = f"SELECT {_columns(schema.RESULT_COLUMNS)} FROM results WHERE result_id IN ({{marks}})"
        return await self._engine.lookup(
            lambda conn: [schema.result_from_row(r) for r in _select_in(conn, sql, result_ids)],
            len(result_ids),
        )

    async def list_results(self, query: ListQuery) -> tuple[int, list[Result]]:
        return await self._list("results", schema.RESULT_COLUMNS, query, schema.result_from_row)

    async def complete_results(
        self, session_id: str, completions: Sequence[ResultCompletion]
    ) -> list[QueueMessage]:
        now = self._clock()

        def unit(conn: sqlite3.Connection, changes: list[Change]) -> list[QueueMessage]:
            ids = [c.result_id for c in completions]
            common.check_can_receive_data(_load_results(conn, ids, session_id).values())
            conn.executemany(
                "UPDATE results SET status = ?, size = ?, opaque_id = ?, completed_at = ? WHERE result_id = ?",
                [(int(ResultStatus.COMPLETED), c.size, c.opaque_id, now, c.result_id) for c in completions],
            )
            changes.extend(common.result_status_changes(session_id, ids, ResultStatus.COMPLETED))
            return _resolve_dependents(conn, changes, ids, now)

        return await self._engine.write(unit)

    async def delete_results_data(self, session_id: str, result_ids: Sequence[str]) -> list[bytes]:
        def unit(conn: sqlite3.Connection, changes: list[Change]) -> list[bytes]:
            doomed = common.results_to_delete(_load_results(conn, result_ids, session_id).values())
            conn.executemany(
                "UPDATE results SET status = ?, opaque_id = x'' WHERE result_id = ?",
                [(int(ResultStatus.DELETED), r.result_id) for r in doomed],
            )
            changes.extend(
                common.result_status_changes(session_id, [r.result_id for r in doomed], ResultStatus.DELETED)
            )
            return [r.opaque_id for r in doomed if r.opaque_id]

        return await self._engine.write(unit)

    # -- tasks -------------------------------------------------------------------------------------------
    async def submit_tasks(
        self, session_id: str, tasks: Sequence[Task], parent_task_id: str | None = None
    ) -> list[QueueMessage]:
        now = self._clock()

        def unit(conn: sqlite3.Connection, changes: list[Change]) -> list[QueueMessage]:
            session = _load_session(conn, session_id)
            sessions.check_submission_allowed(session, by_worker=parent_task_id is not None)
            return _insert_tasks(conn, changes, session, tasks, parent_task_id, now)

        return await self._engine.write(unit)

    async def get_tasks(self, task_ids: Sequence[str]) -> list[Task]:
        sql = f"SELECT {_columns(schema.TASK_COLUMNS)} FROM tasks WHERE task_id IN ({{marks}})"
        return await self._engine.lookup(
            lambda conn: [schema.task_from_row(r) for r in _select_in(conn, sql, task_ids)], len(task_ids)
        )

    async def list_tasks(self, query: ListQuery) -> tuple[int, list[Task]]:
        return await self._list("tasks", schema.TASK_COLUMNS, query, schema.task_from_row)

    async def count_tasks_by_status(self, flt: Filter) -> dict[TaskStatus, int]:
        where, params = compile_filter(flt, schema.column_resolver("tasks"))

        def run(conn: sqlite3.Connection) -> dict[TaskStatus, int]:
            rows = conn.execute(f"SELECT status, COUNT(*) FROM tasks WHERE {where} GROUP BY status", params)
            return {TaskStatus(status): count for status, count in rows}

        return await self._engine.read(run)

    async def cancel_tasks(self, task_ids: Sequence[str]) -> list[Task]:
        now = self._clock()

        def unit(conn: sqlite3.Connection, changes: list[Change]) -> list[Task]:
            tasks = _load_tasks(conn, task_ids)
            common.require_found("Task", task_ids, tasks)
            _cancel(conn, changes, list(tasks.values()), now)
            return list(tasks.values())

        return await self._engine.write(unit)

    async def list_applications(self, query: ListQuery) -> tuple[int, list[Application]]:
        column_for = schema.column_resolver("applications")
        where, params = compile_filter(query.filter, column_for)
        order = compile_order(query.sort, column_for) or "1, 2, 3, 4"
        limit = query.page_size or common.DEFAULT_PAGE_SIZE
        grouped = (
            "SELECT opt_application_name, opt_application_version, opt_application_namespace, "
            f"opt_application_service FROM tasks WHERE {where} GROUP BY 1, 2, 3, 4"
        )

        def run(conn: sqlite3.Connection) -> tuple[int, list[Application]]:
            total = conn.execute(f"SELECT COUNT(*) FROM ({grouped})", params).fetchone()[0]
            rows = conn.execute(
                f"SELECT * FROM ({grouped}) ORDER BY {order} LIMIT ? OFFSET ?",
                (*params, limit, query.page * limit),
            ).fetchall()
            return total, [Application(*tuple(row)) for row in rows]

        return await self._engine.read(run)
