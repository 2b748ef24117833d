"""The state store interface: every unit of work the control plane and the polling agents perform.

Each method is one atomic transaction that applies a rule of `armonik_core.domain`, so that every backend
(SQLite here, MongoDB next) enforces the same semantics. Methods that make tasks ready return the queue
messages to publish; those messages are also kept in a durable outbox until `clear_outbox`, so a crash
between commit and publish loses nothing (`pending_outbox` replays them at start-up).
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar, cast

from armonik_core.adapters.queue.base import QueueMessage
from armonik_core.domain.changes import Change
from armonik_core.domain.errors import NotFound
from armonik_core.domain.filters import Filter, ListQuery
from armonik_core.domain.outcomes import DataCompletion, TaskOutcome
from armonik_core.domain.records import Partition, Result, Session, Task
from armonik_core.domain.sessions import SessionAction
from armonik_core.domain.statuses import TaskStatus

ChangeListener = Callable[[list[Change]], None]


#: Data of a result now stored in object storage under `opaque_id`: what a client's upload and an agent's
#: report (`DataCompletion`) both tell the store.
ResultCompletion = DataCompletion


@dataclass(slots=True)
class SessionActionOutcome:
    session: Session
    #: Tasks to publish again (resume).
    to_enqueue: list[QueueMessage] = field(default_factory=list)
    #: Objects whose data must be removed from object storage (purge, delete).
    objects_to_delete: list[bytes] = field(default_factory=list)


@dataclass(slots=True)
class TaskAcquisition:
    """`task` and its `session` when the agent may run it; otherwise None, the message being spent."""

    task: Task | None = None
    session: Session | None = None
    #: Tasks to publish (a retry of a crashed attempt).
    to_enqueue: list[QueueMessage] = field(default_factory=list)
    #: The task's payload and data dependencies, read in the same transaction.
    inputs: list[Result] = field(default_factory=list)


#: An agent's request for a task whose message it received: (task id, agent id, agent's hostname).
AcquireRequest = tuple[str, str, str]
#: An agent's report of how a run ended: (task id, agent id, outcome).
FinishRequest = tuple[str, str, TaskOutcome]


@dataclass(frozen=True, slots=True)
class Application:
    name: str
    version: str
    namespace: str
    service: str


class StateStore(ABC):
    # -- change feed -------------------------------------------------------------------------------------
    @abstractmethod
    def add_listener(self, listener: ChangeListener) -> None:
        """Call `listener` (on the event loop) with the changes of every committed transaction."""

    @abstractmethod
    def remove_listener(self, listener: ChangeListener) -> None: ...

    # -- partitions --------------------------------------------------------------------------------------
    @abstractmethod
    async def upsert_partitions(self, partitions: Sequence[Partition]) -> None: ...

    @abstractmethod
    async def get_partition(self, partition_id: str) -> Partition:
        """Raises NotFound."""

    @abstractmethod
    async def list_partitions(self, query: ListQuery) -> tuple[int, list[Partition]]: ...

    # -- sessions ----------------------------------------------------------------------------------------
    @abstractmethod
    async def create_session(self, session: Session) -> None:
        """Raises NotFound when a partition does not exist."""

    @abstractmethod
    async def get_session(self, session_id: str) -> Session:
        """Raises NotFound."""

    @abstractmethod
    async def list_sessions(self, query: ListQuery) -> tuple[int, list[Session]]: ...

    @abstractmethod
    async def apply_session_action(self, session_id: str, action: SessionAction) -> SessionActionOutcome:
        """Raises NotFound, FailedPrecondition."""

    @abstractmethod
    async def stop_submission(self, session_id: str, client: bool, worker: bool) -> Session: ...

    # -- results -----------------------------------------------------------------------------------------
    @abstractmethod
    async def create_results(
        self, session_id: str, results: Sequence[Result], by_worker: bool = False
    ) -> None:
        """Raises NotFound (session), FailedPrecondition (session closed to submission)."""

    @abstractmethod
    async def get_results(self, result_ids: Sequence[str]) -> list[Result]:
        """The results that exist, in no particular order."""

    async def get_result(self, result_id: str) -> Result:
        return _only(await self.get_results([result_id]), "Result", result_id)

    @abstractmethod
    async def list_results(self, query: ListQuery) -> tuple[int, list[Result]]: ...

    @abstractmethod
    async def complete_results(
        self, session_id: str, completions: Sequence[ResultCompletion]
    ) -> list[QueueMessage]:
        """Mark results COMPLETED and, in the same transaction, make ready every task waiting only on them.

        Raises NotFound, FailedPrecondition (result not CREATED)."""

    @abstractmethod
    async def delete_results_data(self, session_id: str, result_ids: Sequence[str]) -> list[bytes]:
        """Mark results DELETED (unless `manual_deletion`); return the opaque ids whose objects to remove."""

    # -- tasks -------------------------------------------------------------------------------------------
    @abstractmethod
    async def submit_tasks(
        self, session_id: str, tasks: Sequence[Task], parent_task_id: str | None = None
    ) -> list[QueueMessage]:
        """Insert new tasks, take ownership of their outputs and queue the ready ones.

        `parent_task_id` is set when a worker submits subtasks. Raises NotFound, FailedPrecondition,
        InvalidArgument."""

    @abstractmethod
    async def get_tasks(self, task_ids: Sequence[str]) -> list[Task]: ...

    async def get_task(self, task_id: str) -> Task:
        return _only(await self.get_tasks([task_id]), "Task", task_id)

    @abstractmethod
    async def list_tasks(self, query: ListQuery) -> tuple[int, list[Task]]: ...

    @abstractmethod
    async def count_tasks_by_status(self, flt: Filter) -> dict[TaskStatus, int]: ...

    @abstractmethod
    async def cancel_tasks(self, task_ids: Sequence[str]) -> list[Task]:
        """Cancel tasks (CANCELLED, or CANCELLING while an agent holds them); returns them as updated."""

    @abstractmethod
    async def list_applications(self, query: ListQuery) -> tuple[int, list[Application]]: ...

    # -- compute plane ---------------------------------------------------------------------------------
    @abstractmethod
    async def acquire_task(self, task_id: str, agent_id: str, hostname: str) -> TaskAcquisition:
        """Give a task whose message an agent received to that agent (DISPATCHED), when it may run.

        A task left running by an agent whose lease expired is retried instead (its attempt crashed)."""

    async def acquire_tasks(self, requests: Sequence[AcquireRequest]) -> list[TaskAcquisition | Exception]:
        """`acquire_task` of each (task id, agent id, hostname), one answer per request in order: the
        acquisition, or the exception that request raised (a request that fails holds back no other).

        An agent's exchange takes several tasks at once; a store that can give them in one unit of work
        (fewer statements, one transaction) overrides this, which makes one call per request."""
        return await _side_by_side([self.acquire_task(*request) for request in requests])

    @abstractmethod
    async def start_task(
        self, task_id: str, agent_id: str, fetched_at: float | None = None, started_at: float | None = None
    ) -> bool:
        """The agent staged the inputs and calls the worker: PROCESSING. False if the task is no longer its.

        `fetched_at` and `started_at` are the agent's own times (`common.start_times`); now when not given."""

    @abstractmethod
    async def finish_task(self, task_id: str, agent_id: str, outcome: TaskOutcome) -> list[QueueMessage]:
        """Apply what came of a run in one transaction: results, subtasks, ownership, status, retry, cascade.

        An outcome from an agent that no longer owns the task is ignored (returns nothing)."""

    async def finish_tasks(self, requests: Sequence[FinishRequest]) -> list[list[QueueMessage] | Exception]:
        """`finish_task` of each (task id, agent id, outcome), one answer per request in order: the messages
        to publish, or the exception that request raised (a request that fails holds back no other).

        An agent's exchange reports several outcomes at once; a store that can record them in one unit of
        work overrides this, which makes one call per request."""
        return await _side_by_side([self.finish_task(*request) for request in requests])

    @abstractmethod
    async def tasks_in_flight(self) -> tuple[list[QueueMessage], list[tuple[QueueMessage, str]]]:
        """Tasks queued (SUBMITTED), and tasks held by an agent (DISPATCHED, PROCESSING) with that agent:
        what a queue kept in memory is rebuilt from."""

    @abstractmethod
    async def cancelled_tasks(self, task_ids: Sequence[str]) -> set[str]:
        """Those of the tasks that were cancelled meanwhile (CANCELLING or CANCELLED)."""

    # -- outbox ------------------------------------------------------------------------------------------
    @abstractmethod
    async def pending_outbox(self, limit: int = 10_000) -> list[QueueMessage]: ...

    @abstractmethod
    async def clear_outbox(self, task_ids: Sequence[str]) -> None: ...

    async def close(self) -> None:
        """Release connections."""


_Record = TypeVar("_Record")
_Answer = TypeVar("_Answer")


async def _side_by_side(jobs: Sequence[Awaitable[_Answer]]) -> list[_Answer | Exception]:
    """Await the jobs together, each answer in order: its value, or the exception it raised. One job is
    awaited directly (an agent taking tasks one at a time): a task and two turns of the loop less than
    `asyncio.gather`."""
    if len(jobs) == 1:
        try:
            return [await jobs[0]]
        except Exception as exc:
            return [exc]
    answers = await asyncio.gather(*jobs, return_exceptions=True)
    for answer in answers:
        if isinstance(answer, BaseException) and not isinstance(answer, Exception):
            raise answer  # a cancellation, not a request's failure
    return cast("list[_Answer | Exception]", answers)


def _only(found: Sequence[_Record], kind: str, wanted: str) -> _Record:
    """The record a lookup by one id found: none means the caller named one that does not exist."""
    if not found:
        raise NotFound(f"{kind} not found: {wanted}")
    return found[0]
