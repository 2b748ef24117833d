"""Listings of a large session are read in index order: the SQLite plans of what the SDK sends by default.

The official SDK lists a session's tasks by id and its results by status (then id, the store's tie-break);
`armonik-analytics` and `armonik-cli` page through sessions that way. A plan that sorts the whole session
in a temporary B-tree costs a second per page at a million tasks; one that walks an index costs a page."""

from __future__ import annotations

from pathlib import Path

import pytest
from armonik.common import Direction, Result, Task, TaskStatus
from armonik.common.filter import Filter as SdkFilter
from armonik.protogen.common.results_common_pb2 import ListResultsRequest
from armonik.protogen.common.tasks_common_pb2 import ListTasksRequest

from armonik_core.adapters.state import sqlite_schema as schema
from armonik_core.adapters.state.sqlite import SqliteStateStore, listing_statements
from armonik_core.control_plane import filters
from armonik_core.domain.filters import ListQuery


@pytest.fixture
async def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    store = SqliteStateStore(tmp_path / "state.db", synchronous="NORMAL")
    yield store
    await store.close()


def task_query(flt: SdkFilter, sort: SdkFilter = Task.id, direction: int = Direction.ASC) -> ListQuery:
    """The query the control plane builds from the SDK's `list_tasks(flt, sort_field=..., ...)` request."""
    request = ListTasksRequest(
        filters=flt.to_message(), sort=ListTasksRequest.Sort(field=sort.field, direction=direction)
    )
    return ListQuery(
        filters.task_filter(request.filters), filters.task_sort(request.sort.field, request.sort.direction)
    )


def result_query(flt: SdkFilter, direction: int = Direction.ASC) -> ListQuery:
    request = ListResultsRequest(
        filters=flt.to_message(), sort=ListResultsRequest.Sort(field=Result.status.field, direction=direction)
    )
    return ListQuery(
        filters.result_filter(request.filters),
        filters.result_sort(request.sort.field, request.sort.direction),
    )


def plans(
    store: SqliteStateStore, table: str, columns: tuple[str, ...], query: ListQuery
) -> tuple[str, str, str]:
    """The plans of the count, of the page at its OFFSET, and of the page read after a known row (the
    next page of a client paging through the listing; empty when the sort allows none)."""
    listing = listing_statements(table, columns, query)
    conn = store._engine._reader()  # the store's own connection: its schema and indexes

    def plan(sql: str, params: tuple[object, ...]) -> str:
        return " | ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))

    after = ""
    if listing.keyset is not None:
        after = plan(listing.keyset.after, (*listing.params, *[0] * listing.keyset.width))
    return plan(listing.count, listing.params), plan(listing.select, listing.params), after


@pytest.mark.parametrize("direction", [Direction.ASC, Direction.DESC])
async def test_a_sessions_tasks_by_id_walk_an_index(store: SqliteStateStore, direction: int) -> None:
    count, select, after = plans(
        store, "tasks", schema.TASK_COLUMNS, task_query(Task.session_id == "s", direction=direction)
    )
    assert "SCAN" not in count and "(session_id=?)" in count
    assert "SEARCH tasks USING INDEX tasks_session_task (session_id=?)" in select
    assert "TEMP B-TREE" not in select
    # The next page starts in the index where the last one ended.
    assert "SEARCH tasks USING INDEX tasks_session_task (session_id=? AND task_id" in after
    assert "TEMP B-TREE" not in after


async def test_a_sessions_tasks_of_one_status_are_found_on_an_index(store: SqliteStateStore) -> None:
    """Not by walking the session in id order to find the few in error."""
    query = task_query((Task.session_id == "s") & (Task.status == TaskStatus.ERROR))
    count, select, _ = plans(store, "tasks", schema.TASK_COLUMNS, query)
    assert "COVERING INDEX tasks_session_status_task (session_id=? AND status=?)" in count
    assert "INDEX tasks_session_status_task (session_id=? AND status=?)" in select
    assert "TEMP B-TREE" not in select


async def test_one_task_by_id_is_a_lookup(store: SqliteStateStore) -> None:
    count, select, _ = plans(store, "tasks", schema.TASK_COLUMNS, task_query(Task.id == "t"))
    assert "(task_id=?)" in count and "(task_id=?)" in select
    assert "SCAN" not in count + select


@pytest.mark.parametrize("direction", [Direction.ASC, Direction.DESC])
async def test_a_sessions_results_by_status_walk_an_index(store: SqliteStateStore, direction: int) -> None:
    query = result_query(Result.session_id == "s", direction)
    count, select, after = plans(store, "results", schema.RESULT_COLUMNS, query)
    assert "SCAN" not in count
    assert "SEARCH results USING INDEX results_session_status_result (session_id=?)" in select
    assert "TEMP B-TREE" not in select
    assert "SEARCH results USING INDEX results_session_status_result (session_id=? AND" in after
    assert "TEMP B-TREE" not in after
