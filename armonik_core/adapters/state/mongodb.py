"""The MongoDB state store: upstream ArmoniK's collections (see `mongodb_schema`), driven with `pymongo`.

Each public method is one unit of work applying a rule of `armonik_core.domain`, exactly as the SQLite store
does; the two are held to the same contract tests. pymongo is synchronous: units of work run on one writer
thread, in order (as SQLite's writer does), and reads on a small pool, so the interface stays async and the
event loop never blocks. The change feed reports the changes of each unit that succeeded, after it.

Atomicity. On a replica set or a sharded cluster (what upstream deploys), each unit runs in one multi-document
transaction (majority write concern, snapshot reads): all or nothing, as with SQLite. Without one (a
standalone server, mongomock) there are no multi-document transactions, and the units are written so that
every state change that must be exclusive is a conditional update (compare-and-set on the status, the owner
and a claim token), and so that the last write of a unit is its commit point:

- `acquire_task` and `start_task` move a task only from the state they read (status, owner, claim): when
  two agents receive the same message, exactly one gets the task.
- `finish_task` (and the recovery of a task whose agent was lost, in `acquire_task`) first *claims* the task:
  it moves it to PROCESSED with a fresh `ClaimId`, from the state it read. Only the claimer goes on; any
  other outcome, late report or recovery for that task then finds the task changed and does nothing. Then,
  in this order: results the worker created (inserted), data it produced (results COMPLETED, only from
  CREATED), subtasks (inserted CREATING, registered as dependents of what they wait for, then given their
  outputs, owner by owner from the owner read, and only then SUBMITTED or PENDING, their outbox entries
  first), tasks waiting on the produced data (their `RemainingDataDependencies` entries `$unset`, then
  PENDING -> SUBMITTED), and last the task's own final status, from PROCESSED with its claim: the commit
  point. A failure (or cancellation) aborts what depended on the task first and writes the task's status
  last; a retry is inserted CREATING, given the outputs, queued, and the failed attempt is marked RETRIED last.
- If the process dies between two of these writes, the task stays PROCESSED with its agent: its queue
  message comes back when the lease expires (`tasks_in_flight` counts PROCESSED as held), and the next
  agent to receive it recovers the attempt as crashed (retry or failure), taking back the outputs that went
  to subtasks still CREATING (an unfinished submission) and dropping those. Subtasks already queued, data
  already completed and dependents already released stay: each was a complete step.
- Client submissions insert tasks CREATING (never queued, never acquired), move the outputs from the owner
  read, queue the ready ones (outbox first) and only then make them SUBMITTED or PENDING. A conflict on an
  output (another submission took it meanwhile) undoes the submission.
- Results completed by a client become COMPLETED before the tasks waiting on them are released; session
  actions move the session's tasks before saving the session's status, so an action interrupted half-way
  can be asked again (the session's status still allows it).

Without transactions some interruptions leave work undone rather than state inconsistent: a crash between
completing a result and releasing its dependents leaves them PENDING; a crash inside a cascade of aborts
leaves deeper levels pending. Deploy a replica set (as upstream does) for all-or-nothing units.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from pymongo import MongoClient, ReturnDocument, UpdateMany
from pymongo.client_session import ClientSession
from pymongo.collection import Collection as MongoCollection
from pymongo.database import Database
from pymongo.errors import BulkWriteError, ConnectionFailure, OperationFailure, PyMongoError
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

from armonik_core.adapters.queue.base import QueueMessage
from armonik_core.adapters.state import common
from armonik_core.adapters.state import mongodb_schema as schema
from armonik_core.adapters.state.base import (
    Application,
    ResultCompletion,
    SessionActionOutcome,
    TaskAcquisition,
)
from armonik_core.adapters.state.mongodb_filters import (
    APPLICATION_FILTER_FIELDS,
    APPLICATION_SORT_FIELDS,
    PARTITION_FIELDS,
    RESULT_FIELDS,
    SESSION_FIELDS,
    TASK_FIELDS,
    FieldMap,
    compile_filter,
    compile_sort,
)
from armonik_core.config import ConfigurationError, Environment
from armonik_core.domain import graph, sessions
from armonik_core.domain.changes import Change
from armonik_core.domain.errors import AlreadyExists, FailedPrecondition, NotFound
from armonik_core.domain.filters import Filter, ListQuery
from armonik_core.domain.outcomes import OutcomeKind, TaskOutcome
from armonik_core.domain.records import Partition, Result, Session, Task
from armonik_core.domain.sessions import SessionAction
from armonik_core.domain.statuses import EventType, ResultStatus, SessionStatus, TaskStatus
from armonik_core.domain.tasks import Acquisition, can_retry, decide_acquisition, make_retry

T = TypeVar("T")
Document = dict[str, Any]
Query = dict[str, Any]
Clock = Callable[[], float]

#: Ids per `$in` lookup: keeps every query far below MongoDB's 16 MiB command size.
CHUNK = 10_000
DUPLICATE_KEY = 11000
#: Results are read without the ids of the tasks that waited on them, which only the graph rules need.
_RESULT_PROJECTION = {"DependentTasks": 0}
_HELD_STATUSES = (TaskStatus.DISPATCHED, TaskStatus.PROCESSING, TaskStatus.PROCESSED)


# -- settings -------------------------------------------------------------------------------------------------
class MongoStateError(RuntimeError):
    """A MongoDB operation failed; the message names the server and the unit of work."""


class MongoStateUnavailable(MongoStateError):
    """The server could not be reached, or the connection broke during the unit of work."""


def _seconds(raw: str, variable: str) -> float:
    """A duration as upstream's .NET settings write it (`00:02:00`, `1.00:00:00`) or in seconds (`120`)."""
    text = raw.strip()
    try:
        if ":" not in text:
            return float(text)
        head, minutes, seconds = text.split(":")
        days, _, hours = head.rpartition(".")
        return timedelta(
            days=int(days or 0), hours=int(hours), minutes=int(minutes), seconds=float(seconds)
        ).total_seconds()
    except ValueError:
        raise ConfigurationError(f"{variable}={raw!r}: expected seconds or [d.]hh:mm:ss") from None


