"""What a polling agent needs from the rest of ArmoniK, behind one interface.

Two implementations: through the control plane's compute gateway (the local target, where the control plane
is the single writer of the embedded SQLite store), and directly on the state store and queue adapters
(production backends such as MongoDB and RabbitMQ, where agents writing directly spare the control plane).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field

from armonik_core.domain.options import TaskOptions
from armonik_core.domain.outcomes import TaskOutcome
from armonik_core.domain.records import Result, Task


@dataclass(slots=True)
class AcquiredTask:
    """A task this agent now owns (DISPATCHED to it), with what it needs to run it."""

    task: Task
    #: Defaults that subtasks submitted by the worker inherit.
    session_options: TaskOptions
    session_partitions: list[str]
    #: The queue lease behind the task, renewed by heartbeats and released when the task is finished.
    lease: str
    #: The payload and data dependencies as stored when the task was acquired, so staging needs no lookup.
    inputs: list[Result] = field(default_factory=list)
    #: What every object key the run stores begins with (the compute gateway accepts outputs under it only).
    object_prefix: str = ""


@dataclass(frozen=True, slots=True)
class AcquireRequest:
    """Which tasks an agent asks for: up to `max_tasks` of its partition, waiting up to `wait_seconds`."""

    partition_id: str
    agent_id: str
    hostname: str
    wait_seconds: float
    max_tasks: int = 1

    def with_limits(self, max_tasks: int, wait_seconds: float) -> AcquireRequest:
        # Spelled out: `dataclasses.replace` costs several times more, once per exchange.
        return AcquireRequest(self.partition_id, self.agent_id, self.hostname, wait_seconds, max_tasks)


class ComputeBackend(ABC):
    #: How long a task's lease lasts without a heartbeat: past it the backend may give the task to another
    #: agent, and an agent that could not renew it that long presumes it lost.
    lease_seconds: float = 15.0

    @abstractmethod
    async def acquire(
        self, partition_id: str, agent_id: str, hostname: str, wait_seconds: float
    ) -> AcquiredTask | None:
        """Take the next task of the partition, waiting up to `wait_seconds` for one; None if none came."""

    @abstractmethod
    async def start(
        self, acquired: AcquiredTask, fetched_at: float | None = None, started_at: float | None = None
    ) -> None:
        """The task's inputs are in place and the worker is about to run it (PROCESSING); the times are the
        agent's, when it knows them (a start reported late still records when the run began)."""

    @abstractmethod
    async def heartbeat(self, acquired: Sequence[AcquiredTask]) -> set[str]:
        """Keep the tasks' leases alive; returns the ids of those that were cancelled meanwhile."""

    @abstractmethod
    async def finish(self, acquired: AcquiredTask, outcome: TaskOutcome) -> None:
        """Record the outcome atomically (results, subtasks, status, retries, cascade) and drop the lease."""

    async def exchange(
        self, finished: Sequence[tuple[AcquiredTask, TaskOutcome]], request: AcquireRequest | None
    ) -> list[AcquiredTask]:
        """Report outcomes, then take up to `request.max_tasks` tasks (waiting up to `request.wait_seconds`
        for the first): what an agent running short tasks does in one breath. A backend behind a network
        overrides this with a single round trip."""
        for acquired, outcome in finished:
            await self.finish(acquired, outcome)
        if request is None:
            return []
        got: list[AcquiredTask] = []
        wait = request.wait_seconds
        while len(got) < request.max_tasks:
            taken = await self.acquire(request.partition_id, request.agent_id, request.hostname, wait)
            if taken is None:
                break
            got.append(taken)
            wait = 0.0
        return got

    @abstractmethod
    async def get_results(self, result_ids: Sequence[str], acquired: AcquiredTask) -> list[Result]:
        """Result metadata, to fetch data a worker running `acquired` asks for (GetResourceData): those of
        the task's session (others are left out)."""

    async def close(self) -> None:
        """Release connections."""
