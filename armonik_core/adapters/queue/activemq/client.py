"""The asyncio face of the ActiveMQ queue: hands each operation to the client's reactor thread and waits.

Connection attempts are bounded (`Amqp__MaxRetries`, a growing pause between them); an operation whose
connection drops under it is run again on a new one, except work on leases, whose handles are stale then.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

from armonik_core.settings.environment import Environment

from ..base import Lease, QueueMessage, TaskQueue
from .errors import ActiveMQError, ActiveMQUnavailable, ConnectFailed, ConnectionLost
from .leases import Engine
from .messages import encode
from .settings import ActiveMQSettings

log = logging.getLogger("armonik_core.adapters.queue.activemq")


class ActiveMQQueue(TaskQueue):
    """TaskQueue on ActiveMQ over AMQP 1.0; see the package docstring for the model."""

    def __init__(self, settings: ActiveMQSettings | None = None) -> None:
        self._settings = settings or ActiveMQSettings()
        self._engine = Engine(self._settings)
        self._closed = False

    @classmethod
    def from_env(cls, env: Environment) -> ActiveMQQueue:
        return cls(ActiveMQSettings.from_env(env))

    @property
    def settings(self) -> ActiveMQSettings:
        return self._settings

    async def _submit(self, what: str, work: Callable[[Future[Any]], None]) -> Any:
        future = self._engine.call(work)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), self._settings.operation_timeout)
        except asyncio.TimeoutError:
            raise ActiveMQError(
                f"ActiveMQ at {self._settings.endpoint} did not complete {what} within "
                f"{self._settings.operation_timeout:g} s"
            ) from None

    async def _connect(self) -> None:
        """Connect if needed, with bounded retries and a growing pause between attempts."""
        last = ""
        for attempt in range(self._settings.max_retries + 1):
            if attempt:
                await asyncio.sleep(min(0.25 * 2 ** (attempt - 1), 5.0))
            try:
                await self._submit("connecting", self._engine.do_connect)
                return
            except ConnectFailed as failure:
                last = str(failure)
                if failure.fatal:
                    raise ActiveMQError(
                        f"ActiveMQ at {self._settings.endpoint} refused the connection: {last}"
                    ) from None
        raise ActiveMQUnavailable(
            f"ActiveMQ at {self._settings.endpoint} is unreachable after {self._settings.max_retries + 1} "
            f"attempt(s): {last}"
        )

    async def _retrying(self, what: str, work: Callable[[Future[Any]], None]) -> Any:
        """Run `work` on a live connection; if the connection drops under it, reconnect and run it again."""
        self._check_open()
        last = ""
        for attempt in range(self._settings.max_retries + 1):
            await self._connect()
            try:
                return await self._submit(what, work)
            except ConnectionLost as lost:
                log.warning(
                    "%s on ActiveMQ at %s interrupted (%s); attempt %d",
                    what,
                    self._settings.endpoint,
                    lost,
                    attempt + 1,
                )
                last = str(lost)
        raise ActiveMQUnavailable(
            f"ActiveMQ at {self._settings.endpoint} kept dropping the connection during {what}: {last}"
        )

    async def _on_held(self, what: str, work: Callable[[Future[Any]], None]) -> None:
        """Work on leases: without a connection every handle is stale, so there is nothing to do."""
        self._check_open()
        if not self._engine.started:
            return
        try:
            await self._submit(what, work)
        except ConnectionLost:
            pass  # the broker gives back what the lost connection held

    def _check_open(self) -> None:
        if self._closed:
            raise ActiveMQError(f"the ActiveMQ client of {self._settings.endpoint} is closed")

    async def publish(self, messages: Sequence[QueueMessage]) -> None:
        """Send durable messages; returns when the broker accepted (stored) them all. If the connection drops
        midway the whole batch is sent again: a message may then be queued twice (at-least-once)."""
        if not messages:
            return
        encoded = [encode(self._settings, message) for message in messages]
        await self._retrying("publish", lambda future: self._engine.do_publish(encoded, future))

    async def pull(
        self, partition_id: str, max_messages: int, lease_seconds: float, consumer: str
    ) -> list[Lease]:
        if max_messages <= 0:
            return []
        addresses = {band: self._settings.address(partition_id, band) for band in range(self._settings.bands)}
        leases: list[Lease] = await self._retrying(
            "pull",
            lambda future: self._engine.do_pull(
                addresses, max_messages, lease_seconds, consumer or "agent", future
            ),
        )
        return leases

    async def renew(self, leases: Sequence[Lease], lease_seconds: float) -> None:
        if leases:
            handles = [lease.handle for lease in leases]
            await self._on_held("renew", lambda future: self._engine.do_renew(handles, lease_seconds, future))

    async def ack(self, leases: Sequence[Lease]) -> None:
        if leases:
            handles = [lease.handle for lease in leases]
            await self._on_held("ack", lambda future: self._engine.do_ack(handles, future))

    async def release(self, leases: Sequence[Lease]) -> None:
        """Give messages back at once, in their place, with a redelivery counted; returns once the broker has
        them back."""
        if leases:
            handles = [lease.handle for lease in leases]
            await self._on_held("release", lambda future: self._engine.do_release(handles, future))

    async def depth(self, partition_id: str) -> int:
        addresses = [self._settings.address(partition_id, band) for band in range(self._settings.bands)]
        depth: int = await self._retrying("depth", lambda future: self._engine.do_depth(addresses, future))
        return depth

    async def close(self) -> None:
        """Close the connection (idempotent). The broker puts the messages this client still leased back in
        the queue at once, counting a redelivery: a closed client's leases do not outlive it."""
        if self._closed:
            return
        self._closed = True
        if not self._engine.started:
            return
        try:
            await self._submit("close", self._engine.do_close)
        except ActiveMQError:
            return
        # The thread ends once the broker has confirmed the close, i.e. has requeued what we held.
        await asyncio.get_running_loop().run_in_executor(None, self._engine.join, 10.0)