@dataclass(frozen=True, slots=True)
class MongoSettings:
    """Connection settings, from upstream's `MongoDB__*` variables (`from_env`).

    `connection_string`, when set, wins over host, port, user and password, and names the database when its
    path does (`mongodb://.../name`)."""

    connection_string: str = field(default="", repr=False)
    host: str = "127.0.0.1"
    port: int = 27017
    user: str = ""
    password: str = field(default="", repr=False)
    database_name: str = "ArmoniK"
    replica_set: str = ""
    tls: bool = False
    ca_file: str = ""
    allow_insecure_tls: bool = False
    direct_connection: bool = False
    auth_source: str = ""
    server_selection_timeout: float = 120.0
    max_connection_pool_size: int = 500

    def __post_init__(self) -> None:
        if not 1 <= self.port <= 65535:
            raise ConfigurationError(f"MongoDB__Port={self.port}: expected a TCP port (1-65535)")
        if self.server_selection_timeout <= 0:
            raise ConfigurationError("MongoDB__ServerSelectionTimeout must be positive")
        if not self.database_name and not self.connection_string:
            raise ConfigurationError("MongoDB__DatabaseName must not be empty")

    @classmethod
    def from_env(cls, env: Environment | None = None) -> MongoSettings:
        env = env or Environment()
        return cls(
            connection_string=env.get("MongoDB__ConnectionString", ""),
            host=env.get("MongoDB__Host", "127.0.0.1"),
            port=env.get_int("MongoDB__Port", 27017),
            user=env.get("MongoDB__User", ""),
            password=env.get("MongoDB__Password", ""),
            database_name=env.get("MongoDB__DatabaseName", "ArmoniK"),
            replica_set=env.get("MongoDB__ReplicaSet", ""),
            tls=env.get_bool("MongoDB__Tls", False),
            ca_file=env.get("MongoDB__CAFile", ""),
            allow_insecure_tls=env.get_bool("MongoDB__AllowInsecureTls", False),
            direct_connection=env.get_bool("MongoDB__DirectConnection", False),
            auth_source=env.get("MongoDB__AuthSource", ""),
            server_selection_timeout=_seconds(
                env.get("MongoDB__ServerSelectionTimeout", "120"), "MongoDB__ServerSelectionTimeout"
            ),
            max_connection_pool_size=env.get_int("MongoDB__MaxConnectionPoolSize", 500),
        )

    @property
    def address(self) -> str:
        """Where the server is, for messages (never the password)."""
        if not self.connection_string:
            return f"{self.host}:{self.port}"
        from pymongo.uri_parser import parse_uri

        try:
            nodes = parse_uri(self.connection_string, validate=False, warn=True)["nodelist"]
        except (PyMongoError, ValueError):
            return "the server of MongoDB__ConnectionString"
        return ",".join(f"{host}:{port}" for host, port in nodes)

    def client_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            "serverSelectionTimeoutMS": int(self.server_selection_timeout * 1000),
            "maxPoolSize": self.max_connection_pool_size,
            "tz_aware": False,
        }
        if self.replica_set:
            options["replicaSet"] = self.replica_set
        if self.tls:
            options["tls"] = True
            if self.ca_file:
                options["tlsCAFile"] = self.ca_file
            if self.allow_insecure_tls:
                options["tlsInsecure"] = True
        if self.direct_connection:
            options["directConnection"] = True
        if self.auth_source:
            options["authSource"] = self.auth_source
        if not self.connection_string:
            options.update(host=self.host, port=self.port)
            if self.user:
                options.update(username=self.user, password=self.password)
        return options

    def connect(self) -> MongoClient[Document]:
        """A client (it connects lazily, at its first operation)."""
        if self.tls and self.ca_file:
            try:
                open(self.ca_file, "rb").close()
            except OSError as error:
                raise ConfigurationError(
                    f"MongoDB__CAFile={self.ca_file!r}: cannot read it ({error})"
                ) from None
        try:
            if self.connection_string:
                return MongoClient(self.connection_string, **self.client_options())
            return MongoClient(**self.client_options())
        except PyMongoError as error:  # a malformed connection string or option
            raise ConfigurationError(f"MongoDB settings for {self.address}: {error}") from None

    def database(self, client: MongoClient[Document]) -> str:
        if self.connection_string:
            default = client.get_default_database(default=self.database_name or None)
            return default.name
        return self.database_name


# -- the collections of one unit of work --------------------------------------------------------------------
class _Db:
    """The collections as one unit of work sees them: bound to its transaction's session when there is one.

    Bulk updates are `UpdateMany` on a unique `_id`, which is `UpdateOne`: mongomock (the test stand-in)
    cannot take pymongo 4.9's `UpdateOne` in `bulk_write`."""

    def __init__(
        self,
        collections: Mapping[str, MongoCollection[Document]],
        session: ClientSession | None,
        outbox: bool,
    ) -> None:
        self._c = collections
        self._s = session
        self.outbox = outbox

    @property
    def in_transaction(self) -> bool:
        return self._s is not None

    def find(
        self,
        name: str,
        query: Query,
        projection: Mapping[str, Any] | None = None,
        sort: list[tuple[str, int]] | None = None,
        skip: int = 0,
        limit: int = 0,
    ) -> list[Document]:
        cursor = self._c[name].find(query, projection, session=self._s)
        if sort:
            cursor = cursor.sort(sort)
        if skip:
            cursor = cursor.skip(skip)
        if limit:
            cursor = cursor.limit(limit)
        return list(cursor)

    def find_ids(
        self, name: str, ids: Iterable[str], projection: Mapping[str, Any] | None = None, **extra: Any
    ) -> list[Document]:
        return self.find_in(name, "_id", ids, projection, **extra)

    def find_in(
        self,
        name: str,
        path: str,
        values: Iterable[str],
        projection: Mapping[str, Any] | None = None,
        **extra: Any,
    ) -> list[Document]:
        """Documents whose `path` is one of `values`, looked up `CHUNK` values at a time."""
        unique = list(dict.fromkeys(values))
        found: list[Document] = []
        for start in range(0, len(unique), CHUNK):
            found += self.find(name, {path: {"$in": unique[start : start + CHUNK]}, **extra}, projection)
        return found

    def find_one(
        self, name: str, query: Query, projection: Mapping[str, Any] | None = None
    ) -> Document | None:
        return self._c[name].find_one(query, projection, session=self._s)

    def count(self, name: str, query: Query) -> int:
        return self._c[name].count_documents(query, session=self._s)

    def aggregate(self, name: str, pipeline: list[Document]) -> list[Document]:
        return list(self._c[name].aggregate(pipeline, session=self._s))

    def insert(self, name: str, documents: list[Document]) -> set[str]:
        """Insert what is not there yet (unordered); returns the ids that were already taken."""
        if not documents:
            return set()
        try:
            self._c[name].insert_many(documents, ordered=False, session=self._s)
        except BulkWriteError as error:
            details = error.details
            failures = details.get("writeErrors", [])
            if details.get("writeConcernErrors") or any(f.get("code") != DUPLICATE_KEY for f in failures):
                raise
            return {documents[f["index"]]["_id"] for f in failures}
        return set()

    def update(self, name: str, query: Query, update: Document, upsert: bool = False) -> int:
        """`update_many`; returns how many documents matched."""
        return self._c[name].update_many(query, update, upsert=upsert, session=self._s).matched_count

    def update_each(self, name: str, updates: Sequence[tuple[Query, Document]], upsert: bool = False) -> int:
        """One round trip for many single-document updates; returns how many matched."""
        if not updates:
            return 0
        requests = [UpdateMany(query, update, upsert=upsert) for query, update in updates]
        result = self._c[name].bulk_write(requests, ordered=False, session=self._s)
        return result.matched_count + result.upserted_count

    def swap(
        self, name: str, query: Query, update: Document, projection: Mapping[str, Any] | None = None
    ) -> Document | None:
        """Compare-and-set one document: the document as updated, or None when nothing matched."""
        return self._c[name].find_one_and_update(
            query, update, projection, return_document=ReturnDocument.AFTER, session=self._s
        )

    def delete(self, name: str, query: Query) -> int:
        return self._c[name].delete_many(query, session=self._s).deleted_count


