"""SQLite tables of the state store, and the mapping between rows and domain records.

Lists that filters reach into (session partitions, partition parents) are JSON text arrays and the free-form
options map is a JSON object, read with `json_each`; a task's id lists are space-separated (`join_ids`). Task options are flattened into `opt_*`
columns because the List RPCs filter and sort on them.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from armonik_core.adapters.state.sql_filters import json_member
from armonik_core.domain.errors import InvalidArgument
from armonik_core.domain.filters import FieldRef
from armonik_core.domain.options import TaskOptions
from armonik_core.domain.records import TASK_TIMES, Partition, Result, Session, Task
from armonik_core.domain.statuses import ResultStatus, SessionStatus, TaskStatus

SCHEMA_VERSION = 1

OPTION_COLUMNS = (
    "opt_max_duration",
    "opt_max_retries",
    "opt_priority",
    "opt_partition_id",
    "opt_application_name",
    "opt_application_version",
    "opt_application_namespace",
    "opt_application_service",
    "opt_engine_type",
    "opt_options",
)

_OPTION_DDL = """
    opt_max_duration REAL NOT NULL DEFAULT 0,
    opt_max_retries INTEGER NOT NULL DEFAULT 0,
    opt_priority INTEGER NOT NULL DEFAULT 0,
    opt_partition_id TEXT NOT NULL DEFAULT '',
    opt_application_name TEXT NOT NULL DEFAULT '',
    opt_application_version TEXT NOT NULL DEFAULT '',
    opt_application_namespace TEXT NOT NULL DEFAULT '',
    opt_application_service TEXT NOT NULL DEFAULT '',
    opt_engine_type TEXT NOT NULL DEFAULT '',
    opt_options TEXT NOT NULL DEFAULT '{}'
"""

DDL = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS partitions (
    partition_id TEXT PRIMARY KEY,
    parent_partition_ids TEXT NOT NULL DEFAULT '[]',
    pod_reserved INTEGER NOT NULL DEFAULT 0,
    pod_max INTEGER NOT NULL DEFAULT 0,
    preemption_percentage INTEGER NOT NULL DEFAULT 0,
    priority INTEGER NOT NULL DEFAULT 0,
    pod_configuration TEXT NOT NULL DEFAULT '{{}}'
);
CREATE TABLE IF NOT EXISTS sessions (
    session_id TEXT PRIMARY KEY,
    status INTEGER NOT NULL,
    partition_ids TEXT NOT NULL,
    client_submission INTEGER NOT NULL,
    worker_submission INTEGER NOT NULL,
    created_at REAL NOT NULL,
    cancelled_at REAL, closed_at REAL, purged_at REAL, deleted_at REAL,
    {_OPTION_DDL}
);
CREATE INDEX IF NOT EXISTS sessions_status ON sessions(status);
CREATE INDEX IF NOT EXISTS sessions_created ON sessions(created_at);
CREATE TABLE IF NOT EXISTS tasks (
    task_id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    status INTEGER NOT NULL,
    payload_id TEXT NOT NULL,
    initial_task_id TEXT NOT NULL,
    created_by TEXT NOT NULL DEFAULT '',
    owner_pod_id TEXT NOT NULL DEFAULT '',
    pod_hostname TEXT NOT NULL DEFAULT '',
    status_message TEXT NOT NULL DEFAULT '',
    error TEXT NOT NULL DEFAULT '',
    expected_output_ids TEXT NOT NULL,
    data_dependencies TEXT NOT NULL,
    parent_task_ids TEXT NOT NULL,
    retry_of_ids TEXT NOT NULL,
    created_at REAL NOT NULL,
    submitted_at REAL, received_at REAL, acquired_at REAL, fetched_at REAL,
    started_at REAL, processed_at REAL, ended_at REAL, pod_ttl REAL,
    {_OPTION_DDL}
);
-- counts by status, and a session's tasks in id order (the SDK's and the CLI's default listing), of one
-- status or of all: each listing must find its index, or the planner walks a whole session for a rare status
DROP INDEX IF EXISTS tasks_session_status;
CREATE INDEX IF NOT EXISTS tasks_session_status_task ON tasks(session_id, status, task_id);
CREATE INDEX IF NOT EXISTS tasks_session_task ON tasks(session_id, task_id);
CREATE INDEX IF NOT EXISTS tasks_status ON tasks(status);
CREATE INDEX IF NOT EXISTS tasks_partition_status ON tasks(opt_partition_id, status);
CREATE TABLE IF NOT EXISTS results (
    result_id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    name TEXT NOT NULL,
    owner_task_id TEXT NOT NULL DEFAULT '',
    status INTEGER NOT NULL,
    created_at REAL NOT NULL,
    completed_at REAL,
    size INTEGER NOT NULL DEFAULT 0,
    created_by TEXT NOT NULL DEFAULT '',
    opaque_id BLOB NOT NULL DEFAULT x'',
    manual_deletion INTEGER NOT NULL DEFAULT 0
);
-- counts by status, and a session's results in the SDK's default order (status, then id)
DROP INDEX IF EXISTS results_session_status;
CREATE INDEX IF NOT EXISTS results_session_status_result ON results(session_id, status, result_id);
CREATE INDEX IF NOT EXISTS results_owner ON results(owner_task_id);
-- inputs a waiting task still lacks; a row disappears when its result completes
CREATE TABLE IF NOT EXISTS task_waits (
    result_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    PRIMARY KEY (result_id, task_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS task_waits_task ON task_waits(task_id);
-- ready tasks committed but not yet confirmed published to the queue
CREATE TABLE IF NOT EXISTS outbox (
    task_id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    partition_id TEXT NOT NULL,
    priority INTEGER NOT NULL
);
"""


