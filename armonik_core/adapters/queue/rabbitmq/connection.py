"""A RabbitMQ client's connection: opened on demand, dropped and reopened when the broker or the network fails.

The next operation after a lost connection (broker restart, network) reconnects, with `Amqp__MaxRetries`
attempts and a growing delay, and raises `RabbitMQUnavailableError` naming the broker when they all fail.
An operation whose connection breaks half-way is run once more on a new connection (`_with_link`): a publish
may then enqueue a message twice and a take see a message again, which at-least-once delivery allows
(consumers acquire tasks with a conditional update). The deliveries of a lost connection are back in the
queue already: their handles are stale, and the client remembers their delivery counts (`_remember`).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingConnection

from .errors import AUTH_ERRORS, LINK_ERRORS, RabbitMQError, RabbitMQRefusedError, RabbitMQUnavailableError
from .link import Held, Link
from .settings import RabbitMQSettings
from .thread import BrokerThread, T

log = logging.getLogger("armonik_core.adapters.queue.rabbitmq")

#: Delivery counts remembered for messages this client gave back.
_REMEMBERED_COUNTS = 100_000


class Connected:
    """The connection of a RabbitMQ client, owned by its broker thread; the layers above run on it.

    `idle_seconds` is the period of the tick that serves heartbeats and expires leases between operations
    (so a lease comes back at most that late); `operation_timeout` bounds a wait for the broker's answer.
    """

    def __init__(
        self,
        settings: RabbitMQSettings | None = None,
        *,
        heartbeat_seconds: int = 30,
        idle_seconds: float = 0.2,
        operation_timeout: float = 30.0,
        retry_delay: float = 0.25,
    ) -> None:
        self._settings = settings or RabbitMQSettings()
        self._client_id = uuid.uuid4().hex[:16]
        self._parameters = pika.ConnectionParameters(
            host=self._settings.host,
            port=self._settings.port,
            credentials=pika.PlainCredentials(self._settings.user, self._settings.password),
            ssl_options=self._settings.ssl_options(),
            heartbeat=heartbeat_seconds,
            connection_attempts=1,
            socket_timeout=min(operation_timeout, 10.0),
            stack_timeout=operation_timeout,
            blocked_connection_timeout=operation_timeout,
            client_properties={"connection_name": f"armonik-queue-{self._client_id}"},
        )
        self._arguments = self._settings.queue_arguments()
        self._timeout = operation_timeout
        self._retry_delay = retry_delay
        self._message_ids = itertools.count(1)
        self._generations = itertools.count(1)
        self._counts: OrderedDict[str, int] = OrderedDict()
        self._link: Link | None = None
        self._closed = False
        self._thread = BrokerThread(f"rabbitmq-queue-{self._client_id[:6]}", self._idle, idle_seconds)

    # -- plumbing (async side) ------------------------------------------------------------------------------

    async def _call(self, job: Callable[[], T]) -> T:
        if self._closed:
            raise RabbitMQError(f"the RabbitMQ queue client for {self._settings.address} is closed")
        return await asyncio.wrap_future(self._thread.submit(job))

    # -- connection (broker thread) -------------------------------------------------------------------------

    def _connect(self) -> BlockingConnection:
        """A new connection, after up to `max_retries` attempts with a doubling delay."""
        attempts = self._settings.max_retries
        delay = self._retry_delay
        last: BaseException | None = None
        for attempt in range(1, attempts + 1):
            try:
                return BlockingConnection(self._parameters)
            except AUTH_ERRORS as error:
                raise RabbitMQUnavailableError(
                    f"RabbitMQ at {self._settings.address} rejected user {self._settings.user!r}: {error!r}"
                ) from None
            except LINK_ERRORS as error:
                last = error
            if attempt < attempts:
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
        raise RabbitMQUnavailableError(
            f"RabbitMQ at {self._settings.address} is unreachable ({attempts} attempts): {last!r}"
        )

    def _ensure_link(self) -> Link:
        if self._link is not None and self._link.is_open():
            return self._link
        self._drop_link("the connection was closed")
        connection = self._connect()
        try:
            self._link = Link(connection, next(self._generations), self._timeout)
        except LINK_ERRORS as error:
            if connection.is_open:
                connection.close()
            raise RabbitMQUnavailableError(
                f"RabbitMQ at {self._settings.address}: could not open channels: {error!r}"
            ) from error
        return self._link

    def _drop_link(self, reason: object) -> None:
        """Forget the connection: the broker requeues what it held, so its handles become stale."""
        link, self._link = self._link, None
        if link is None:
            return
        for held in link.held.values():
            self._remember(held)
        if link.held:
            log.warning(
                "lost the connection to RabbitMQ at %s (%s): the broker takes back %d leased messages",
                self._settings.address,
                reason,
                len(link.held),
            )
        link.close()

    def _with_link(self, action: str, work: Callable[[Link], T]) -> T:
        """Run `work` on a live connection; if the connection breaks on the way, once more on a new one."""
        for attempt in (1, 2):
            link = self._ensure_link()
            try:
                return work(link)
            except LINK_ERRORS as error:
                self._drop_link(error)
                if attempt == 2:
                    raise RabbitMQUnavailableError(
                        f"RabbitMQ at {self._settings.address}: connection lost while {action}: {error!r}"
                    ) from error
                log.info("RabbitMQ connection lost while %s (%r); reconnecting", action, error)
        raise AssertionError("unreachable")

    def _idle(self) -> None:
        """Between operations: answer heartbeats, notice a lost connection, expire leases."""
        link = self._link
        if link is None:
            return
        try:
            link.connection.process_data_events(time_limit=0)
            if not link.is_open():
                raise pika.exceptions.ChannelWrongStateError("a channel was closed by the broker")
            self._expire(link)
        except LINK_ERRORS as error:
            self._drop_link(error)

    def _disconnect(self) -> None:
        link, self._link = self._link, None
        if link is not None:
            link.close()

    # -- operations (broker thread) -------------------------------------------------------------------------

    def _declare(self, link: Link, name: str) -> None:
        """Declare a queue once per connection, on the probe channel (a refusal closes the channel)."""
        if name in link.declared:
            return
        try:
            link.probe.queue_declare(name, durable=True, arguments=self._arguments)
        except pika.exceptions.ChannelClosedByBroker as error:
            link.reopen_probe()
            if error.reply_code == 406:
                raise RabbitMQRefusedError(
                    f"RabbitMQ at {self._settings.address}: queue {name} exists with other arguments than"
                    f" {self._arguments} (another Amqp__MaxPriority?): {error.reply_text}"
                ) from None
            raise
        link.declared.add(name)

    def _remember(self, held: Held) -> None:
        if held.message_id:
            self._counts[held.message_id] = held.deliveries
            self._counts.move_to_end(held.message_id)
            if len(self._counts) > _REMEMBERED_COUNTS:
                self._counts.popitem(last=False)

    def _expire(self, link: Link) -> None:
        """Give back the deliveries whose lease ran out (the leases layer does)."""