# -- claims ---------------------------------------------------------------------------------------------------
@dataclass(slots=True)
class _Held:
    """A task this unit of work claimed (PROCESSED with `claim`), and attributes to write with its final status."""

    task: Task
    claim: str
    extra: list[str] = field(default_factory=list)

    @property
    def expect(self) -> Query:
        return {"Status": int(TaskStatus.PROCESSED), "ClaimId": self.claim}


def _state_of(doc: Mapping[str, Any]) -> Query:
    """The compare-and-set condition of a task document as read: status, owner and claim."""
    return {"Status": doc["Status"], "OwnerPodId": doc.get("OwnerPodId", ""), "ClaimId": doc.get("ClaimId")}


def _claim(db: _Db, task: Task, state: Query) -> _Held | None:
    """Take the task for this unit of work, if it is still as read (see the module's docstring)."""
    token = uuid.uuid4().hex
    update = {"$set": {"Status": int(TaskStatus.PROCESSED), "ClaimId": token}}
    if db.swap(schema.TASKS, {"_id": task.task_id, **state}, update, {"_id": 1}) is None:
        return None
    return _Held(task, token)


class _GraphView:
    """The cascade's view of the graph (`graph.GraphView`): dependents are the `DependentTasks` of results."""

    def __init__(self, db: _Db) -> None:
        self._db = db

    def dependents(self, result_ids: Collection[str]) -> dict[str, TaskStatus]:
        docs = self._db.find_ids(schema.RESULTS, result_ids, {"DependentTasks": 1})
        task_ids = {tid for d in docs for tid in d.get("DependentTasks") or ()}
        rows = self._db.find_ids(schema.TASKS, task_ids, {"Status": 1})
        return {row["_id"]: TaskStatus(row["Status"]) for row in rows}

    def owned_results(self, task_ids: Collection[str]) -> dict[str, ResultStatus]:
        rows = self._db.find_in(schema.RESULTS, "OwnerTaskId", task_ids, {"Status": 1})
        return {row["_id"]: ResultStatus(row["Status"]) for row in rows}


