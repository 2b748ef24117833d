"""Paging through a listing of the SQLite store: every row once, in order, however the pages are read.

A page that follows the one a client just read, with nothing committed in between, is read from where the
previous one ended and reuses its total (`sqlite_paging`); the statements the store runs are traced to
see that it does, and the answers are compared with those of the plain OFFSET and COUNT statements."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from armonik_core.adapters.state import sqlite_schema as schema
from armonik_core.adapters.state.sqlite import SqliteStateStore, listing_statements
from armonik_core.adapters.state.sqlite_paging import PagingCache
from armonik_core.domain.filters import Condition, FieldKind, FieldRef, Filter, ListQuery, Op, SortKey
from armonik_core.domain.options import TaskOptions
from armonik_core.domain.records import Partition, Result, Session, Task
from armonik_core.domain.statuses import ResultStatus, SessionStatus, TaskStatus

SESSIONS = ("session-a", "session-b")


def in_session(session_id: str) -> Filter:
    return Filter.of([Condition(FieldRef("session_id"), FieldKind.STRING, Op.EQ, session_id)])


def sort(*paths: str, descending: bool = False) -> tuple[SortKey, ...]:
    return tuple(SortKey(FieldRef(path), descending) for path in paths)


def task(session_id: str, payload: str, output: str, created_at: float) -> Task:
    task_id = str(uuid.uuid4())  # random ids: the id order is not the insertion order
    return Task(
        task_id,
        session_id,
        TaskStatus.CREATING,
        TaskOptions(partition_id="default"),
        payload,
        created_at,
        [output],
        [],
        [session_id],
        initial_task_id=task_id,
    )


async def add_tasks(store: SqliteStateStore, session_id: str, count: int, payload: str) -> None:
    # Few distinct creation times: many rows tie on the first sort column and only the id separates them.
    stamps = [1000.0 + random.randrange(5) for _ in range(count)]
    outputs = [Result(str(uuid.uuid4()), session_id, "out", ResultStatus.CREATED, 1.0) for _ in range(count)]
    await store.create_results(session_id, outputs)
    await store.submit_tasks(
        session_id,
        [task(session_id, payload, out.result_id, stamp) for out, stamp in zip(outputs, stamps, strict=True)],
    )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStateStore]:
    random.seed(7)
    store = SqliteStateStore(tmp_path / "state.db", synchronous="NORMAL")
    await store.upsert_partitions([Partition("default")])
    for session_id in SESSIONS:
        await store.create_session(
            Session(session_id, SessionStatus.RUNNING, ["default"], TaskOptions(partition_id="default"), 1.0)
        )
    payloads = {}
    for session_id in SESSIONS:
        payload = Result(str(uuid.uuid4()), session_id, "payload", ResultStatus.COMPLETED, time.time())
        await store.create_results(session_id, [payload])
        payloads[session_id] = payload.result_id
    await add_tasks(store, "session-a", 1050, payloads["session-a"])
    await add_tasks(store, "session-b", 300, payloads["session-b"])
    store.payloads = payloads  # type: ignore[attr-defined]
    yield store
    await store.close()


class Trace:
    """The statements the store's reader connections run."""

    def __init__(self, store: SqliteStateStore) -> None:
        self.statements: list[str] = []
        self._store = store

    async def __aenter__(self) -> Trace:
        # Open every reader connection of the pool (one per thread), each kept busy so the next read
        # needs another thread, then trace them all.
        def hold(conn: sqlite3.Connection) -> None:
            time.sleep(0.05)

        engine = self._store._engine
        await asyncio.gather(*(engine.read(hold) for _ in range(4)))
        for conn in engine._reader_conns:
            conn.set_trace_callback(self._record)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        for conn in self._store._engine._reader_conns:
            conn.set_trace_callback(None)

    def _record(self, statement: str) -> None:
        self.statements.append(statement)

    def take(self) -> list[str]:
        taken, self.statements = self.statements, []
        return taken


def expected(store: SqliteStateStore, query: ListQuery) -> tuple[int, list[str]]:
    """The page by the plain COUNT and OFFSET statements."""
    listing = listing_statements("tasks", schema.TASK_COLUMNS, query)
    conn = store._engine._reader()
    total = conn.execute(listing.count, listing.params).fetchone()[0]
    return total, [row["task_id"] for row in conn.execute(listing.select, listing.params)]


async def read_all(store: SqliteStateStore, flt: Filter, keys: tuple[SortKey, ...], size: int) -> list[str]:
    ids: list[str] = []
    page = 0
    while True:
        query = ListQuery(flt, keys, page, size)
        total, tasks = await store.list_tasks(query)
        assert (total, [t.task_id for t in tasks]) == expected(store, query), f"page {page}"
        if not tasks:
            return ids
        ids += [t.task_id for t in tasks]
        page += 1


