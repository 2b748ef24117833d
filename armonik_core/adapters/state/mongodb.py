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

The store is split by concern, this module keeping the clients' operations (partitions, sessions, results,
tasks, applications): `mongodb_settings` (connection settings, errors), `mongodb_db` (the collections as a unit
of work sees them), `mongodb_units` (connection, running units of work, listing), `mongodb_compute` (the agents'
operations and the outbox, a layer of the store class), and the steps the units share: `mongodb_writes`
(loading, status moves, submission, dependents), `mongodb_outcomes` (claims, outcomes of a run) and
`mongodb_cascade` (cancellation, abort cascades).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from armonik_core.adapters.queue.base import QueueMessage
from armonik_core.adapters.state import common
from armonik_core.adapters.state import mongodb_schema as schema
from armonik_core.adapters.state.base import Application, ResultCompletion, SessionActionOutcome
from armonik_core.adapters.state.mongodb_cascade import (
    _cancel,
    _cancel_session_tasks,
    _drop_session_data,
)
from armonik_core.adapters.state.mongodb_compute import MongoComputePlane
from armonik_core.adapters.state.mongodb_db import (
    _RESULT_PROJECTION,
    Document,
    _Db,
)
from armonik_core.adapters.state.mongodb_filters import (
    APPLICATION_FILTER_FIELDS,
    APPLICATION_SORT_FIELDS,
    PARTITION_FIELDS,
    RESULT_FIELDS,
    SESSION_FIELDS,
    TASK_FIELDS,
    compile_filter,
    compile_sort,
)
from armonik_core.adapters.state.mongodb_settings import (
    MongoSettings,
    MongoStateError,
    MongoStateUnavailable,
)
from armonik_core.adapters.state.mongodb_writes import (
    _enqueue,
    _insert_new_results,
    _load_results,
    _load_session,
    _load_tasks,
    _mark_deleted,
    _plan_tasks,
    _resolve_dependents,
    _save_session_state,
    _session_tasks,
    _set_task_status,
    _store_data,
    _write_tasks,
)
from armonik_core.config import Environment
from armonik_core.domain import sessions
from armonik_core.domain.changes import Change
from armonik_core.domain.errors import AlreadyExists, NotFound
from armonik_core.domain.filters import Filter, ListQuery
from armonik_core.domain.records import Partition, Result, Session, Task
from armonik_core.domain.sessions import SessionAction
from armonik_core.domain.statuses import ResultStatus, TaskStatus

__all__ = ["MongoSettings", "MongoStateError", "MongoStateStore", "MongoStateUnavailable"]


class MongoStateStore(MongoComputePlane):
    """The state in MongoDB: the clients' operations here, on the compute plane's (`MongoComputePlane`) and
    the running of units of work (`MongoUnits`), layered by who calls them so that each stays readable."""

    @classmethod
    def from_env(cls, env: Environment | None = None, **kwargs: Any) -> MongoStateStore:
        return cls(settings=MongoSettings.from_env(env), **kwargs)

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