# -- the store ------------------------------------------------------------------------------------------------
class MongoStateStore(common.ChangeFeedStore):
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

    @classmethod
    def from_env(cls, env: Environment | None = None, **kwargs: Any) -> MongoStateStore:
        return cls(settings=MongoSettings.from_env(env), **kwargs)

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

    # -- partitions --------------------------------------------------------------------------------------
    async def upsert_partitions(self, partitions: Sequence[Partition]) -> None:
        docs = [schema.partition_to_document(p) for p in partitions]

        def unit(db: _Db, changes: list[Change]) -> None:
            updates = [
                ({"_id": d["_id"]}, {"$set": {k: v for k, v in d.items() if k != "_id"}}) for d in docs
            ]
            db.update_each(schema.PARTITIONS, updates, upsert=True)

        await self._write("saving partitions", unit)

    async def get_partition(self, partition_id: str) -> Partition:
        def run(db: _Db) -> Partition:
            doc = db.find_one(schema.PARTITIONS, {"_id": partition_id})
            if doc is None:
                raise NotFound(f"Partition not found: {partition_id}")
            return schema.partition_from_document(doc)

        return await self._read("reading a partition", run)

    async def list_partitions(self, query: ListQuery) -> tuple[int, list[Partition]]:
        return await self._list(schema.PARTITIONS, PARTITION_FIELDS, query, schema.partition_from_document)

    # -- sessions ----------------------------------------------------------------------------------------
    async def create_session(self, session: Session) -> None:
        session.created_at = schema.round_time(session.created_at)
        doc = schema.session_to_document(session)

        def unit(db: _Db, changes: list[Change]) -> None:
            wanted = set(session.partition_ids) | {session.options.partition_id}
            found = {d["_id"] for d in db.find_ids(schema.PARTITIONS, wanted, {"_id": 1})}
            common.require_found("Partition", wanted, found)
            if db.insert(schema.SESSIONS, [doc]):
                raise AlreadyExists(f"Session already exists: {session.session_id}")

        await self._write("creating a session", unit)

    async def get_session(self, session_id: str) -> Session:
        return await self._read("reading a session", lambda db: _load_session(db, session_id))

    async def list_sessions(self, query: ListQuery) -> tuple[int, list[Session]]:
        return await self._list(schema.SESSIONS, SESSION_FIELDS, query, schema.session_from_document)

    async def stop_submission(self, session_id: str, client: bool, worker: bool) -> Session:
        def unit(db: _Db, changes: list[Change]) -> Session:
            session = sessions.stop_submission(_load_session(db, session_id), client, worker)
            closed = {"ClientSubmission": False} if client else {}
            if worker:
                closed["WorkerSubmission"] = False
            if closed:  # only ever close a door: a concurrent closing is never undone
                db.update(schema.SESSIONS, {"_id": session_id}, {"$set": closed})
            return session

        return await self._write("stopping submission", unit)

    async def apply_session_action(self, session_id: str, action: SessionAction) -> SessionActionOutcome:
        now = self._now()

        def unit(db: _Db, changes: list[Change]) -> SessionActionOutcome:
            session = _load_session(db, session_id)
            previous = session.status
            sessions.apply_session_action(session, action, now)
            outcome = SessionActionOutcome(session)
            if action is SessionAction.PAUSE:
                for source, target in sessions.PAUSE_TASKS.items():
                    _set_task_status(db, changes, _session_tasks(db, session_id, source), target)
                if db.outbox:
                    db.delete(schema.OUTBOX, {"SessionId": session_id})
            elif action is SessionAction.RESUME:
                for source, target in sessions.RESUME_TASKS.items():
                    moved = _session_tasks(db, session_id, source)
                    if target is TaskStatus.SUBMITTED:  # in the outbox before they are SUBMITTED
                        outcome.to_enqueue += _enqueue(db, moved)
                    _set_task_status(db, changes, moved, target, submitted_at=now)
            elif action is SessionAction.CANCEL:
                _cancel_session_tasks(db, changes, session_id, now)
            elif action in (SessionAction.PURGE, SessionAction.DELETE):
                outcome.objects_to_delete = _drop_session_data(db, changes, session_id)
                if action is SessionAction.DELETE:
                    for name in (schema.OUTBOX, schema.TASKS, schema.RESULTS):
                        db.delete(name, {"SessionId": session_id})
            _save_session_state(db, session, previous)
            return outcome

        return await self._write(f"applying {action.value} to a session", unit)

    # -- results -----------------------------------------------------------------------------------------
    async def create_results(
        self, session_id: str, results: Sequence[Result], by_worker: bool = False
    ) -> None:
        for result in results:
            result.created_at = schema.round_time(result.created_at)
        docs = [schema.result_to_document(r) for r in results]

        def unit(db: _Db, changes: list[Change]) -> None:
            sessions.check_submission_allowed(_load_session(db, session_id), by_worker)
            _insert_new_results(db, docs)
            changes.extend(common.new_result_changes(results, session_id))

        await self._write("creating results", unit)

    async def get_results(self, result_ids: Sequence[str]) -> list[Result]:
        return await self._read(
            "reading results",
            lambda db: [
                schema.result_from_document(d)
                for d in db.find_ids(schema.RESULTS, result_ids, _RESULT_PROJECTION)
            ],
        )

    async def list_results(self, query: ListQuery) -> tuple[int, list[Result]]:
        return await self._list(schema.RESULTS, RESULT_FIELDS, query, schema.result_from_document)

    async def complete_results(
        self, session_id: str, completions: Sequence[ResultCompletion]
    ) -> list[QueueMessage]:
        now = self._now()

        def unit(db: _Db, changes: list[Change]) -> list[QueueMessage]:
            ids = [c.result_id for c in completions]
            common.check_can_receive_data(_load_results(db, ids, session_id).values())
            _store_data(db, completions, now)
            changes.extend(common.result_status_changes(session_id, ids, ResultStatus.COMPLETED))
            return _resolve_dependents(db, changes, ids, now)

        return await self._write("completing results", unit)

    async def delete_results_data(self, session_id: str, result_ids: Sequence[str]) -> list[bytes]:
        def unit(db: _Db, changes: list[Change]) -> list[bytes]:
            doomed = common.results_to_delete(_load_results(db, result_ids, session_id).values())
            _mark_deleted(db, [r.result_id for r in doomed])
            changes.extend(
                common.result_status_changes(session_id, [r.result_id for r in doomed], ResultStatus.DELETED)
            )
            return [r.opaque_id for r in doomed if r.opaque_id]

        return await self._write("deleting results data", unit)

    # -- tasks -------------------------------------------------------------------------------------------
    async def submit_tasks(
        self, session_id: str, tasks: Sequence[Task], parent_task_id: str | None = None
    ) -> list[QueueMessage]:
        now = self._now()

        def unit(db: _Db, changes: list[Change]) -> list[QueueMessage]:
            session = _load_session(db, session_id)
            sessions.check_submission_allowed(session, by_worker=parent_task_id is not None)
            plan = _plan_tasks(db, session, tasks, parent_task_id)
            return _write_tasks(db, changes, session, tasks, plan, now)

        return await self._write("submitting tasks", unit)

    async def get_tasks(self, task_ids: Sequence[str]) -> list[Task]:
        return await self._read(
            "reading tasks",
            lambda db: [schema.task_from_document(d) for d in db.find_ids(schema.TASKS, task_ids)],
        )

    async def list_tasks(self, query: ListQuery) -> tuple[int, list[Task]]:
        return await self._list(schema.TASKS, TASK_FIELDS, query, schema.task_from_document)

    async def count_tasks_by_status(self, flt: Filter) -> dict[TaskStatus, int]:
        where = compile_filter(flt, TASK_FIELDS)
        pipeline = [{"$match": where}, {"$group": {"_id": "$Status", "count": {"$sum": 1}}}]

        def run(db: _Db) -> dict[TaskStatus, int]:
            return {TaskStatus(row["_id"]): row["count"] for row in db.aggregate(schema.TASKS, pipeline)}

        return await self._read("counting tasks", run)

    async def cancel_tasks(self, task_ids: Sequence[str]) -> list[Task]:
        now = self._now()

        def unit(db: _Db, changes: list[Change]) -> list[Task]:
            tasks = _load_tasks(db, task_ids)
            common.require_found("Task", task_ids, tasks)
            _cancel(db, changes, list(tasks.values()), now)
            return list(tasks.values())

        return await self._write("cancelling tasks", unit)

    async def list_applications(self, query: ListQuery) -> tuple[int, list[Application]]:
        where = compile_filter(query.filter, APPLICATION_FILTER_FIELDS)
        keys = [
            schema.OPTION_FIELDS[f"application_{part}"]
            for part in ("name", "version", "namespace", "service")
        ]
        order = compile_sort(query.sort, APPLICATION_SORT_FIELDS, tie_break=None)
        order += [(f"_id.{key}", 1) for key in keys if all(path != f"_id.{key}" for path, _ in order)]
        offset, limit = common.page_window(query.page, query.page_size)
        grouped: list[Document] = [
            {"$match": where},
            {"$group": {"_id": {key: f"$Options.{key}" for key in keys}}},
        ]
        page: list[Document] = [{"$sort": dict(order)}, {"$skip": offset}, {"$limit": limit}]

        def run(db: _Db) -> tuple[int, list[Application]]:
            counted = db.aggregate(schema.TASKS, [*grouped, {"$count": "total"}])
            rows = db.aggregate(schema.TASKS, [*grouped, *page])
            total = counted[0]["total"] if counted else 0
            return total, [Application(*(row["_id"].get(key, "") for key in keys)) for row in rows]

        return await self._read("listing applications", run)

    # -- compute plane ---------------------------------------------------------------------------------
    async def acquire_task(self, task_id: str, agent_id: str, hostname: str) -> TaskAcquisition:
        now = self._now()

        def unit(db: _Db, changes: list[Change]) -> TaskAcquisition:
            doc = db.find_one(schema.TASKS, {"_id": task_id})
            if doc is None:
                return TaskAcquisition()
            task, state = schema.task_from_document(doc), _state_of(doc)
            decision = decide_acquisition(task, agent_id)
            if decision is Acquisition.SKIP:
                return TaskAcquisition()
            if decision is not Acquisition.TAKE:
                held = _claim(db, task, state)
                if held is None:  # someone else changed it meanwhile: this message is spent
                    return TaskAcquisition()
                if decision is Acquisition.CANCEL:
                    _cancel_running(db, changes, held, now)
                    return TaskAcquisition()
                return TaskAcquisition(
                    to_enqueue=_retry_or_fail(db, changes, held, common.crash_message(task), now)
                )
            session = _load_session(db, task.session_id)
            if session.status == SessionStatus.PAUSED:
                _set_task_status(db, changes, [task], TaskStatus.PAUSED, expect=state)
                return TaskAcquisition()
            task.owner_pod_id, task.pod_hostname = agent_id, hostname
            task.received_at = task.received_at or now
            taken = _set_task_status(
                db,
                changes,
                [task],
                TaskStatus.DISPATCHED,
                expect=state,
                also=("owner_pod_id", "pod_hostname", "received_at"),
                acquired_at=now,
            )
            if not taken:
                return TaskAcquisition()
            # Whatever of the inputs exists: a missing one is the agent's to report, as the task's error.
            docs = db.find_ids(schema.RESULTS, sorted(graph.task_inputs(task)), _RESULT_PROJECTION)
            inputs = [schema.result_from_document(d) for d in docs]
            return TaskAcquisition(task=task, session=session, inputs=inputs)

        return await self._write("acquiring a task", unit)

    async def start_task(
        self, task_id: str, agent_id: str, fetched_at: float | None = None, started_at: float | None = None
    ) -> bool:
        fetched, begun = (
            schema.to_date(at) for at in common.start_times(fetched_at, started_at, self._now())
        )

        def unit(db: _Db, changes: list[Change]) -> bool:
            started = db.swap(
                schema.TASKS,
                {"_id": task_id, "OwnerPodId": agent_id, "Status": int(TaskStatus.DISPATCHED)},
                {"$set": {"Status": int(TaskStatus.PROCESSING), "FetchedDate": fetched, "StartDate": begun}},
                {"SessionId": 1},
            )
            if started is None:
                return False
            changes.append(
                Change(
                    EventType.TASK_STATUS_UPDATE, started["SessionId"], task_id, int(TaskStatus.PROCESSING)
                )
            )
            return True

        return await self._write("starting a task", unit)

    async def finish_task(self, task_id: str, agent_id: str, outcome: TaskOutcome) -> list[QueueMessage]:
        now = self._now()

        def unit(db: _Db, changes: list[Change]) -> list[QueueMessage]:
            doc = db.find_one(schema.TASKS, {"_id": task_id})
            if doc is None:
                return []
            task = schema.task_from_document(doc)
            if task.owner_pod_id != agent_id or task.status not in common.RUNNING_STATUSES:
                return []
            cancelled = task.status == TaskStatus.CANCELLING or outcome.kind is OutcomeKind.CANCELLED
            success = None
            if not cancelled and outcome.kind is OutcomeKind.SUCCESS:
                success = _prepare_success(db, task, outcome)  # refuses a bad outcome before any write
            held = _claim(db, task, _state_of(doc))
            if held is None:
                return []
            start = common.reported_start(task, outcome)
            if start is not None:
                task.fetched_at, task.started_at = (schema.round_time(at) for at in start)
                held.extra += ["started_at", "fetched_at"]
            if cancelled:
                _cancel_running(db, changes, held, now)
                return []
            if outcome.kind is OutcomeKind.RELEASED:
                return _release(db, changes, held, now)
            if outcome.kind is OutcomeKind.CRASH:
                return _retry_or_fail(db, changes, held, outcome.message, now)
            if outcome.kind in (OutcomeKind.ERROR, OutcomeKind.TIMEOUT):
                _fail(db, changes, held, common.failure_status(outcome.kind), outcome.message, now)
                return []
            assert success is not None
            return _apply_success(db, changes, held, outcome, success, now)

        return await self._write("finishing a task", unit)

    async def tasks_in_flight(self) -> tuple[list[QueueMessage], list[tuple[QueueMessage, str]]]:
        statuses = [int(s) for s in (TaskStatus.SUBMITTED, *_HELD_STATUSES)]
        projection = {
            "SessionId": 1,
            "Options.PartitionId": 1,
            "Options.Priority": 1,
            "Status": 1,
            "OwnerPodId": 1,
        }

        def run(db: _Db) -> tuple[list[QueueMessage], list[tuple[QueueMessage, str]]]:
            docs = db.find(
                schema.TASKS,
                {"Status": {"$in": statuses}},
                projection,
                sort=[("SubmittedDate", 1), ("_id", 1)],
            )
            ready, held = [], []
            for d in docs:
                options = d.get("Options") or {}
                message = QueueMessage(
                    d["_id"], d["SessionId"], options.get("PartitionId", ""), options.get("Priority", 0)
                )
                if d["Status"] == int(TaskStatus.SUBMITTED):
                    ready.append(message)
                else:
                    held.append((message, d.get("OwnerPodId", "")))
            return ready, held

        return await self._read("reading the tasks in flight", run)

    async def cancelled_tasks(self, task_ids: Sequence[str]) -> set[str]:
        cancelled = [int(TaskStatus.CANCELLING), int(TaskStatus.CANCELLED)]

        def run(db: _Db) -> set[str]:
            return {
                d["_id"] for d in db.find_ids(schema.TASKS, task_ids, {"_id": 1}, Status={"$in": cancelled})
            }

        return await self._read("reading cancelled tasks", run)

    # -- outbox ------------------------------------------------------------------------------------------
    async def pending_outbox(self, limit: int = 10_000) -> list[QueueMessage]:
        def run(db: _Db) -> list[QueueMessage]:
            docs = db.find(schema.OUTBOX, {}, limit=limit)
            return [QueueMessage(d["_id"], d["SessionId"], d["PartitionId"], d["Priority"]) for d in docs]

        return await self._read("reading the outbox", run)

    async def clear_outbox(self, task_ids: Sequence[str]) -> None:
        ids = list(task_ids)

        def unit(db: _Db, changes: list[Change]) -> None:
            for start in range(0, len(ids), CHUNK):
                db.delete(schema.OUTBOX, {"_id": {"$in": ids[start : start + CHUNK]}})

        await self._write("clearing the outbox", unit)


