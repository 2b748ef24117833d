"""Records to SQLite rows and back, and tasks to the API's messages: every field, set or unset."""

from __future__ import annotations

import sqlite3

import pytest

from armonik_core.adapters.state import sqlite_schema as schema
from armonik_core.control_plane.convert import task_to_detailed, task_to_summary
from armonik_core.domain.options import TaskOptions
from armonik_core.domain.records import TASK_TIMES, Result, Session, Task
from armonik_core.domain.statuses import ResultStatus, SessionStatus, TaskStatus

OPTIONS = TaskOptions(
    max_duration=90.5,
    max_retries=3,
    priority=4,
    partition_id="p",
    application_name="app",
    application_version="1.2",
    application_namespace="ns",
    application_service="svc",
    engine_type="engine",
    options={"key": "value", "é": "ü"},
)


def full_task() -> Task:
    return Task(
        "task-1",
        "session-1",
        TaskStatus.ERROR,
        OPTIONS,
        "payload-1",
        1000.123456789,
        ["out-1", "out-2"],
        ["dep-1"],
        ["session-1", "parent-1"],
        ["task-0"],
        "task-0",
        "parent-1",
        owner_pod_id="agent-1",
        pod_hostname="host-1",
        status_message="failed",
        error="boom",
        submitted_at=1001.0,
        received_at=1002.0,
        acquired_at=1002.5,
        fetched_at=1003.0,
        started_at=1003.25,
        processed_at=1004.0,
        ended_at=1005.75,
        pod_ttl=1100.0,
    )


@pytest.fixture
def conn() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    conn.row_factory = sqlite3.Row
    conn.executescript(schema.DDL)
    return conn


def insert(conn: sqlite3.Connection, table: str, columns: tuple[str, ...], row: tuple[object, ...]) -> None:
    conn.execute(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})", row)


def read(conn: sqlite3.Connection, table: str, columns: tuple[str, ...]) -> sqlite3.Row:
    # Listings read extra columns after the record's own (the sort values): they must not matter.
    return conn.execute(f"SELECT {', '.join(columns)}, rowid, 'extra' FROM {table}").fetchone()


@pytest.mark.parametrize("task", [full_task(), Task("t", "s", TaskStatus.CREATING, TaskOptions(), "p", 1.0)])
def test_a_task_reads_back_from_its_row(conn: sqlite3.Connection, task: Task) -> None:
    insert(conn, "tasks", schema.TASK_COLUMNS, schema.task_to_row(task))
    back = schema.task_from_row(read(conn, "tasks", schema.TASK_COLUMNS))
    if not task.initial_task_id:
        task.initial_task_id = task.task_id  # the row always names the first attempt
    assert back == task


def test_a_result_and_a_session_read_back_from_their_rows(conn: sqlite3.Connection) -> None:
    result = Result(
        "r", "s", "name", ResultStatus.COMPLETED, 5.5, owner_task_id="t", created_by="c", completed_at=6.0,
        size=42, opaque_id=b"\x00key", manual_deletion=True,
    )  # fmt: skip
    insert(conn, "results", schema.RESULT_COLUMNS, schema.result_to_row(result))
    assert schema.result_from_row(read(conn, "results", schema.RESULT_COLUMNS)) == result
    session = Session(
        "s", SessionStatus.CANCELLED, ["p", "q"], OPTIONS, 1.0, client_submission=False, worker_submission=True,
        cancelled_at=2.0, closed_at=3.0,
    )  # fmt: skip
    insert(conn, "sessions", schema.SESSION_COLUMNS, schema.session_to_row(session))
    assert schema.session_from_row(read(conn, "sessions", schema.SESSION_COLUMNS)) == session


def test_a_detailed_task_carries_every_field() -> None:
    task = full_task()
    msg = task_to_detailed(task)
    assert (msg.id, msg.session_id, msg.status, msg.status_message) == (
        "task-1",
        "session-1",
        5,
        "failed",
    )  # ERROR
    assert (msg.owner_pod_id, msg.pod_hostname, msg.initial_task_id, msg.created_by) == (
        "agent-1", "host-1", "task-0", "parent-1",
    )  # fmt: skip
    assert msg.created_at.seconds == 1000 and msg.created_at.nanos == 123456789
    times = [name for name in TASK_TIMES if name not in ("created_at", "pod_ttl")]
    assert [getattr(msg, name).ToNanoseconds() / 1e9 for name in times] == [
        getattr(task, name) for name in times
    ]
    assert msg.pod_ttl.seconds == 1100
    assert msg.processing_to_end_duration.ToNanoseconds() == 2_500_000_000
    assert msg.received_to_end_duration.ToNanoseconds() == 3_750_000_000
    assert msg.options.max_duration.ToNanoseconds() == 90_500_000_000 and msg.options.max_retries == 3
    assert (msg.options.partition_id, msg.options.engine_type) == ("p", "engine")
    assert dict(msg.options.options) == {"key": "value", "é": "ü"}
    assert list(msg.expected_output_ids) == ["out-1", "out-2"] and list(msg.retry_of_ids) == ["task-0"]
    assert list(msg.parent_task_ids) == ["session-1", "parent-1"] and list(msg.data_dependencies) == ["dep-1"]
    assert not msg.output.success and msg.output.error == "boom"


def test_unset_times_stay_unset_and_options_are_always_there() -> None:
    msg = task_to_detailed(Task("t", "s", TaskStatus.COMPLETED, TaskOptions(), "p", 1.0))
    for name in ("submitted_at", "started_at", "ended_at", "pod_ttl", "processing_to_end_duration"):
        assert not msg.HasField(name), name
    # A zero max_duration (no limit) is still a duration the clients read, as upstream sends it.
    assert msg.HasField("options") and msg.options.HasField("max_duration")
    assert msg.output.success


def test_a_task_summary_counts_its_lists() -> None:
    summary = task_to_summary(full_task())
    assert (summary.count_expected_output_ids, summary.count_parent_task_ids) == (2, 2)
    assert (summary.count_data_dependencies, summary.count_retry_of_ids) == (1, 1)
    assert summary.error == "boom" and task_to_summary(full_task(), with_errors=False).error == ""
    assert summary.ended_at.seconds == 1005 and summary.options.priority == 4