_ENCODER = json.JSONEncoder(separators=(",", ":"))


def dumps(value: Any) -> str:
    """Compact JSON; one shared encoder, since `json.dumps` with arguments builds a new one per call."""
    if not value:
        return "{}" if isinstance(value, dict) else "[]"
    return _ENCODER.encode(value)


def join_ids(ids: list[str]) -> str:
    """A task's id lists as space-separated text. Every id in them is generated by the control plane
    (UUIDs, `<id>###<n>` for retries), so none contains a space; no filter reaches into them; and this is
    several times cheaper than JSON at tens of thousands of tasks per second."""
    return " ".join(ids)


def split_ids(text: str) -> list[str]:
    return text.split()


def options_to_row(options: TaskOptions) -> tuple[Any, ...]:
    return (
        options.max_duration,
        options.max_retries,
        options.priority,
        options.partition_id,
        options.application_name,
        options.application_version,
        options.application_namespace,
        options.application_service,
        options.engine_type,
        dumps(options.options),
    )


# Records are read from rows by position: each SELECT reads a table's `*_COLUMNS` first, in order. A name
# lookup in an `sqlite3.Row` compares the name with every column's, case-insensitively: reading a task by
# names cost three times as much as by position, on every page of every listing.
_TASK_STATUSES = {int(s): s for s in TaskStatus}
_RESULT_STATUSES = {int(s): s for s in ResultStatus}


def options_from_values(values: Sequence[Any]) -> TaskOptions:
    """Options from the values of `OPTION_COLUMNS`, in order."""
    (
        max_duration,
        max_retries,
        priority,
        partition_id,
        name,
        version,
        namespace,
        service,
        engine,
        options,
    ) = values
    return TaskOptions(
        max_duration=max_duration,
        max_retries=max_retries,
        priority=priority,
        partition_id=partition_id,
        application_name=name,
        application_version=version,
        application_namespace=namespace,
        application_service=service,
        engine_type=engine,
        options={} if options == "{}" else json.loads(options),  # most tasks have none: no decode per row
    )


# -- sessions ---------------------------------------------------------------------------------------------
SESSION_COLUMNS = (
    "session_id",
    "status",
    "partition_ids",
    "client_submission",
    "worker_submission",
    "created_at",
    "cancelled_at",
    "closed_at",
    "purged_at",
    "deleted_at",
    *OPTION_COLUMNS,
)


def session_to_row(s: Session) -> tuple[Any, ...]:
    return (
        s.session_id,
        int(s.status),
        dumps(s.partition_ids),
        int(s.client_submission),
        int(s.worker_submission),
        s.created_at,
        s.cancelled_at,
        s.closed_at,
        s.purged_at,
        s.deleted_at,
        *options_to_row(s.options),
    )