# -- loading --------------------------------------------------------------------------------------------------
def _load_session(db: _Db, session_id: str) -> Session:
    doc = db.find_one(schema.SESSIONS, {"_id": session_id})
    if doc is None:
        raise NotFound(f"Session not found: {session_id}")
    return schema.session_from_document(doc)


def _save_session_state(db: _Db, session: Session, previous: SessionStatus) -> None:
    """The commit point of a session action: only from the status the action was checked against."""
    query = {"_id": session.session_id, "Status": int(previous)}
    if not db.update(schema.SESSIONS, query, {"$set": schema.session_state(session)}):
        raise FailedPrecondition(f"Session {session.session_id} changed meanwhile; try again")


def _load_results(db: _Db, result_ids: Sequence[str], session_id: str) -> dict[str, Result]:
    docs = db.find_ids(schema.RESULTS, result_ids, _RESULT_PROJECTION)
    found = {r.result_id: r for r in map(schema.result_from_document, docs) if r.session_id == session_id}
    common.require_found("Result", result_ids, found, f" in session {session_id}")
    return found


def _load_tasks(db: _Db, task_ids: Iterable[str]) -> dict[str, Task]:
    return {t.task_id: t for t in map(schema.task_from_document, db.find_ids(schema.TASKS, task_ids))}


def _session_tasks(db: _Db, session_id: str, status: TaskStatus) -> list[Task]:
    docs = db.find(schema.TASKS, {"SessionId": session_id, "Status": int(status)})
    return [schema.task_from_document(d) for d in docs]


def _load_graph_results(db: _Db, result_ids: Iterable[str]) -> dict[str, Result]:
    """Just what the graph rules read of each result (session, status, owner)."""
    docs = db.find_ids(schema.RESULTS, result_ids, {"SessionId": 1, "Status": 1, "OwnerTaskId": 1})
    return {
        d["_id"]: Result(
            d["_id"], d["SessionId"], "", ResultStatus(d["Status"]), 0.0, d.get("OwnerTaskId", "")
        )
        for d in docs
    }


def _paused_sessions(db: _Db, session_ids: Iterable[str]) -> set[str]:
    docs = db.find_ids(schema.SESSIONS, session_ids, {"_id": 1}, Status=int(SessionStatus.PAUSED))
    return {d["_id"] for d in docs}


# -- writing --------------------------------------------------------------------------------------------------
def _set_task_status(
    db: _Db,
    changes: list[Change],
    tasks: Sequence[Task],
    status: TaskStatus,
    expect: Query | None = None,
    also: Sequence[str] = (),
    **timestamps: float,
) -> list[Task]:
    """Move tasks to `status` (with `timestamps` and the attributes named in `also`), each only from the
    state it was read in (its status, or `expect` for a single task); returns those that moved."""
    if not tasks:
        return []
    previous = {t.task_id: t.status for t in tasks}
    for task in tasks:
        task.status = status
        for name, value in timestamps.items():
            setattr(task, name, value)
    attributes = ["status", *timestamps, *also]
    if expect is not None or len(tasks) == 1 or also or schema.DURATION_INPUTS.intersection(timestamps):
        updates = [
            (
                {
                    "_id": t.task_id,
                    **(expect if expect is not None else {"Status": int(previous[t.task_id])}),
                },
                {"$set": schema.task_fields(t, attributes)},
            )
            for t in tasks
        ]
        moved = db.update_each(schema.TASKS, updates)
    else:  # the same fields for every task: one update per status they leave
        by_status: dict[TaskStatus, list[str]] = {}
        for task_id, source in previous.items():
            by_status.setdefault(source, []).append(task_id)
        update = {"$set": schema.task_fields(tasks[0], attributes)}
        moved = sum(
            db.update(schema.TASKS, {"_id": {"$in": ids}, "Status": int(source)}, update)
            for source, ids in by_status.items()
        )
    done = list(tasks)
    if moved < len(tasks):  # another writer changed some meanwhile: report only what this unit moved
        now_in = {d["_id"] for d in db.find_ids(schema.TASKS, previous, {"_id": 1}, Status=int(status))}
        done = [t for t in tasks if t.task_id in now_in]
    changes.extend(Change(EventType.TASK_STATUS_UPDATE, t.session_id, t.task_id, int(status)) for t in done)
    return done


