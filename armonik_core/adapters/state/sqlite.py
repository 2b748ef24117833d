"""The embedded state store: SQLite in WAL mode, one database file, batched and group-committed writes.

Each public method is one unit of work run by the engine's writer thread (see `sqlite_engine`), applying a
rule of `armonik_core.domain` to the rows it loads. Lookups by many ids are chunked so that no statement
exceeds SQLite's parameter limit.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from armonik_core.adapters.queue.base import QueueMessage
from armonik_core.adapters.state import common
from armonik_core.adapters.state import sqlite_schema as schema
from armonik_core.adapters.state.base import (
    Application,
    ResultCompletion,
    SessionActionOutcome,
    TaskAcquisition,
)
from armonik_core.adapters.state.sql_filters import compile_filter, compile_order
from armonik_core.adapters.state.sqlite_engine import SqliteEngine
from armonik_core.adapters.state.sqlite_paging import Keyset, PagingCache, keyset_condition
from armonik_core.domain import graph, sessions
from armonik_core.domain.changes import Change
from armonik_core.domain.errors import FailedPrecondition, NotFound
from armonik_core.domain.filters import Filter, ListQuery
from armonik_core.domain.outcomes import OutcomeKind, TaskOutcome
from armonik_core.domain.records import Partition, Result, Session, Task
from armonik_core.domain.sessions import SessionAction
from armonik_core.domain.statuses import EventType, ResultStatus, SessionStatus, TaskStatus
from armonik_core.domain.tasks import Acquisition, can_retry, decide_acquisition, make_retry

R = TypeVar("R")
CHUNK = 900
Clock = Callable[[], float]


def _chunks(ids: Sequence[str], size: int = CHUNK) -> Iterator[Sequence[str]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def _select_in(conn: sqlite3.Connection, sql: str, ids: Sequence[str], *extra: Any) -> list[sqlite3.Row]:
    """Run `sql` (with one `{marks}` placeholder for the id list) over `ids`, chunk by chunk."""
    rows: list[sqlite3.Row] = []
    for chunk in _chunks(list(dict.fromkeys(ids))):
        marks = ",".join("?" * len(chunk))
        rows.extend(conn.execute(sql.format(marks=marks), (*chunk, *extra)).fetchall())
    return rows


def _columns(names: Iterable[str]) -> str:
    return ", ".join(names)


def _insert_sql(table: str, columns: Sequence[str], verb: str = "INSERT") -> str:
    return f"{verb} INTO {table} ({_columns(columns)}) VALUES ({','.join('?' * len(columns))})"


_INSERT_TASK = _insert_sql("tasks", schema.TASK_COLUMNS)
_INSERT_RESULT = _insert_sql("results", schema.RESULT_COLUMNS)
_INSERT_SESSION = _insert_sql("sessions", schema.SESSION_COLUMNS)
_UPSERT_PARTITION = _insert_sql("partitions", schema.PARTITION_COLUMNS, "INSERT OR REPLACE")


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


@dataclass(frozen=True, slots=True)
class ListingStatements:
    """The count of a listing and the SELECT of its page, with their parameters (the page's bounds are in
    the SELECT's text: they are integers), and, when the sort allows it, the SELECT of the page that
    follows a known row (`sqlite_paging`)."""

    count: str
    select: str
    params: tuple[Any, ...]
    limit: int
    keyset: Keyset | None
    #: The listing whatever its page: the paging cache's key.
    identity: Hashable


def listing_statements(table: str, columns: Sequence[str], query: ListQuery) -> ListingStatements:
    """The schema's indexes are laid out for these statements: a session's tasks by id, and its results by
    status then id (what the SDK and the CLI ask by default), are read in index order, a page at a time,
    however large the session."""
    column_for = schema.column_resolver(table)
    where, params = compile_filter(query.filter, column_for)
    order = compile_order(query.sort, column_for) or "rowid"
    offset, limit = common.page_window(query.page, query.page_size)
    count = f"SELECT COUNT(*) FROM {table} WHERE {where}"
    selected = _columns(columns)
    sort_columns = [column_for(key.field) for key in query.sort]
    keyset = None
    if (
        sort_columns
        and sort_columns[-1] == schema.ID_COLUMNS.get(table)
        and set(sort_columns) <= schema.NON_NULL_COLUMNS[table]
        and len({key.descending for key in query.sort}) == 1
    ):
        # The sort values close every row, so that the last one read tells where the next page starts.
        selected = f"{selected}, {_columns(sort_columns)}"
        after = keyset_condition(sort_columns, query.sort[0].descending)
        keyset = Keyset(
            f"SELECT {selected} FROM {table} WHERE {where} AND {after} ORDER BY {order} LIMIT {limit:d}",
            len(sort_columns),
        )
    select = (
        f"SELECT {selected} FROM {table} WHERE {where} ORDER BY {order} LIMIT {limit:d} OFFSET {offset:d}"
    )
    return ListingStatements(
        count, select, tuple(params), limit, keyset, (table, where, *params, order, limit)
    )


class SqliteStateStore(common.ChangeFeedStore):
    def __init__(
        self, path: str | Path, *, synchronous: str = "FULL", clock: Clock = time.time, outbox: bool = True
    ) -> None:
        """`outbox=False` when the queue is rebuilt from the state itself (`MemoryQueue`): the SUBMITTED
        rows are then the durable record of what is queued, and an outbox would only duplicate them."""
        super().__init__()
        self._path = Path(path)
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        self._engine = SqliteEngine(self._path, self._dispatch, synchronous=synchronous, outbox=outbox)
        self._engine.run_setup(schema.DDL)
        self._paging = PagingCache()

    async def close(self) -> None:
        await self._engine.idle()
        self._engine.close()

    # -- generic listing ---------------------------------------------------------------------------------
    async def _list(
        self, table: str, columns: Sequence[str], query: ListQuery, convert: Callable[[sqlite3.Row], R]
    ) -> tuple[int, list[R]]:
        """A page and the listing's total. A client reading page after page while nothing is committed gets
        the total counted for an earlier page, and each page read from where the previous one ended rather
        than at its OFFSET (`sqlite_paging`)."""
        listing = listing_statements(table, columns, query)
        generation = self._engine.generation
        known_total = self._paging.total(generation, listing.identity)
        keyset = listing.keyset
        start = self._paging.start_after(generation, listing.identity, query.page) if keyset else None

        def run(conn: sqlite3.Connection) -> tuple[int, list[R], tuple[Any, ...] | None]:
            total = known_total
            if total is None:
                total = conn.execute(listing.count, listing.params).fetchone()[0]
            if keyset is not None and start is not None:
                rows = conn.execute(keyset.after, (*listing.params, *start)).fetchall()
            else:
                rows = conn.execute(listing.select, listing.params).fetchall()
            last = (
                tuple(rows[-1])[-keyset.width :]
                if keyset is not None and len(rows) == listing.limit
                else None
            )
            return total, [convert(row) for row in rows], last

        total, page, last = await self._engine.read(run)
        self._paging.remember(generation, self._engine.generation, listing.identity, total, query.page, last)
        return total, page

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

    # -- compute plane ---------------------------------------------------------------------------------
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


# -- units of work shared by several operations ------------------------------------------------------------
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
    created = outcome.created_results
    if created:
        conn.executemany(_INSERT_RESULT, [schema.result_to_row(r) for r in created])
        changes.extend(common.new_result_changes(created))
    produced = common.produced_results(task, outcome)
    conn.executemany(
        "UPDATE results SET status = ?, size = ?, opaque_id = ?, completed_at = ? WHERE result_id = ? AND status = ?",
        [
            (int(ResultStatus.COMPLETED), c.size, c.opaque_id, now, c.result_id, int(ResultStatus.CREATED))
            for c in outcome.completions
        ],
    )
    changes.extend(common.result_status_changes(task.session_id, produced, ResultStatus.COMPLETED))
    messages: list[QueueMessage] = []
    if outcome.subtasks:
        session = _load_session(conn, task.session_id)
        messages += _insert_tasks(conn, changes, session, outcome.subtasks, task.task_id, now)
    messages += _resolve_dependents(conn, changes, produced, now)
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
    started = {} if start is None else {"fetched_at": start[0], "started_at": start[1]}
    processed = common.processed_time(task, outcome, now)
    _set_task_status(
        conn, changes, [task], TaskStatus.COMPLETED, processed_at=processed, ended_at=now, error="", **started
    )
    return messages


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


def _status_assignments(columns: Mapping[str, float | str]) -> str:
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
    assignments = _status_assignments(columns)
    rows = []
    for task in tasks:
        task.status = status
        for name, value in columns.items():
            setattr(task, name, value)
        rows.append((int(status), *columns.values(), task.task_id))
        changes.append(Change(EventType.TASK_STATUS_UPDATE, task.session_id, task.task_id, int(status)))
    conn.executemany(f"UPDATE tasks SET {assignments} WHERE task_id = ?", rows)


def _resolve_dependents(
    conn: sqlite3.Connection, changes: list[Change], completed: Sequence[str], now: float
) -> list[QueueMessage]:
    """Drop the completed inputs from every waiting task and queue the tasks that now have them all."""
    rows = _select_in(
        conn,
        "SELECT task_id, result_id FROM task_waits WHERE task_id IN "
        "(SELECT task_id FROM task_waits WHERE result_id IN ({marks}))",
        completed,
    )
    remaining: dict[str, set[str]] = {}
    for row in rows:
        remaining.setdefault(row["task_id"], set()).add(row["result_id"])
    conn.executemany("DELETE FROM task_waits WHERE result_id = ?", [(rid,) for rid in completed])
    ready_ids = graph.ready_after_completion(remaining, completed)
    if not ready_ids:
        return []
    ready = [t for t in _load_tasks(conn, ready_ids).values() if t.status == TaskStatus.PENDING]
    paused, runnable = common.split_paused(ready, _paused_sessions(conn, {t.session_id for t in ready}))
    _set_task_status(conn, changes, paused, TaskStatus.PAUSED, submitted_at=now)
    _set_task_status(conn, changes, runnable, TaskStatus.SUBMITTED, submitted_at=now)
    return _enqueue(conn, runnable)


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