def session_from_row(row: Sequence[Any]) -> Session:
    """A session from a row that starts with `SESSION_COLUMNS`, in order."""
    (session_id, status, partitions, client, worker, created, cancelled, closed, purged, deleted) = row[:10]
    return Session(
        session_id=session_id,
        status=SessionStatus(status),
        partition_ids=json.loads(partitions),
        options=options_from_values(row[10 : 10 + len(OPTION_COLUMNS)]),
        created_at=created,
        client_submission=bool(client),
        worker_submission=bool(worker),
        cancelled_at=cancelled,
        closed_at=closed,
        purged_at=purged,
        deleted_at=deleted,
    )


# -- tasks ------------------------------------------------------------------------------------------------
TASK_COLUMNS = (
    "task_id",
    "session_id",
    "status",
    "payload_id",
    "initial_task_id",
    "created_by",
    "owner_pod_id",
    "pod_hostname",
    "status_message",
    "error",
    "expected_output_ids",
    "data_dependencies",
    "parent_task_ids",
    "retry_of_ids",
    *TASK_TIMES,
    *OPTION_COLUMNS,
)


def task_to_row(t: Task) -> tuple[Any, ...]:
    return (
        t.task_id,
        t.session_id,
        int(t.status),
        t.payload_id,
        t.initial_task_id or t.task_id,
        t.created_by,
        t.owner_pod_id,
        t.pod_hostname,
        t.status_message,
        t.error,
        join_ids(t.expected_output_ids),
        join_ids(t.data_dependencies),
        join_ids(t.parent_task_ids),
        join_ids(t.retry_of_ids),
        t.created_at,
        t.submitted_at,
        t.received_at,
        t.acquired_at,
        t.fetched_at,
        t.started_at,
        t.processed_at,
        t.ended_at,
        t.pod_ttl,
        *options_to_row(t.options),
    )


_TASK_OWN_COLUMNS = len(TASK_COLUMNS) - len(OPTION_COLUMNS)


def task_from_row(row: Sequence[Any]) -> Task:
    """A task from a row that starts with `TASK_COLUMNS`, in order."""
    (
        task_id,
        session_id,
        status,
        payload_id,
        initial_task_id,
        created_by,
        owner_pod_id,
        pod_hostname,
        status_message,
        error,
        outputs,
        dependencies,
        parents,
        retries,
        created_at,
        submitted_at,
        received_at,
        acquired_at,
        fetched_at,
        started_at,
        processed_at,
        ended_at,
        pod_ttl,
    ) = row[:_TASK_OWN_COLUMNS]
    return Task(
        task_id=task_id,
        session_id=session_id,
        status=_TASK_STATUSES[status],
        options=options_from_values(row[_TASK_OWN_COLUMNS : len(TASK_COLUMNS)]),
        payload_id=payload_id,
        created_at=created_at,
        expected_output_ids=split_ids(outputs),
        data_dependencies=split_ids(dependencies),
        parent_task_ids=split_ids(parents),
        retry_of_ids=split_ids(retries),
        initial_task_id=initial_task_id,
        created_by=created_by,
        owner_pod_id=owner_pod_id,
        pod_hostname=pod_hostname,
        status_message=status_message,
        error=error,
        submitted_at=submitted_at,
        received_at=received_at,
        acquired_at=acquired_at,
        fetched_at=fetched_at,
        started_at=started_at,
        processed_at=processed_at,
        ended_at=ended_at,
        pod_ttl=pod_ttl,
    )


# -- results ----------------------------------------------------------------------------------------------
RESULT_COLUMNS = (
    "result_id",
    "session_id",
    "name",
    "owner_task_id",
    "status",
    "created_at",
    "completed_at",
    "size",
    "created_by",
    "opaque_id",
    "manual_deletion",
)


def result_to_row(r: Result) -> tuple[Any, ...]:
    return (
        r.result_id,
        r.session_id,
        r.name,
        r.owner_task_id,
        int(r.status),
        r.created_at,
        r.completed_at,
        r.size,
        r.created_by,
        r.opaque_id,
        int(r.manual_deletion),
    )


