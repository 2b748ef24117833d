"""Where the SQLite state store commits: on the event loop (NORMAL) or on its writer thread (FULL)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from armonik_core.adapters.state.sqlite_engine import (
    CHECKPOINTER_CACHE_KIB,
    MAX_GROUP,
    READER_CACHE_KIB,
    WRITER_CACHE_KIB,
    SqliteEngine,
    WriteUnit,
)
from armonik_core.domain.changes import Change
from armonik_core.domain.statuses import EventType


class Engine:
    """An engine on a one-table database, and the changes each of its commits announced."""

    def __init__(self, folder: Path, synchronous: str) -> None:
        self.commits: list[list[str]] = []
        self.engine = SqliteEngine(
            folder / "db.sqlite",
            on_commit=lambda changes: self.commits.append([c.entity_id for c in changes]),
            synchronous=synchronous,
        )
        self.engine.run_setup("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")


@pytest.fixture
def inline(tmp_path: Path) -> Iterator[Engine]:
    db = Engine(tmp_path, "NORMAL")
    yield db
    db.engine.close()


def insert(value: str, fail: bool = False) -> WriteUnit[int]:
    """A unit that inserts `value`, announces it, and returns the thread it ran on (or raises)."""

    def unit(conn: sqlite3.Connection, changes: list[Change]) -> int:
        conn.execute("INSERT INTO t (v) VALUES (?)", (value,))
        changes.append(Change(EventType.NEW_RESULT, "session", value))
        if fail:
            raise ValueError("refused")
        return threading.get_ident()

    return unit


def values(conn: sqlite3.Connection) -> list[str]:
    return [row[0] for row in conn.execute("SELECT v FROM t ORDER BY k")]


@pytest.mark.parametrize(("synchronous", "on_loop"), [("NORMAL", True), ("OFF", True), ("FULL", False)])
async def test_commits_run_on_the_loop_only_without_fsync(
    tmp_path: Path, synchronous: str, on_loop: bool
) -> None:
    db = Engine(tmp_path, synchronous)
    try:
        assert db.engine.inline is on_loop
        ran_on = await db.engine.write(insert("x"))
        assert (ran_on == threading.get_ident()) is on_loop
        assert await db.engine.read(values) == ["x"]
    finally:
        db.engine.close()


async def test_units_of_one_turn_share_a_commit_and_fail_alone(inline: Engine) -> None:
    units = [insert("a"), insert("bad", fail=True), insert("b"), insert("c")]
    outcomes = await asyncio.gather(*(inline.engine.write(u) for u in units), return_exceptions=True)
    assert [isinstance(o, ValueError) for o in outcomes] == [False, True, False, False]
    # One commit for the four units of this turn of the loop, without the unit that failed.
    assert inline.commits == [["a", "b", "c"]]
    assert await inline.engine.lookup(values) == ["a", "b", "c"]


async def test_more_units_than_a_group_holds_are_all_committed(inline: Engine) -> None:
    count = 2 * MAX_GROUP + 3
    await asyncio.gather(*(inline.engine.write(insert(str(i))) for i in range(count)))
    assert [len(group) for group in inline.commits] == [MAX_GROUP, MAX_GROUP, 3]
    assert len(await inline.engine.read(values)) == count


async def test_small_lookups_run_on_the_loop_and_large_ones_on_the_readers(inline: Engine) -> None:
    await inline.engine.write(insert("one"))

    def where(conn: sqlite3.Connection) -> tuple[list[str], int]:
        return values(conn), threading.get_ident()

    assert await inline.engine.lookup(where) == (["one"], threading.get_ident())
    found, thread = await inline.engine.lookup(where, keys=10_000)
    assert found == ["one"] and thread != threading.get_ident()


async def test_a_long_unit_runs_off_the_loop_and_writes_wait_behind_it(inline: Engine) -> None:
    """A unit over a whole session may take seconds: the loop keeps answering lookups (lease renewals are
    served meanwhile), and writes submitted during it are committed after it, in order."""
    engine = inline.engine
    started, release = threading.Event(), threading.Event()
    loop_thread = threading.get_ident()

    def long_unit(conn: sqlite3.Connection, changes: list[Change]) -> int:
        started.set()
        assert release.wait(10)
        conn.execute("INSERT INTO t (v) VALUES ('long')")
        changes.append(Change(EventType.NEW_RESULT, "session", "long"))
        return threading.get_ident()

    before = asyncio.ensure_future(engine.write(insert("before")))
    long_write = asyncio.ensure_future(engine.write_long(long_unit))
    while not started.is_set():
        await asyncio.sleep(0.001)
    after = asyncio.ensure_future(engine.write(insert("after")))
    assert await engine.lookup(values) == ["before"]  # the loop is free, and sees what is committed
    await asyncio.sleep(0.05)
    assert not after.done()  # waits for the long unit
    release.set()
    assert await long_write != loop_thread
    await asyncio.gather(before, after)
    assert await engine.read(values) == ["before", "long", "after"]
    assert inline.commits == [["before"], ["long"], ["after"]]


async def test_a_long_unit_that_fails_changes_nothing(inline: Engine) -> None:
    with pytest.raises(ValueError, match="refused"):
        await inline.engine.write_long(insert("long", fail=True))
    await inline.engine.write(insert("next"))
    assert await inline.engine.read(values) == ["next"]
    assert inline.commits == [["next"]]


async def test_a_long_unit_on_the_writer_thread_is_an_ordinary_write(tmp_path: Path) -> None:
    db = Engine(tmp_path, "FULL")
    try:
        await db.engine.write_long(insert("long"))
        assert await db.engine.read(values) == ["long"]
    finally:
        db.engine.close()


async def test_a_long_unit_whose_caller_gives_up_still_commits(inline: Engine) -> None:
    """The connection is the unit's thread's until it ends: a cancelled caller neither interrupts it nor lets
    other writes use the connection meanwhile."""
    started, release = threading.Event(), threading.Event()

    def long_unit(conn: sqlite3.Connection, changes: list[Change]) -> None:
        started.set()
        assert release.wait(10)
        conn.execute("INSERT INTO t (v) VALUES ('long')")

    caller = asyncio.ensure_future(inline.engine.write_long(long_unit))
    while not started.is_set():
        await asyncio.sleep(0.001)
    caller.cancel()
    after = asyncio.ensure_future(inline.engine.write(insert("after")))
    await asyncio.sleep(0.02)
    assert not after.done()
    release.set()
    await after
    assert caller.cancelled()
    assert await inline.engine.read(values) == ["long", "after"]


def page_units(count: int) -> list[WriteUnit[int]]:
    """Units that write a page of data each."""
    return [insert(f"{i:06d}" + "x" * 4090) for i in range(count)]


async def test_commits_on_the_loop_never_checkpoint(tmp_path: Path) -> None:
    """A checkpoint copies the log into the database file and syncs both: 5 to 29 ms that the event loop
    would spend blocked. Past the 1,000 pages after which SQLite checkpoints by itself in the committing
    connection, the database file still holds nothing of the data when the checkpointer has not run."""
    db = SqliteEngine(
        tmp_path / "db.sqlite", on_commit=lambda _: None, synchronous="NORMAL", checkpoint_seconds=3600
    )
    try:
        db.run_setup("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
        before = (tmp_path / "db.sqlite").stat().st_size
        for _ in range(15):
            await asyncio.gather(*(db.write(unit) for unit in page_units(100)))
        assert (tmp_path / "db.sqlite").stat().st_size == before
        assert (tmp_path / "db.sqlite-wal").stat().st_size > 1500 * 4096
        assert len(await db.read(values)) == 1500
    finally:
        db.close()


async def test_the_checkpointer_copies_the_log_into_the_database_in_the_background(tmp_path: Path) -> None:
    db = SqliteEngine(
        tmp_path / "db.sqlite", on_commit=lambda _: None, synchronous="NORMAL", checkpoint_seconds=0.05
    )
    try:
        db.run_setup("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
        await asyncio.gather(*(db.write(unit) for unit in page_units(300)))
        deadline = asyncio.get_running_loop().time() + 5
        while (tmp_path / "db.sqlite").stat().st_size < 300 * 4096:
            assert asyncio.get_running_loop().time() < deadline, "the log was not checkpointed"
            await asyncio.sleep(0.02)
        # The log is reused from its start once checkpointed: it stops growing under a steady flow of writes.
        for _ in range(5):
            await asyncio.gather(*(db.write(unit) for unit in page_units(300)))
            await asyncio.sleep(0.2)
        assert (tmp_path / "db.sqlite-wal").stat().st_size < 1200 * 4096
        assert len(await db.read(values)) == 1800
    finally:
        db.close()


async def test_page_caches_are_bounded_per_connection(inline: Engine) -> None:
    """A connection's cache stays full once it has read that much: with a million tasks, the sizes the
    writer, a reader and the checkpointer keep add up to what the control plane's memory holds for SQLite."""
    engine = inline.engine

    def cache_size(conn: sqlite3.Connection) -> int:
        return int(conn.execute("PRAGMA cache_size").fetchone()[0])

    assert await engine.write(lambda conn, changes: cache_size(conn)) == -WRITER_CACHE_KIB
    assert await engine.read(cache_size) == -READER_CACHE_KIB
    assert engine._checkpointer is not None
    assert cache_size(engine._checkpointer._conn) == -CHECKPOINTER_CACHE_KIB
    assert WRITER_CACHE_KIB + 2 * READER_CACHE_KIB + CHECKPOINTER_CACHE_KIB <= 48 * 1024
