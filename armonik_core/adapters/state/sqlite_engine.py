"""Threads and connections behind the SQLite state store.

SQLite allows one writer at a time. Rather than let concurrent requests contend for the lock (and pay one
fsync each), every write goes through one writer thread that drains whatever units of work are waiting and
commits them together: one transaction, one fsync, many requests (group commit). Each unit runs inside its
own savepoint, so a unit that raises is rolled back alone and its caller gets the error. Reads run on a
small pool of reader threads with their own connections, which WAL mode lets proceed during writes.

When commits do not wait for the disk (`synchronous` OFF or NORMAL: a commit appends to the write-ahead log
and returns in microseconds), the writer thread costs more than it saves: two thread hops per unit (to the
writer, and back through the event loop's self-pipe) and the GIL passed back and forth, which at a few
thousand units a second were a tenth of the control plane's CPU and half a millisecond of every task's round
trip. The units are then committed on the event loop itself, still grouped: every unit submitted during one
turn of the loop shares one transaction, run by a callback scheduled at the first of them. With FULL or
EXTRA, a commit includes an fsync, which must not stall the loop: the writer thread is used.

Checkpoints (copying the write-ahead log back into the database file) have the same concern. SQLite runs one
by itself in the connection that commits, once the log holds 1,000 pages: with commits on the event loop,
that was a pause of 5 to 29 ms (page copies and two fsyncs) every few hundred tasks, 0.47 s of an 11 s
benchmark run in all, during which no request, agent or event was served. In inline mode the writer's
automatic checkpoints are off and a checkpointer thread, with its own connection, checkpoints a few times a
second whenever something was committed (PASSIVE: it never blocks a writer, and sqlite3 releases the GIL while
it copies and syncs).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from armonik_core.domain.changes import Change

T = TypeVar("T")

log = logging.getLogger("armonik.state")

#: A unit of work: runs on the writer thread inside a savepoint; appends its changes to the list.
WriteUnit = Callable[[sqlite3.Connection, list[Change]], T]

MAX_GROUP = 256
#: Reads of at most this many keys run on the event loop in inline mode (see `SqliteEngine.lookup`).
INLINE_LOOKUP_KEYS = 64
#: How often the checkpointer looks for commits to checkpoint, in inline mode (see the module's docstring).
CHECKPOINT_SECONDS = 0.25


class StateConnection(sqlite3.Connection):
    """A connection that knows whether ready tasks go through the outbox (see `SqliteStateStore`)."""

    outbox: bool = True


#: Page cache of each connection, in KiB. SQLite keeps a connection's cache full once it has read that much, and
#: a control plane with a million tasks reads that much: at 64 MiB for each of the four connections the caches
#: were half of its memory. The writer's pages are the ends of the tables and indexes (ids are time-ordered,
#: see `armonik_core.ids`) and the few a transaction touches; a reader's are what one query reads; the
#: checkpointer copies the log into the database without going through its cache.
WRITER_CACHE_KIB = 16384
READER_CACHE_KIB = 8192
CHECKPOINTER_CACHE_KIB = 1024


def connect(
    path: Path, synchronous: str, outbox: bool = True, cache_kib: int = READER_CACHE_KIB
) -> StateConnection:
    conn = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=30.0, factory=StateConnection
    )
    conn.outbox = outbox
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA foreign_keys=OFF")
    conn.execute(f"PRAGMA cache_size=-{int(cache_kib)}")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


@dataclass(slots=True)
class _Job(Generic[T]):
    unit: WriteUnit[T]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[T]


class SqliteEngine:
    """Owns the writer thread and the reader pool of one database file."""

    def __init__(
        self,
        path: Path,
        on_commit: Callable[[list[Change]], None],
        synchronous: str = "FULL",
        readers: int = 2,
        outbox: bool = True,
        checkpoint_seconds: float = CHECKPOINT_SECONDS,
    ) -> None:
        self._path = path
        self._synchronous = synchronous
        self._on_commit = on_commit
        self._jobs: queue.SimpleQueue[_Job[Any] | None] = queue.SimpleQueue()
        self._writer_conn = connect(path, synchronous, outbox, WRITER_CACHE_KIB)
        self._writer = threading.Thread(target=self._write_loop, name="sqlite-writer", daemon=True)
        self._reader_local = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._reader_lock = threading.Lock()
        self._readers = ThreadPoolExecutor(max_workers=readers, thread_name_prefix="sqlite-reader")
        self._closed = False
        #: Commit on the event loop (no fsync per commit) rather than on the writer thread.
        self._inline = synchronous.upper() in ("OFF", "NORMAL")
        #: Units waiting for the loop's next group commit, per event loop (inline mode).
        self._pending: dict[asyncio.AbstractEventLoop, list[_Job[Any]]] = {}
        #: Set while a long unit holds the writer's connection on a thread (inline mode): group commits and
        #: on-loop lookups wait, or go to the readers, until it is done.
        self._long_unit: asyncio.Future[None] | None = None
        self._generation = 0
        self._checkpointer: _Checkpointer | None = None
        if self._inline:
            self._writer_conn.execute("PRAGMA wal_autocheckpoint=0")
            self._checkpointer = _Checkpointer(
                path, synchronous, lambda: self._generation, checkpoint_seconds
            )
        else:
            self._writer.start()

    @property
    def generation(self) -> int:
        """Moves before and after every commit: a read started and ended at the same generation saw the
        database as it still is (the engine is the database's only writer)."""
        return self._generation

    @property
    def inline(self) -> bool:
        """True when units are committed on the event loop (see the module's docstring)."""
        return self._inline

    # -- writes ------------------------------------------------------------------------------------------
    def run_setup(self, script: str) -> None:
        """Run DDL synchronously before the engine serves anything."""
        self._writer_conn.executescript(script)

    async def write(self, unit: WriteUnit[T]) -> T:
        if self._closed:
            raise RuntimeError("the state store is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        job = _Job(unit, loop, future)
        if self._inline:
            pending = self._pending.get(loop)
            if pending is None:
                self._pending[loop] = [job]
                loop.call_soon(self._commit_pending, loop)
            else:
                pending.append(job)
        else:
            self._jobs.put(job)
        return await future

    async def write_long(self, unit: WriteUnit[T]) -> T:
        """A unit that may run for seconds (it moves a whole session's tasks): in inline mode it runs on a
        thread, still in one transaction, so that the event loop goes on serving reads and lease renewals;
        a loop blocked that long would let leases run out and give running tasks to other agents. Writes
        submitted meanwhile are committed after it, in order. On the writer thread it is an ordinary write."""
        if not self._inline:
            return await self.write(unit)
        if self._closed:
            raise RuntimeError("the state store is closed")
        loop = asyncio.get_running_loop()
        await self.idle()
        if loop in self._pending:  # submitted before this unit: committed before it
            self._commit_pending(loop)
        job: _Job[T] = _Job(unit, loop, loop.create_future())
        self._long_unit = loop.create_future()
        work = asyncio.ensure_future(asyncio.to_thread(self._run_group, [job]))
        work.add_done_callback(lambda done: self._end_long_unit(job, done))
        # A caller cancelled meanwhile leaves the unit to end (and commit) on its thread: the connection is
        # the thread's until then.
        await asyncio.shield(work)
        return await job.future

    def _end_long_unit(self, job: _Job[Any], work: asyncio.Future[Any]) -> None:
        long_unit, self._long_unit = self._long_unit, None
        if long_unit is not None:
            long_unit.set_result(None)
        if work.cancelled() or work.exception() is not None:
            _settle(job.future, False, work.exception() or RuntimeError("the unit was not run"))
        else:
            self._settle_all(*work.result())
        for waiting in list(self._pending):  # the group commits held back meanwhile
            waiting.call_soon(self._commit_pending, waiting)

    async def idle(self) -> None:
        """Until no long unit runs (before closing)."""
        while self._long_unit is not None:
            await asyncio.shield(self._long_unit)

    def _commit_pending(self, loop: asyncio.AbstractEventLoop) -> None:
        """On the event loop: commit what this turn of the loop submitted, in groups of at most MAX_GROUP."""
        if self._long_unit is not None:
            return  # the long unit's end schedules this again
        batch = self._pending.pop(loop, [])
        for start in range(0, len(batch), MAX_GROUP):
            group = batch[start : start + MAX_GROUP]
            self._settle_all(*self._run_group(group))

    def _write_loop(self) -> None:
        while True:
            first = self._jobs.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < MAX_GROUP:
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    self._jobs.put(None)
                    break
                batch.append(job)
            self._commit_group(batch)

    def _commit_group(self, batch: list[_Job[Any]]) -> None:
        """On the writer thread: run the group, then hand the outcomes to the callers' event loops."""
        outcomes, changes = self._run_group(batch)
        # One wake-up of the event loop per group, not one per unit: each wake-up is a write to the loop's
        # self-pipe, a system call that cost more than the units themselves at a few thousand units a second.
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Job[Any], bool, Any]]] = {}
        for outcome in outcomes:
            by_loop.setdefault(outcome[0].loop, []).append(outcome)
        for loop, settled in by_loop.items():
            committed = changes if loop is batch[0].loop else []
            loop.call_soon_threadsafe(self._settle_all, settled, committed)

    def _run_group(self, batch: list[_Job[Any]]) -> tuple[list[tuple[_Job[Any], bool, Any]], list[Change]]:
        """One transaction for the units of `batch`, each in its own savepoint: (outcome per unit, changes)."""
        conn = self._writer_conn
        outcomes: list[tuple[_Job[Any], bool, Any]] = []
        changes: list[Change] = []
        self._generation += 1
        try:
            conn.execute("BEGIN IMMEDIATE")
            for job in batch:
                unit_changes: list[Change] = []
                conn.execute("SAVEPOINT unit")
                try:
                    value = job.unit(conn, unit_changes)
                except BaseException as exc:  # the unit's error goes to its caller
                    conn.execute("ROLLBACK TO unit")
                    conn.execute("RELEASE unit")
                    outcomes.append((job, False, exc))
                    continue
                conn.execute("RELEASE unit")
                changes.extend(unit_changes)
                outcomes.append((job, True, value))
            conn.execute("COMMIT")
        except BaseException as exc:  # the commit itself failed: every unit fails with it
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            outcomes = [(job, False, exc) for job in batch]
            changes = []
        finally:
            self._generation += 1
        return outcomes, changes

    def _settle_all(self, settled: list[tuple[_Job[Any], bool, Any]], changes: list[Change]) -> None:
        """On the event loop: changes are announced before callers resume, as when each had its own call."""
        try:
            if changes:
                self._on_commit(changes)
        finally:
            for job, ok, value in settled:
                _settle(job.future, ok, value)

    # -- reads -------------------------------------------------------------------------------------------
    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._reader_local, "conn", None)
        if conn is None:
            conn = connect(self._path, self._synchronous)
            self._reader_local.conn = conn
            with self._reader_lock:
                self._reader_conns.append(conn)
        return conn

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise RuntimeError("the state store is closed")

        def run() -> T:
            return _in_read_transaction(self._reader(), fn)

        return await asyncio.get_running_loop().run_in_executor(self._readers, run)

    async def lookup(self, fn: Callable[[sqlite3.Connection], T], keys: int = 1) -> T:
        """A read of a few rows by key (`keys` of them): in inline mode it runs on the event loop, on the
        writer's connection, which holds no open transaction between two turns of the loop and so sees what
        is committed, as a reader would; a thread hop would cost more than the read. Larger reads, and every
        read in thread mode, go to the reader pool."""
        if not self._inline or keys > INLINE_LOOKUP_KEYS or self._long_unit is not None:
            return await self.read(fn)
        if self._closed:
            raise RuntimeError("the state store is closed")
        return _in_read_transaction(self._writer_conn, fn)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for loop in list(self._pending):  # units already submitted are committed, not dropped
            self._commit_pending(loop)
        if self._writer.is_alive():
            self._jobs.put(None)
            self._writer.join()
        if self._checkpointer is not None:
            self._checkpointer.close()
        self._readers.shutdown(wait=True)
        self._writer_conn.close()
        with self._reader_lock:
            for conn in self._reader_conns:
                conn.close()


class _Checkpointer:
    """Checkpoints the database on its own thread and connection whenever commits happened since the last
    look, every `interval` seconds (see the module's docstring)."""

    def __init__(
        self,
        path: Path,
        synchronous: str,
        generation: Callable[[], int],
        interval: float,
    ) -> None:
        self._conn = connect(path, synchronous, cache_kib=CHECKPOINTER_CACHE_KIB)
        self._generation = generation
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpointer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        seen = self._generation()
        while not self._stop.wait(self._interval):
            now = self._generation()
            if now == seen:
                continue
            seen = now
            try:
                self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error as exc:
                # The next look tries again; the log grows meanwhile, and nothing is lost.
                log.warning("could not checkpoint the state database: %s", exc)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._conn.close()


def _in_read_transaction(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """`fn` in one transaction: every query it makes sees the same committed state."""
    conn.execute("BEGIN")
    try:
        return fn(conn)
    finally:
        conn.execute("COMMIT")


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.cancelled():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)