def result_from_row(row: Sequence[Any]) -> Result:
    """A result from a row that starts with `RESULT_COLUMNS`, in order."""
    (
        result_id,
        session_id,
        name,
        owner_task_id,
        status,
        created_at,
        completed_at,
        size,
        created_by,
        opaque_id,
        manual_deletion,
    ) = row[: len(RESULT_COLUMNS)]
    return Result(
        result_id=result_id,
        session_id=session_id,
        name=name,
        status=_RESULT_STATUSES[status],
        created_at=created_at,
        owner_task_id=owner_task_id,
        created_by=created_by,
        completed_at=completed_at,
        size=size,
        opaque_id=bytes(opaque_id),
        manual_deletion=bool(manual_deletion),
    )


# -- partitions -------------------------------------------------------------------------------------------
PARTITION_COLUMNS = (
    "partition_id",
    "parent_partition_ids",
    "pod_reserved",
    "pod_max",
    "preemption_percentage",
    "priority",
    "pod_configuration",
)


def partition_to_row(p: Partition) -> tuple[Any, ...]:
    return (
        p.partition_id,
        dumps(p.parent_partition_ids),
        p.pod_reserved,
        p.pod_max,
        p.preemption_percentage,
        p.priority,
        dumps(p.pod_configuration),
    )


def partition_from_row(row: sqlite3.Row) -> Partition:
    return Partition(
        partition_id=row["partition_id"],
        parent_partition_ids=json.loads(row["parent_partition_ids"]),
        pod_reserved=row["pod_reserved"],
        pod_max=row["pod_max"],
        preemption_percentage=row["preemption_percentage"],
        priority=row["priority"],
        pod_configuration=json.loads(row["pod_configuration"]),
    )


# -- filter columns ---------------------------------------------------------------------------------------
_DERIVED = {
    "tasks": {
        "creation_to_end_duration": "max(0.0, ended_at - created_at)",
        "processing_to_end_duration": "max(0.0, ended_at - started_at)",
        "received_to_end_duration": "max(0.0, ended_at - received_at)",
    },
    "sessions": {"duration": "max(0.0, COALESCE(closed_at, cancelled_at) - created_at)"},
    "results": {"opaque_id": "CAST(opaque_id AS TEXT)"},
    "applications": {},
}

_COLUMNS = {
    "tasks": set(TASK_COLUMNS),
    "sessions": set(SESSION_COLUMNS),
    "results": set(RESULT_COLUMNS),
    "partitions": set(PARTITION_COLUMNS),
    "applications": set(OPTION_COLUMNS),
}


def column_resolver(table: str):  # type: ignore[no-untyped-def]
    """The function that turns a filter's field into an SQL expression on `table`."""
    derived = _DERIVED.get(table, {})
    columns = _COLUMNS[table]

    def column_for(ref: FieldRef) -> str:
        if ref.key is not None:
            if ref.path != "options.options":
                raise InvalidArgument(f"Field {ref} cannot be filtered on")
            return json_member("opt_options", ref.key)
        if ref.path in derived:
            return derived[ref.path]
        name = "opt_" + ref.path.removeprefix("options.") if ref.path.startswith("options.") else ref.path
        if name not in columns:
            raise InvalidArgument(f"Field {ref} cannot be filtered or sorted on here")
        return name

    return column_for


#: Each table's id, which ends every listing's sort (no two rows tie).
ID_COLUMNS = {
    "tasks": "task_id",
    "results": "result_id",
    "sessions": "session_id",
    "partitions": "partition_id",
}


def _non_null_columns() -> dict[str, frozenset[str]]:
    """The columns of each table that never hold NULL (NOT NULL, or the primary key the store always
    sets), read from the DDL itself through an in-memory database built from it."""
    conn = sqlite3.connect(":memory:")
    try:
        conn.executescript(DDL)
        return {
            table: frozenset(
                row[1] for row in conn.execute(f"PRAGMA table_info({table})") if row[3] or row[5]
            )
            for table in ID_COLUMNS
        }
    finally:
        conn.close()


#: Columns a listing can be read in keyset order on (`sqlite_paging`): a row value with a NULL in it
#: compares as unknown, so a sort column that may be NULL cannot resume a listing after a given row.
NON_NULL_COLUMNS = _non_null_columns()
