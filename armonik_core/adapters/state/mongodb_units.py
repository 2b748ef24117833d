"""The MongoDB state store's connection and the running of its units of work (see `MongoUnits`)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from pymongo import MongoClient
from pymongo.client_session import ClientSession
from pymongo.database import Database
from pymongo.errors import ConnectionFailure, OperationFailure, PyMongoError
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

from armonik_core.adapters.state import common
from armonik_core.adapters.state import mongodb_schema as schema
from armonik_core.adapters.state.mongodb_db import (
    _RESULT_PROJECTION,
    Document,
    _Db,
)
from armonik_core.adapters.state.mongodb_filters import (
    FieldMap,
    compile_filter,
    compile_sort,
)
from armonik_core.adapters.state.mongodb_settings import (
    MongoSettings,
    MongoStateError,
    MongoStateUnavailable,
)
from armonik_core.domain.changes import Change
from armonik_core.domain.filters import ListQuery

T = TypeVar("T")
Clock = Callable[[], float]


class MongoUnits(common.ChangeFeedStore):
    """The MongoDB store's connection and the running of its units of work: one writer thread, in order,
    reads on a small pool, each unit in a transaction when the server has them; and the generic listing.

    A base of `MongoStateStore` (with `MongoComputePlane`), so that the store's operations, grouped by who
    calls them, share one way of running units of work."""

    def __init__(
        self,
        client: MongoClient[Document] | Any | None = None,
        *,
        settings: MongoSettings | None = None,
        database: str | None = None,
        clock: Clock = time.time,
        outbox: bool = True,
        transactions: bool | None = None,
        readers: int = 2,
    ) -> None:
        """`client`: an existing client (`mongomock.MongoClient()` in tests), else one made from `settings`.
        `transactions`: run each unit in a transaction; None detects whether the server supports them.
        `outbox=False` when the queue is rebuilt from the SUBMITTED tasks (see `SqliteStateStore`)."""
        super().__init__()
        self._settings = settings or MongoSettings()
        self._owns_client = client is None
        self._client = client if client is not None else self._settings.connect()
        name = database or (
            self._settings.database(self._client) if self._owns_client else self._settings.database_name
        )
        self._database: Database[Document] = self._client[name]
        self._address = (
            self._settings.address if self._owns_client else f"{type(self._client).__module__} client"
        )
        majority = WriteConcern(w="majority")
        self._collections = {
            n: self._database.get_collection(n, write_concern=majority)
            for n in (schema.TASKS, schema.RESULTS, schema.SESSIONS, schema.PARTITIONS, schema.OUTBOX)
        }
        self._clock = clock
        self._outbox = outbox
        self._transactions = transactions
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mongodb-writer")
        self._readers = ThreadPoolExecutor(max_workers=max(1, readers), thread_name_prefix="mongodb-reader")
        self._setup_lock = threading.Lock()
        self._ready = False
        self._closed = False

    # -- running units of work ---------------------------------------------------------------------------
    def _setup(self) -> None:
        """Indexes (idempotent) and whether transactions are possible, once, before the first unit of work."""
        with self._setup_lock:
            if self._ready:
                return
            for name, collection in self._collections.items():
                models = schema.index_models(name)
                if models:
                    collection.create_indexes(models)
            if self._transactions is None:
                self._transactions = self._server_has_transactions()
            self._ready = True

    def _server_has_transactions(self) -> bool:
        try:
            hello = self._client.admin.command("hello")
        except (NotImplementedError, OperationFailure):  # mongomock; a server too old to say hello
            return False
        return bool(hello.get("setName")) or hello.get("msg") == "isdbgrid"

    def _db(self, session: ClientSession | None = None) -> _Db:
        return _Db(self._collections, session, self._outbox)

    def _run_unit(self, unit: Callable[[_Db, list[Change]], T], changes: list[Change]) -> T:
        if not self._transactions:
            return unit(self._db(), changes)
        with self._client.start_session() as session:

            def attempt(s: ClientSession) -> T:
                changes.clear()  # a transaction retried runs the unit again from the start
                return unit(self._db(s), changes)

            return session.with_transaction(
                attempt, read_concern=ReadConcern("snapshot"), write_concern=WriteConcern(w="majority")
            )

    async def _write(self, action: str, unit: Callable[[_Db, list[Change]], T]) -> T:
        if self._closed:
            raise RuntimeError("the state store is closed")
        loop = asyncio.get_running_loop()

        def run() -> T:
            self._setup()
            changes: list[Change] = []
            value = self._run_unit(unit, changes)
            if changes:
                loop.call_soon_threadsafe(self._dispatch, changes)
            return value

        try:
            return await loop.run_in_executor(self._writer, run)
        except PyMongoError as error:
            raise self._failure(action, error) from error

    async def _read(self, action: str, fn: Callable[[_Db], T]) -> T:
        if self._closed:
            raise RuntimeError("the state store is closed")

        def run() -> T:
            self._setup()
            return fn(self._db())

        try:
            return await asyncio.get_running_loop().run_in_executor(self._readers, run)
        except PyMongoError as error:
            raise self._failure(action, error) from error

    def _failure(self, action: str, error: PyMongoError) -> MongoStateError:
        where = f"MongoDB at {self._address} (database {self._database.name})"
        if isinstance(error, ConnectionFailure):
            return MongoStateUnavailable(f"{where} is unreachable while {action}: {error}")
        return MongoStateError(f"{where} refused {action}: {error}")

    def _now(self) -> float:
        return schema.round_time(self._clock())

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await asyncio.get_running_loop().run_in_executor(None, self._shutdown)

    def _shutdown(self) -> None:
        self._writer.shutdown(wait=True)
        self._readers.shutdown(wait=True)
        if self._owns_client:
            self._client.close()

    # -- generic listing ---------------------------------------------------------------------------------
    async def _list(
        self, name: str, fields: FieldMap, query: ListQuery, convert: Callable[[Document], T]
    ) -> tuple[int, list[T]]:
        where = compile_filter(query.filter, fields)
        order = compile_sort(query.sort, fields)
        offset, limit = common.page_window(query.page, query.page_size)
        projection = _RESULT_PROJECTION if name == schema.RESULTS else None

        def run(db: _Db) -> tuple[int, list[T]]:
            total = db.count(name, where)
            docs = db.find(name, where, projection, sort=order, skip=offset, limit=limit)
            return total, [convert(d) for d in docs]

        return await self._read(f"listing {name}", run)