def _finalize(
    db: _Db,
    changes: list[Change],
    held: _Held,
    status: TaskStatus,
    now: float,
    also: Sequence[str] = (),
    **timestamps: float,
) -> bool:
    """The commit point of a claimed task: its final status, written only while the claim still holds.

    Only a cancellation by another writer (CANCELLING, the claim kept) can change a claimed task: the
    cancellation is then finished here, rather than the task left CANCELLING with no agent to end it."""
    if _set_task_status(db, changes, [held.task], status, held.expect, [*also, *held.extra], **timestamps):
        return True
    held.task.status = TaskStatus.CANCELLING
    expect = {"Status": int(TaskStatus.CANCELLING), "ClaimId": held.claim}
    if _set_task_status(db, changes, [held.task], TaskStatus.CANCELLED, expect, held.extra, ended_at=now):
        _abort_downstream(db, changes, [held.task.task_id], TaskStatus.CANCELLED, now)
    return False


def _enqueue(db: _Db, tasks: Iterable[Task]) -> list[QueueMessage]:
    """Record ready tasks in the outbox (before they become SUBMITTED); the caller publishes the messages.

    A task may be there already (queued again before its earlier message was confirmed published): the entry
    is the same. Inserted in bulk, skipping those; in a transaction, where a duplicate key would abort it,
    the existing entries are looked up first."""
    messages = [common.queue_message(t) for t in tasks]
    if not db.outbox or not messages:
        return messages
    docs = [
        {"_id": m.task_id, "SessionId": m.session_id, "PartitionId": m.partition_id, "Priority": m.priority}
        for m in messages
    ]
    if db.in_transaction:
        there = {d["_id"] for d in db.find_ids(schema.OUTBOX, [m.task_id for m in messages], {"_id": 1})}
        docs = [d for d in docs if d["_id"] not in there]
    db.insert(schema.OUTBOX, docs)
    return messages


def _insert_new_results(db: _Db, docs: list[Document]) -> None:
    """Insert results whose ids must all be new: nothing is inserted when one is taken (without a
    transaction, those inserted before the conflict was known are removed again: nothing refers to them)."""
    ids = [d["_id"] for d in docs]
    taken = {rid for rid in ids if ids.count(rid) > 1} if len(set(ids)) < len(ids) else set()
    if not taken:
        taken = db.insert(schema.RESULTS, docs)
        if taken and not db.in_transaction:
            db.delete(schema.RESULTS, {"_id": {"$in": [i for i in ids if i not in taken]}})
    if taken:
        raise FailedPrecondition(f"A result id is already taken: {', '.join(sorted(taken)[:5])}")


def _store_data(db: _Db, completions: Iterable[Any], now: float) -> None:
    """Results receive their data: COMPLETED, only from CREATED."""
    date = schema.to_date(now)
    updates = [
        (
            {"_id": c.result_id, "Status": int(ResultStatus.CREATED)},
            {
                "$set": {
                    "Status": int(ResultStatus.COMPLETED),
                    "Size": c.size,
                    "CompletionDate": date,
                    **schema.opaque_fields(c.opaque_id),
                }
            },
        )
        for c in completions
    ]
    db.update_each(schema.RESULTS, updates)


def _mark_deleted(db: _Db, result_ids: list[str]) -> None:
    if result_ids:
        db.update(
            schema.RESULTS,
            {"_id": {"$in": result_ids}},
            {"$set": {"Status": int(ResultStatus.DELETED), **schema.opaque_fields(b"")}},
        )


def _plan_tasks(
    db: _Db,
    session: Session,
    tasks: Sequence[Task],
    parent_task_id: str | None,
    made: Mapping[str, Result] | None = None,
) -> graph.SubmissionPlan:
    """Validate new tasks (client submission or a worker's subtasks) and decide their fate; no write.
    `made`: results as this unit of work is about to leave them (created or completed by the parent)."""
    common.check_task_partitions(session, tasks)
    named = common.results_named_by(tasks)
    results = _load_graph_results(db, named - set(made or ()))
    results.update({rid: r for rid, r in (made or {}).items() if rid in named})
    return graph.plan_submission(tasks, results, session.session_id, parent_task_id)


def _write_tasks(
    db: _Db,
    changes: list[Change],
    session: Session,
    tasks: Sequence[Task],
    plan: graph.SubmissionPlan,
    now: float,
) -> list[QueueMessage]:
    """Insert planned tasks CREATING, give them their outputs, then make them SUBMITTED (PAUSED) or PENDING."""
    ready = set(plan.ready)
    paused = session.status == SessionStatus.PAUSED
    targets: dict[TaskStatus, list[Task]] = {}
    for task in tasks:
        task.created_at = schema.round_time(task.created_at)
        if task.task_id in ready:
            target = TaskStatus.PAUSED if paused else TaskStatus.SUBMITTED
            task.submitted_at = now
        else:
            target = TaskStatus.PENDING
        targets.setdefault(target, []).append(task)
        task.status = TaskStatus.CREATING
    _insert_creating(db, [schema.task_to_document(t, plan.waiting.get(t.task_id)) for t in tasks])
    waiting_on: dict[str, list[str]] = {}
    for task_id, needed in plan.waiting.items():
        for rid in needed:
            waiting_on.setdefault(rid, []).append(task_id)
    db.update_each(
        schema.RESULTS,
        [
            ({"_id": rid}, {"$addToSet": {"DependentTasks": {"$each": tids}}})
            for rid, tids in waiting_on.items()
        ],
    )
    _take_outputs(db, plan, [t.task_id for t in tasks])
    messages = _enqueue(db, targets.get(TaskStatus.SUBMITTED, []))
    for target, group in targets.items():
        for task in group:
            task.status = target
        ids = [t.task_id for t in group]
        for start in range(0, len(ids), CHUNK):
            db.update(
                schema.TASKS,
                {"_id": {"$in": ids[start : start + CHUNK]}, "Status": int(TaskStatus.CREATING)},
                {"$set": {"Status": int(target)}},
            )
    changes.extend(common.new_task_changes(session.session_id, tasks))
    changes.extend(common.owner_changes(session.session_id, plan.owner_changes))
    # Without a transaction an input may have completed after it was read and before this submission
    # registered as its dependent: release what waits on such inputs now (idempotent otherwise).
    if waiting_on and not db.in_transaction:
        done = db.find_ids(schema.RESULTS, waiting_on, {"_id": 1}, Status=int(ResultStatus.COMPLETED))
        messages += _resolve_dependents(db, changes, [d["_id"] for d in done], now)
    return messages


