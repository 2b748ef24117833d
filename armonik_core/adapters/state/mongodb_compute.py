"""The MongoDB state store's compute plane: what the agents' calls do to tasks (acquire, start, finish), the
tasks in flight the queue is rebuilt from, and the outbox."""

from __future__ import annotations

from collections.abc import Sequence

from armonik_core.adapters.queue.base import QueueMessage
from armonik_core.adapters.state import common
from armonik_core.adapters.state import mongodb_schema as schema
from armonik_core.adapters.state.base import TaskAcquisition
from armonik_core.adapters.state.mongodb_db import (
    _RESULT_PROJECTION,
    CHUNK,
    _Db,
)
from armonik_core.adapters.state.mongodb_outcomes import (
    _apply_success,
    _cancel_running,
    _claim,
    _fail,
    _prepare_success,
    _release,
    _retry_or_fail,
    _state_of,
)
from armonik_core.adapters.state.mongodb_units import MongoUnits
from armonik_core.adapters.state.mongodb_writes import (
    _load_session,
    _set_task_status,
)
from armonik_core.domain import graph
from armonik_core.domain.changes import Change
from armonik_core.domain.outcomes import OutcomeKind, TaskOutcome
from armonik_core.domain.statuses import EventType, SessionStatus, TaskStatus
from armonik_core.domain.tasks import Acquisition, decide_acquisition

_HELD_STATUSES = (TaskStatus.DISPATCHED, TaskStatus.PROCESSING, TaskStatus.PROCESSED)


class MongoComputePlane(MongoUnits):
    """The units of work of the compute plane, a layer of `MongoStateStore`: apart from the clients' operations
    because they follow their own rules (claims, outcomes of a run) and change for their own reasons."""

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
