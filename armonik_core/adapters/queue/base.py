"""The queue interface every backend (embedded, RabbitMQ, ActiveMQ) implements.

Delivery is at least once: a message taken by a consumer is leased, and comes back to the queue if the
lease is neither renewed nor acknowledged in time (the consumer died). Consumers therefore acquire the
task in the state store with a conditional update, so a duplicate delivery never runs a task twice.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar


@dataclass(frozen=True, slots=True)
class QueueMessage:
    """A task ready to run, as published."""

    task_id: str
    session_id: str
    partition_id: str
    priority: int = 0


@dataclass(frozen=True, slots=True)
class Lease:
    """A message taken by a consumer; `handle` is the backend's receipt for ack/renew/release."""

    handle: str
    message: QueueMessage
    deliveries: int = 1


_Queue = TypeVar("_Queue", bound="TaskQueue")


class TaskQueue(ABC):
    @abstractmethod
    async def publish(self, messages: Sequence[QueueMessage]) -> None:
        """Durably enqueue messages (each on its partition's queue) before returning. Higher priority first,
        then first in, first out."""

    @abstractmethod
    async def pull(
        self, partition_id: str, max_messages: int, lease_seconds: float, consumer: str
    ) -> list[Lease]:
        """Take up to `max_messages` without waiting; an empty list when the queue is empty."""

    @abstractmethod
    async def renew(self, leases: Sequence[Lease], lease_seconds: float) -> None:
        """Extend leases still held, so a long task keeps its message."""

    @abstractmethod
    async def ack(self, leases: Sequence[Lease]) -> None:
        """The messages are done with: remove them for good."""

    @abstractmethod
    async def release(self, leases: Sequence[Lease]) -> None:
        """Give messages back at once (the consumer will not process them)."""

    @abstractmethod
    async def depth(self, partition_id: str) -> int:
        """Messages waiting (not leased) on a partition's queue."""

    async def close(self) -> None:
        """Release connections."""

    async def __aenter__(self: _Queue) -> _Queue:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """A queue opened for one block (a tool, a test) has its connections released however it ends."""
        await self.close()