def _insert_creating(db: _Db, docs: list[Document]) -> None:
    taken = db.insert(schema.TASKS, docs)
    if taken:
        if not db.in_transaction:
            mine = [d["_id"] for d in docs if d["_id"] not in taken]
            db.delete(schema.TASKS, {"_id": {"$in": mine}, "Status": int(TaskStatus.CREATING)})
        raise FailedPrecondition(f"A task id is already taken: {', '.join(sorted(taken)[:5])}")


def _take_outputs(db: _Db, plan: graph.SubmissionPlan, task_ids: list[str]) -> None:
    """Move each output from the owner the plan read to its new task; when another writer moved one meanwhile,
    give back what was taken and drop the CREATING tasks (the submission did not happen)."""
    moves = [
        ({"_id": rid, "OwnerTaskId": previous}, {"$set": {"OwnerTaskId": new}})
        for rid, (previous, new) in plan.owner_changes.items()
    ]
    if db.update_each(schema.RESULTS, moves) == len(moves):
        return
    if not db.in_transaction:
        db.update_each(
            schema.RESULTS,
            [
                ({"_id": rid, "OwnerTaskId": new}, {"$set": {"OwnerTaskId": previous}})
                for rid, (previous, new) in plan.owner_changes.items()
            ],
        )
        db.delete(schema.TASKS, {"_id": {"$in": task_ids}, "Status": int(TaskStatus.CREATING)})
    raise FailedPrecondition("Another task took one of these outputs meanwhile; submit again")


def _resolve_dependents(
    db: _Db, changes: list[Change], completed: Sequence[str], now: float
) -> list[QueueMessage]:
    """Drop the completed inputs from every waiting task and queue the tasks that now have them all."""
    if not completed:
        return []
    docs = db.find_ids(schema.RESULTS, completed, {"DependentTasks": 1})
    dependents = sorted({tid for d in docs for tid in d.get("DependentTasks") or ()})
    if not dependents:
        return []
    unset = {f"RemainingDataDependencies.{schema.encode_key(rid)}": "" for rid in completed}
    for start in range(0, len(dependents), CHUNK):
        db.update(schema.TASKS, {"_id": {"$in": dependents[start : start + CHUNK]}}, {"$unset": unset})
    pending = db.find_ids(schema.TASKS, dependents, Status=int(TaskStatus.PENDING))
    remaining = {
        d["_id"]: [schema.decode_key(k) for k in d.get("RemainingDataDependencies") or {}] for d in pending
    }
    ready_ids = set(graph.ready_after_completion(remaining, completed))
    ready = [schema.task_from_document(d) for d in pending if d["_id"] in ready_ids]
    paused, runnable = common.split_paused(ready, _paused_sessions(db, {t.session_id for t in ready}))
    _set_task_status(db, changes, paused, TaskStatus.PAUSED, submitted_at=now)
    _enqueue(db, runnable)
    moved = _set_task_status(db, changes, runnable, TaskStatus.SUBMITTED, submitted_at=now)
    return [common.queue_message(t) for t in moved]


# -- outcomes of a run ------------------------------------------------------------------------------------------
@dataclass(slots=True)
class _Success:
    """A successful outcome, validated before the task is claimed."""

    session: Session
    plan: graph.SubmissionPlan | None
    produced: list[str]


def _prepare_success(db: _Db, task: Task, outcome: TaskOutcome) -> _Success:
    session = _load_session(db, task.session_id)
    created = outcome.created_results
    if created:
        taken = db.find_ids(schema.RESULTS, [r.result_id for r in created], {"_id": 1})
        if taken:
            raise FailedPrecondition(
                f"A result id is already taken: {', '.join(sorted(d['_id'] for d in taken)[:5])}"
            )
    produced = common.produced_results(task, outcome)
    plan = None
    if outcome.subtasks:
        # The subtasks see the results as this outcome leaves them: created, and completed when still CREATED.
        made = {
            r.result_id: Result(r.result_id, r.session_id, "", r.status, 0.0, r.owner_task_id)
            for r in created
        }
        current = _load_graph_results(db, set(produced) - set(made))
        made.update(current)
        for rid in produced:
            if rid in made and made[rid].status == ResultStatus.CREATED:
                made[rid].status = ResultStatus.COMPLETED
        plan = _plan_tasks(db, session, outcome.subtasks, task.task_id, made)
    return _Success(session, plan, produced)


def _apply_success(
    db: _Db, changes: list[Change], held: _Held, outcome: TaskOutcome, success: _Success, now: float
) -> list[QueueMessage]:
    """A successful run: its new results, its data, its subtasks, its dependents, then the task COMPLETED."""
    task = held.task
    created = outcome.created_results
    for result in created:
        result.created_at = schema.round_time(result.created_at)
    db.insert(schema.RESULTS, [schema.result_to_document(r) for r in created])
    changes.extend(common.new_result_changes(created))
    _store_data(db, outcome.completions, now)
    changes.extend(common.result_status_changes(task.session_id, success.produced, ResultStatus.COMPLETED))
    messages: list[QueueMessage] = []
    if success.plan is not None:
        messages += _write_tasks(db, changes, success.session, outcome.subtasks, success.plan, now)
    messages += _resolve_dependents(db, changes, success.produced, now)
    docs = db.find_ids(schema.RESULTS, task.expected_output_ids, {"OwnerTaskId": 1})
    owners = {d["_id"]: d.get("OwnerTaskId", "") for d in docs}
    unfinished = common.unfinished_outputs(task, owners, success.produced)
    if unfinished is not None:
        _fail(db, changes, held, TaskStatus.ERROR, unfinished, now)
        return messages
    task.error = ""
    processed = schema.round_time(common.processed_time(task, outcome, now))
    _finalize(db, changes, held, TaskStatus.COMPLETED, now, ("error",), processed_at=processed, ended_at=now)
    return messages


def _fail(db: _Db, changes: list[Change], held: _Held, status: TaskStatus, message: str, now: float) -> None:
    """The task fails for good: what waited on its outputs fails first, then the task itself (commit point)."""
    task = held.task
    task.error = task.status_message = message
    downstream: list[Change] = []
    _abort_downstream(db, downstream, [task.task_id], TaskStatus.ERROR, now)
    _finalize(db, changes, held, status, now, ("error", "status_message"), ended_at=now)
    changes.extend(downstream)


def _cancel_running(db: _Db, changes: list[Change], held: _Held, now: float) -> None:
    """A cancelled task's agent is done with it: what waited on its outputs is cancelled, then the task."""
    downstream: list[Change] = []
    _abort_downstream(db, downstream, [held.task.task_id], TaskStatus.CANCELLED, now)
    _finalize(db, changes, held, TaskStatus.CANCELLED, now, ended_at=now)
    changes.extend(downstream)