@pytest.mark.parametrize(
    "keys",
    [
        sort("task_id"),
        sort("task_id", descending=True),
        sort("created_at", "task_id"),
        sort("created_at", "task_id", descending=True),
        sort("status", "task_id"),
    ],
    ids=["id", "id-desc", "created-id", "created-id-desc", "status-id"],
)
async def test_page_after_page_gives_every_row_once_in_order(
    store: SqliteStateStore, keys: tuple[SortKey, ...]
) -> None:
    ids = await read_all(store, in_session("session-a"), keys, 100)
    assert len(ids) == len(set(ids)) == 1050
    everything = await store.list_tasks(ListQuery(in_session("session-a"), keys, 0, 5000))
    assert ids == [t.task_id for t in everything[1]]


async def test_the_next_page_starts_where_the_last_ended_and_keeps_its_total(store: SqliteStateStore) -> None:
    keys = sort("task_id")
    async with Trace(store) as trace:
        first = await store.list_tasks(ListQuery(in_session("session-a"), keys, 0, 100))
        statements = trace.take()
        assert any("COUNT(*)" in s for s in statements) and any("OFFSET 0" in s for s in statements)
        second = await store.list_tasks(ListQuery(in_session("session-a"), keys, 1, 100))
        statements = trace.take()
        assert not any("COUNT(*)" in s for s in statements), statements
        assert not any("OFFSET" in s for s in statements), statements
        assert any("AND task_id > " in s for s in statements), statements
        assert first[0] == second[0] == 1050
        # A page asked out of order (not the one after the last read) is read at its OFFSET.
        await store.list_tasks(ListQuery(in_session("session-a"), keys, 7, 100))
        got = trace.take()
        assert any("OFFSET 700" in s for s in got), got
        # Another page size is another listing.
        await store.list_tasks(ListQuery(in_session("session-a"), keys, 2, 50))
        assert any("COUNT(*)" in s for s in trace.take())


async def test_a_commit_between_two_pages_is_seen_by_the_next(store: SqliteStateStore) -> None:
    keys = sort("task_id")
    flt = in_session("session-a")
    async with Trace(store) as trace:
        await store.list_tasks(ListQuery(flt, keys, 0, 100))
        await add_tasks(store, "session-a", 20, store.payloads["session-a"])  # type: ignore[attr-defined]
        trace.take()
        query = ListQuery(flt, keys, 1, 100)
        total, tasks = await store.list_tasks(query)
        statements = trace.take()
    assert any("COUNT(*)" in s for s in statements) and any("OFFSET 100" in s for s in statements)
    assert total == 1070
    assert (total, [t.task_id for t in tasks]) == expected(store, query)


async def test_a_sort_on_a_column_that_may_be_unset_is_read_at_its_offset(store: SqliteStateStore) -> None:
    keys = sort("ended_at", "task_id")  # NULL for every task here: a row value could not resume after one
    assert listing_statements("tasks", schema.TASK_COLUMNS, ListQuery(in_session("s"), keys)).keyset is None
    ids = await read_all(store, in_session("session-a"), keys, 100)
    assert len(set(ids)) == 1050


def test_what_a_page_read_during_a_commit_taught_is_not_kept() -> None:
    cache = PagingCache()
    cache.remember(4, 6, "listing", 10, 0, ("last",))  # asked at 4, answered when the generation was 6
    assert cache.total(6, "listing") is None and cache.start_after(6, "listing", 1) is None
    cache.remember(6, 6, "listing", 10, 0, ("last",))
    assert cache.total(6, "listing") == 10 and cache.start_after(6, "listing", 1) == ("last",)
    assert cache.start_after(6, "listing", 2) is None
    assert cache.total(8, "listing") is None, "a commit since: nothing holds"


def test_the_cache_starts_again_when_full() -> None:
    cache = PagingCache(capacity=4)
    for n in range(10):
        cache.remember(1, 1, f"listing-{n}", n, 0, None)
    assert cache.total(1, "listing-9") == 9
    assert sum(cache.total(1, f"listing-{n}") is not None for n in range(10)) <= 4


def test_columns_that_are_never_unset_come_from_the_schema() -> None:
    conn = sqlite3.connect(":memory:")
    conn.executescript(schema.DDL)
    for table, column in schema.ID_COLUMNS.items():
        declared = {row[1]: bool(row[3] or row[5]) for row in conn.execute(f"PRAGMA table_info({table})")}
        assert column in schema.NON_NULL_COLUMNS[table]
        assert schema.NON_NULL_COLUMNS[table] == {name for name, never in declared.items() if never}
    assert "ended_at" not in schema.NON_NULL_COLUMNS["tasks"]
