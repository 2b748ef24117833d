"""The asyncio face of the RabbitMQ queue: each operation runs on the client's broker thread, in call order."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from armonik_core.settings.environment import Environment

from ..base import Lease, QueueMessage, TaskQueue
from .leases import Leasing
from .link import Link
from .publishing import Publishing
from .settings import RabbitMQSettings


class RabbitMQQueue(Publishing, Leasing, TaskQueue):
    """TaskQueue on RabbitMQ; see the package docstring for the model (leases, counts, threads, reconnection)."""

    @classmethod
    def from_env(cls, env: Environment | None = None) -> RabbitMQQueue:
        return cls(RabbitMQSettings.from_env(env))

    @property
    def settings(self) -> RabbitMQSettings:
        return self._settings

    # -- TaskQueue ------------------------------------------------------------------------------------------

    async def publish(self, messages: Sequence[QueueMessage]) -> None:
        if not messages:
            return
        batch = list(messages)
        await self._call(lambda: self._with_link("publishing", lambda link: self._publish_on(link, batch)))

    async def pull(
        self, partition_id: str, max_messages: int, lease_seconds: float, consumer: str
    ) -> list[Lease]:
        """Take up to `max_messages` ready messages, best first. If the awaiting coroutine is cancelled once
        the thread has taken them, the leases are lost to the caller and expire (at-least-once delivery)."""
        if max_messages <= 0:
            return []
        name = self._settings.queue_name(partition_id)

        def take(link: Link) -> list[Lease]:
            return self._take_on(link, partition_id, name, max_messages, lease_seconds)

        return await self._call(lambda: self._with_link("taking messages", take))

    async def renew(self, leases: Sequence[Lease], lease_seconds: float) -> None:
        if leases:
            handles = [lease.handle for lease in leases]
            await self._call(lambda: self._renew_held(handles, lease_seconds))

    async def ack(self, leases: Sequence[Lease]) -> None:
        """Remove messages for good. A stale handle does nothing: the message is back in the queue or with
        another consumer, and at-least-once delivery covers the duplicate."""
        if leases:
            handles = [lease.handle for lease in leases]
            await self._call(lambda: self._settle_handles(handles, requeue=False))

    async def release(self, leases: Sequence[Lease]) -> None:
        """Give messages back at once, each to its place in the queue."""
        if leases:
            handles = [lease.handle for lease in leases]
            await self._call(lambda: self._settle_handles(handles, requeue=True))

    async def depth(self, partition_id: str) -> int:
        name = self._settings.queue_name(partition_id)
        return await self._call(
            lambda: self._with_link("counting messages", lambda link: self._depth_on(link, name))
        )

    async def close(self) -> None:
        """Close the connection (the broker requeues the deliveries still held) and stop the thread.
        Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            await asyncio.wrap_future(self._thread.submit(self._disconnect))
        finally:
            # Nothing is queued behind `_disconnect`: the thread exits at once.
            self._thread.stop()