def _release(db: _Db, changes: list[Change], held: _Held, now: float) -> list[QueueMessage]:
    """The agent gives the task back unrun: queued again for any agent, no attempt counted."""
    task = held.task
    # Untouched: as if never received, so the next acquisition records its own times.
    task.owner_pod_id = task.pod_hostname = ""
    task.received_at = task.acquired_at = None
    reset = ("owner_pod_id", "pod_hostname", "received_at", "acquired_at")
    if _load_session(db, task.session_id).status == SessionStatus.PAUSED:
        _finalize(db, changes, held, TaskStatus.PAUSED, now, reset)
        return []
    messages = _enqueue(db, [task])
    return messages if _finalize(db, changes, held, TaskStatus.SUBMITTED, now, reset) else []


def _retry_or_fail(
    db: _Db, changes: list[Change], held: _Held, message: str, now: float
) -> list[QueueMessage]:
    """A crashed attempt: a new attempt takes over its outputs while retries remain, else it fails."""
    task = held.task
    if not can_retry(task):
        _fail(db, changes, held, TaskStatus.ERROR, common.out_of_retries(task, message), now)
        return []
    _take_back_from_unfinished_subtasks(db, task)
    retry = make_retry(task, now)
    paused = _load_session(db, task.session_id).status == SessionStatus.PAUSED
    target = TaskStatus.PAUSED if paused else TaskStatus.SUBMITTED
    retry.status = TaskStatus.CREATING
    db.insert(schema.TASKS, [schema.task_to_document(retry)])  # already there: an interrupted recovery's
    owned = db.find_ids(schema.RESULTS, retry.expected_output_ids, {"OwnerTaskId": 1})
    handed = [d["_id"] for d in owned if d.get("OwnerTaskId") == task.task_id]
    db.update_each(
        schema.RESULTS,
        [
            ({"_id": rid, "OwnerTaskId": task.task_id}, {"$set": {"OwnerTaskId": retry.task_id}})
            for rid in handed
        ],
    )
    retry.status = target
    messages = [] if paused else _enqueue(db, [retry])
    db.update(
        schema.TASKS,
        {"_id": retry.task_id, "Status": int(TaskStatus.CREATING)},
        {"$set": {"Status": int(target)}},
    )
    task.error = task.status_message = message
    if not _finalize(db, changes, held, TaskStatus.RETRIED, now, ("error", "status_message"), ended_at=now):
        return []
    changes.extend(common.new_task_changes(task.session_id, [retry]))
    changes.extend(
        common.owner_changes(task.session_id, {rid: (task.task_id, retry.task_id) for rid in handed})
    )
    return messages


def _take_back_from_unfinished_subtasks(db: _Db, task: Task) -> None:
    """Subtasks still CREATING were being submitted when a previous unit for this task stopped: the task gets
    back the outputs it was handing them, and they are dropped (no change was ever announced for them)."""
    unfinished = [
        d["_id"]
        for d in db.find(
            schema.TASKS, {"CreatedBy": task.task_id, "Status": int(TaskStatus.CREATING)}, {"_id": 1}
        )
    ]
    if not unfinished:
        return
    db.update(
        schema.RESULTS,
        {"_id": {"$in": task.expected_output_ids}, "OwnerTaskId": {"$in": unfinished}},
        {"$set": {"OwnerTaskId": task.task_id}},
    )
    db.delete(schema.TASKS, {"_id": {"$in": unfinished}, "Status": int(TaskStatus.CREATING)})


# -- cancellation and cascades --------------------------------------------------------------------------------
def _cancel(db: _Db, changes: list[Change], tasks: list[Task], now: float) -> None:
    """Cancel tasks, abort the outputs they will no longer produce and cancel what waited on those. What
    waited is cancelled first, so that a cancellation interrupted half-way is whole when asked again."""
    by_target = common.cancellation_targets(tasks)
    cancelled = by_target.get(TaskStatus.CANCELLED, [])
    downstream: list[Change] = []
    _abort_downstream(db, downstream, [t.task_id for t in cancelled], TaskStatus.CANCELLED, now)
    _move_to_cancellation(db, changes, by_target, now)
    changes.extend(downstream)


def _move_to_cancellation(
    db: _Db, changes: list[Change], by_target: dict[TaskStatus, list[Task]], now: float
) -> None:
    """Tasks to CANCELLED (ended now), or to CANCELLING where an agent holds them (`cancellation_targets`)."""
    _set_task_status(db, changes, by_target.get(TaskStatus.CANCELLED, []), TaskStatus.CANCELLED, ended_at=now)
    _set_task_status(db, changes, by_target.get(TaskStatus.CANCELLING, []), TaskStatus.CANCELLING)


def _abort_downstream(
    db: _Db, changes: list[Change], task_ids: list[str], status: TaskStatus, now: float
) -> None:
    """Apply the domain's abort cascade from tasks that will never produce their outputs."""
    if not task_ids:
        return
    plan = graph.plan_abort_cascade(task_ids, _GraphView(db))
    doomed = list(_load_tasks(db, sorted(plan.tasks)).values())
    _set_task_status(db, changes, doomed, status, ended_at=now)
    if db.outbox:
        db.delete(schema.OUTBOX, {"_id": {"$in": [*task_ids, *plan.tasks]}})
    _abort_results(db, changes, sorted(plan.results))


def _abort_results(db: _Db, changes: list[Change], result_ids: list[str]) -> None:
    if not result_ids:
        return
    rows = db.find_ids(schema.RESULTS, result_ids, {"SessionId": 1})
    db.update(
        schema.RESULTS,
        {"_id": {"$in": result_ids}, "Status": int(ResultStatus.CREATED)},
        {"$set": {"Status": int(ResultStatus.ABORTED)}},
    )
    changes.extend(
        Change(EventType.RESULT_STATUS_UPDATE, r["SessionId"], r["_id"], int(ResultStatus.ABORTED))
        for r in rows
    )


def _cancel_session_tasks(db: _Db, changes: list[Change], session_id: str, now: float) -> None:
    """Cancel a whole session: its tasks not yet ended (CANCELLING where an agent holds them), and the
    results still to produce. The abort cascade of a task cancellation has nothing to add here, since a task
    only waits on results of its own session, all of which are aborted: no graph is walked. The tasks are
    still read, as each one's durations are stored with it."""
    finals = [int(s) for s in common.NOT_TO_CANCEL]
    docs = db.find(schema.TASKS, {"SessionId": session_id, "Status": {"$nin": finals}})
    by_target = common.cancellation_targets(schema.task_from_document(d) for d in docs)
    _move_to_cancellation(db, changes, by_target, now)
    leftovers = db.find(
        schema.RESULTS, {"SessionId": session_id, "Status": int(ResultStatus.CREATED)}, {"_id": 1}
    )
    _abort_results(db, changes, [d["_id"] for d in leftovers])
    if db.outbox:
        db.delete(schema.OUTBOX, {"SessionId": session_id})


def _drop_session_data(db: _Db, changes: list[Change], session_id: str) -> list[bytes]:
    """Mark the session's stored results DELETED; return the objects to remove from object storage."""
    docs = db.find(
        schema.RESULTS,
        {"SessionId": session_id, "Status": int(ResultStatus.COMPLETED), "ManualDeletion": False},
        {"OpaqueId": 1},
    )
    _mark_deleted(db, [d["_id"] for d in docs])
    changes.extend(common.result_status_changes(session_id, [d["_id"] for d in docs], ResultStatus.DELETED))
    return [bytes(d["OpaqueId"]) for d in docs if d.get("OpaqueId")]
