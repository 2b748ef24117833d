"""A task queue on RabbitMQ (AMQP 0-9-1, through pika), for deployments with a message broker.

Layout. Each partition has one durable classic queue, `armonik.<prefix>.<partition>` (`armonik.<partition>`
when `Amqp__Prefix` is empty, so that tests or tenants sharing a broker keep apart), declared with
`x-max-priority = Amqp__MaxPriority`. A message is persistent (delivery mode 2), its body the JSON object
`{"task_id", "session_id", "priority"}`; the broker priority is the task's priority clamped into
[0, MaxPriority], while the body keeps the priority as given so that a lease returns the message unchanged.

Publishing. The publishing channel is in publisher-confirm mode and `publish` returns once the broker has
confirmed every message, i.e. written it to disk for a durable queue. pika's BlockingChannel waits for the
confirm of each message before sending the next, so the batch is sent on the channel underneath it and the
confirms are counted as they arrive (`multiple` acks included): one wait per call. Measured here, 10,000
messages in calls of 500: ~4,000 messages/s against ~600 one confirm at a time, on a machine loaded by other
work (the design notes give ~19,800 against ~980 on a quiet one). Messages are `mandatory`, so one the broker cannot route (its queue was
deleted behind our back) is reported instead of silently dropped.

Leases. A taken message is an unacknowledged delivery; the broker keeps it from other consumers for as long
as the delivery is open. The lease deadline is kept by this client: a delivery whose deadline passed is
nacked with requeue (by the next operation, or by the idle tick between operations) and goes back to its
place in the queue. When the client dies, its TCP connection closes and the broker requeues its deliveries at
once; the same happens on `close()`. So, unlike the embedded queue, a lease never outlives the client that
holds it: the broker gives the message back sooner, never later. Delivery tags belong to a channel, so a
handle names the client, the connection (a generation counter) and the tag; a handle that is not among the
deliveries this connection still holds (expired, released, acked, or from a connection since lost) is stale,
and ack, renew and release ignore it.

RabbitMQ's own acknowledgement timeout (`consumer_timeout`, 30 minutes by default) closes a channel holding a
delivery longer than that, whatever the renewals: raise it on the broker for tasks that may run longer.

Delivery counts. Classic queues only flag a delivery as `redelivered`; they keep no count. A first delivery
counts 1. A redelivered one counts one more than this client last saw of it (it remembers the count of every
message it gave back or lost with a connection, for the latest 100,000 of them), or 2 when it never saw it:
exact while one client sees all deliveries of a message, a lower bound otherwise.

Taking. `basic.get` takes one message per round trip (~1 ms on a loaded machine: ~1,500 messages/s with an
ack each). A take of up to `_GET_LIMIT` messages (or from a queue holding no more) uses it; a larger one
opens a consumer whose prefetch is the number of messages wanted (min of `max_messages` and the ready
count), gathers the deliveries and cancels it: ~5 round trips whatever the batch, 3,000 to 8,500 messages/s
in takes of 500 with their acks, depending on the load. The prefetch bounds what the broker sends, so the consumer never
takes more than asked; if a concurrent consumer empties the queue meanwhile, the take stops after
`_SETTLE_SECONDS` without a delivery and returns what it got.

Counting. `depth` is the ready count of a passive declare (0 for a queue never declared, without creating
it); held deliveries are not counted. RabbitMQ answers a count ahead of the requeues still waiting in the
queue's mailbox, so a give-back (release, expiry) ends with a round trip on its channel (`_Link.barrier`)
that lets the queue catch up before this client counts again; the count is exact in practice for the
client's own give-backs, and a moment behind for other clients' (and for the deliveries of a connection
that just closed).

Threads. pika's BlockingConnection is not thread-safe: one thread per client owns the connection and runs
every broker operation in call order; the async methods hand work to it. Between operations, the thread
ticks every `idle_seconds`: it lets pika answer heartbeats, notices a lost connection, and expires leases.

Reconnection. The next operation after a lost connection (broker restart, network) reconnects, with
`Amqp__MaxRetries` attempts and a growing delay, and raises `RabbitMQUnavailableError` naming the broker
when they all fail. An operation whose connection breaks half-way is run once more on a new connection:
a publish may then enqueue a message twice and a take see a message again, which at-least-once delivery
allows (consumers acquire tasks with a conditional update). Ack, renew and release never reconnect: the
deliveries of a lost connection are back in the queue already, so their handles are stale.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import json
import logging
import math
import queue as queue_module
import ssl
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection

from armonik_core.config import ConfigurationError, Environment

from .base import Lease, QueueMessage, TaskQueue

T = TypeVar("T")

log = logging.getLogger(__name__)

#: Takes of at most this many messages use basic.get (one round trip each); larger ones a consumer.
_GET_LIMIT = 4
#: AMQP's prefetch count is a 16-bit field.
_MAX_PREFETCH = 65535
#: How long a consumer take waits for a delivery that may never come (another consumer took the message).
_SETTLE_SECONDS = 0.25
#: Delivery counts remembered for messages this client gave back.
_REMEMBERED_COUNTS = 100_000
#: Messages sent between two flushes of the socket while publishing a large batch.
_FLUSH_EVERY = 1000

#: Errors meaning the connection or one of its channels is gone.
_LINK_ERRORS = (pika.exceptions.AMQPError, OSError)
_AUTH_ERRORS = (
    pika.exceptions.AuthenticationError,
    pika.exceptions.ProbableAuthenticationError,
    pika.exceptions.ProbableAccessDeniedError,
)


class RabbitMQError(RuntimeError):
    """A RabbitMQ operation failed; the message names the broker."""


class RabbitMQUnavailableError(RabbitMQError):
    """The broker cannot be reached, or the connection was lost and could not be restored."""


class RabbitMQRefusedError(RabbitMQError):
    """The broker answered but refused: a nacked or unroutable publish, a queue declared with other arguments."""


@dataclass(frozen=True, slots=True)
class RabbitMQSettings:
    """Connection and layout settings, read from upstream's `Amqp__*` variables by `from_env`."""

    host: str = "127.0.0.1"
    port: int = 5672
    user: str = "guest"
    password: str = field(default="guest", repr=False)
    #: AMQP (plain TCP) or AMQPS (TLS, verified against `ca_path` or the system CAs).
    scheme: str = "AMQP"
    ca_path: str = ""
    #: TLS without any verification of the broker's certificate (test brokers with self-signed certificates).
    allow_insecure_tls: bool = False
    #: TLS with the certificate verified but not its host name.
    allow_host_mismatch: bool = False
    max_priority: int = 10
    prefix: str = ""
    #: Connection attempts before an operation gives up.
    max_retries: int = 5
    #: When set, queues are declared with `x-expires`: the broker deletes a queue unused for that long. For
    #: tests on a shared broker; every client of a queue must use the same value (RabbitMQ refuses a
    #: redeclaration with other arguments).
    queue_expires_seconds: float | None = None

    def __post_init__(self) -> None:
        if self.scheme not in ("AMQP", "AMQPS"):
            raise ConfigurationError(f"Amqp__Scheme={self.scheme!r}: expected AMQP or AMQPS")
        if not 1 <= self.port <= 65535:
            raise ConfigurationError(f"Amqp__Port={self.port}: expected a TCP port (1-65535)")
        if not 1 <= self.max_priority <= 255:
            raise ConfigurationError(f"Amqp__MaxPriority={self.max_priority}: expected 1 to 255")
        if self.max_retries < 1:
            raise ConfigurationError(f"Amqp__MaxRetries={self.max_retries}: expected at least 1")
        if self.queue_expires_seconds is not None and self.queue_expires_seconds <= 0:
            raise ConfigurationError("queue_expires_seconds must be positive")

    @classmethod
    def from_env(cls, env: Environment | None = None) -> RabbitMQSettings:
        env = env or Environment()
        return cls(
            host=env.get("Amqp__Host", "127.0.0.1"),
            port=env.get_int("Amqp__Port", 5672),
            user=env.get("Amqp__User", "guest"),
            password=env.get("Amqp__Password", "guest"),
            scheme=env.get("Amqp__Scheme", "AMQP").strip().upper(),
            ca_path=env.get("Amqp__CaPath", ""),
            allow_insecure_tls=env.get_bool("Amqp__AllowInsecureTls", False),
            allow_host_mismatch=env.get_bool("Amqp__AllowHostMismatch", False),
            max_priority=env.get_int("Amqp__MaxPriority", 10),
            prefix=env.get("Amqp__Prefix", ""),
            max_retries=env.get_int("Amqp__MaxRetries", 5),
        )

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def as_kwargs(self) -> dict[str, Any]:
        """The settings as keyword arguments, to rebuild them elsewhere (another process)."""
        return asdict(self)

    def queue_name(self, partition_id: str) -> str:
        name = ".".join(part for part in ("armonik", self.prefix, partition_id) if part)
        if len(name.encode()) > 255:
            raise ValueError(f"queue name {name!r} is longer than RabbitMQ's 255 bytes")
        return name

    def queue_arguments(self) -> dict[str, Any]:
        arguments: dict[str, Any] = {"x-max-priority": self.max_priority}
        if self.queue_expires_seconds is not None:
            arguments["x-expires"] = int(self.queue_expires_seconds * 1000)
        return arguments

    def ssl_options(self) -> pika.SSLOptions | None:
        """TLS for AMQPS; reading the CA now makes a wrong `Amqp__CaPath` fail at start-up, not at first use."""
        if self.scheme != "AMQPS":
            return None
        try:
            context = ssl.create_default_context(cafile=self.ca_path or None)
        except OSError as error:
            raise ConfigurationError(f"Amqp__CaPath={self.ca_path!r}: cannot load the CA ({error})") from None
        if self.allow_insecure_tls:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        elif self.allow_host_mismatch:
            context.check_hostname = False
        return pika.SSLOptions(context, server_hostname=self.host)


def _encode(message: QueueMessage) -> bytes:
    body = {"task_id": message.task_id, "session_id": message.session_id, "priority": message.priority}
    return json.dumps(body, separators=(",", ":")).encode()


def _decode(body: bytes, partition_id: str) -> QueueMessage | None:
    """The message of a delivery, or None when the body is not one of ours."""
    try:
        data = json.loads(body)
        return QueueMessage(
            str(data["task_id"]), str(data["session_id"]), partition_id, int(data["priority"])
        )
    except (ValueError, KeyError, TypeError):
        return None


def _do_nothing() -> None:
    pass


class _BrokerThread:
    """The one thread that touches the connection: runs submitted jobs in order, and `idle` between them at
    most every `idle_seconds` (also while jobs keep coming, so heartbeats are never starved)."""

    def __init__(self, name: str, idle: Callable[[], None], idle_seconds: float) -> None:
        self._jobs: queue_module.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = (
            queue_module.SimpleQueue()
        )
        self._idle = idle
        self._idle_seconds = idle_seconds
        self._stopping = False
        # A daemon thread: a client nobody closed must not keep the interpreter alive (the broker requeues
        # the deliveries of a connection that disappears with the process).
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, job: Callable[[], T]) -> Future[T]:
        future: Future[T] = Future()
        self._jobs.put((job, future))
        return future

    def stop(self) -> None:
        """Let the jobs already submitted finish, then end the thread."""
        self._stopping = True
        self.submit(_do_nothing)  # wakes the loop up
        self._thread.join()

    def _loop(self) -> None:
        next_idle = time.monotonic() + self._idle_seconds
        while not (self._stopping and self._jobs.empty()):
            try:
                job, future = self._jobs.get(timeout=max(0.0, next_idle - time.monotonic()))
            except queue_module.Empty:
                pass
            else:
                if future.set_running_or_notify_cancel():
                    try:
                        future.set_result(job())
                    except BaseException as error:  # handed to the caller, whatever it is
                        future.set_exception(error)
            if time.monotonic() >= next_idle:
                try:
                    self._idle()
                except Exception:  # the thread must outlive any failure, or every later call would hang
                    log.exception("RabbitMQ queue: the idle tick failed")
                next_idle = time.monotonic() + self._idle_seconds


class _Confirms:
    """Publisher confirms of one channel. The broker numbers published messages 1, 2, 3... and acks (or nacks)
    each, or every one up to a number at once (`multiple`), not necessarily in order."""

    def __init__(self, wake: Callable[[], None]) -> None:
        self.sent = 0
        self._floor = 0  # every message up to this number is confirmed
        self._above: set[int] = set()  # confirmed one by one beyond the floor
        self.nacked = 0
        self.returned: list[str] = []  # routing keys of messages the broker could not route
        self._wake = wake

    @property
    def settled(self) -> bool:
        return self._floor >= self.sent

    def on_confirm(self, frame: Any) -> None:
        method = frame.method
        tag = int(method.delivery_tag)
        if isinstance(method, pika.spec.Basic.Nack):
            self.nacked += tag - self._floor if method.multiple else 1
        if method.multiple:
            self._floor = max(self._floor, tag)
            self._above = {t for t in self._above if t > self._floor}
        else:
            self._above.add(tag)
        while self._floor + 1 in self._above:
            self._floor += 1
            self._above.discard(self._floor)
        if self.settled:
            self._wake()

    def on_return(self, _channel: Any, method: Any, _properties: Any, _body: bytes) -> None:
        self.returned.append(str(method.routing_key))


@dataclass(slots=True)
class _Held:
    """A delivery this client holds: the lease behind a handle."""

    tag: int
    deadline: float  # time.monotonic()
    message_id: str | None
    deliveries: int


class _Link:
    """One connection and its channels, with what is only true while it lasts: the queues declared on it and
    the deliveries held on its consuming channel (the broker requeues them when the connection closes).

    - `consume`: basic.get, consumers, acks and nacks. A passive declare of a queue declared on this
      connection also goes here, so that it counts the messages this channel nacked just before.
    - `probe`: first declarations and passive declares of unknown queues, which close their channel when
      they fail (404, 406): never on `consume`, whose closing would give back every held delivery.
    - `publish`: in confirm mode, driven through the channel underneath (see `_Confirms`).
    """

    def __init__(self, connection: BlockingConnection, generation: int, timeout: float) -> None:
        self.connection = connection
        self.generation = generation
        self.consume: BlockingChannel = connection.channel()
        self.probe: BlockingChannel = connection.channel()
        self.publish: BlockingChannel = connection.channel()
        self.confirms = _Confirms(self.wake)
        self.declared: set[str] = set()
        self.held: dict[str, _Held] = {}
        self.earliest = math.inf  # no held deadline is earlier than this
        self.prefetch = 0
        self._start_confirms(timeout)

    def _start_confirms(self, timeout: float) -> None:
        # BlockingChannel.confirm_delivery would make each basic_publish wait for its own confirm.
        channel = self.publish._impl
        selected: list[bool] = []

        def on_select_ok(_frame: Any) -> None:
            selected.append(True)
            self.wake()

        channel.confirm_delivery(ack_nack_callback=self.confirms.on_confirm, callback=on_select_ok)
        channel.add_on_return_callback(self.confirms.on_return)
        self.wait(lambda: bool(selected), timeout, "enabling publisher confirms")

    def wake(self) -> None:
        """End the current `process_data_events` wait: a callback of the channel underneath has news."""
        self.connection.call_later(0, _do_nothing)

    def wait(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            left = deadline - time.monotonic()
            if left <= 0:
                raise pika.exceptions.AMQPConnectionError(f"no answer within {timeout:g} s while {what}")
            self.connection.process_data_events(time_limit=min(left, 1.0))

    def barrier(self) -> None:
        """A round trip on the consuming channel, after nacks with requeue: once it is answered, the broker's
        channel has handed the requeues to their queues. A queue answers a message count (`stat`) ahead of
        the requeues waiting in its mailbox (its process gives `stat` a higher priority), so without this a
        `depth` sent right after a `release` misses the released messages (4 times in 10 on this machine).
        With it, the count comes a round trip later, by which time the queue has processed them (0 in 1,500).
        Re-sending the current prefetch changes nothing else."""
        self.consume.basic_qos(prefetch_count=self.prefetch)

    def is_open(self) -> bool:
        channels = (self.consume, self.probe, self.publish)
        return bool(self.connection.is_open) and all(channel.is_open for channel in channels)

    def reopen_probe(self) -> None:
        self.probe = self.connection.channel()

    def close(self) -> None:
        try:
            if self.connection.is_open:
                self.connection.close()
        except _LINK_ERRORS as error:
            log.debug("closing a RabbitMQ connection failed: %r", error)


_Delivery = tuple[Any, Any, bytes]  # (Basic.GetOk | Basic.Deliver, BasicProperties, body)


class RabbitMQQueue(TaskQueue):
    """TaskQueue on RabbitMQ; see the module docstring for the model (leases, counts, threads, reconnection).

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
        self._link: _Link | None = None
        self._closed = False
        self._thread = _BrokerThread(f"rabbitmq-queue-{self._client_id[:6]}", self._idle, idle_seconds)

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

        def take(link: _Link) -> list[Lease]:
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
            except _AUTH_ERRORS as error:
                raise RabbitMQUnavailableError(
                    f"RabbitMQ at {self._settings.address} rejected user {self._settings.user!r}: {error!r}"
                ) from None
            except _LINK_ERRORS as error:
                last = error
            if attempt < attempts:
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
        raise RabbitMQUnavailableError(
            f"RabbitMQ at {self._settings.address} is unreachable ({attempts} attempts): {last!r}"
        )

    def _ensure_link(self) -> _Link:
        if self._link is not None and self._link.is_open():
            return self._link
        self._drop_link("the connection was closed")
        connection = self._connect()
        try:
            self._link = _Link(connection, next(self._generations), self._timeout)
        except _LINK_ERRORS as error:
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

    def _with_link(self, action: str, work: Callable[[_Link], T]) -> T:
        """Run `work` on a live connection; if the connection breaks on the way, once more on a new one."""
        for attempt in (1, 2):
            link = self._ensure_link()
            try:
                return work(link)
            except _LINK_ERRORS as error:
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
        except _LINK_ERRORS as error:
            self._drop_link(error)

    def _disconnect(self) -> None:
        link, self._link = self._link, None
        if link is not None:
            link.close()

    # -- operations (broker thread) -------------------------------------------------------------------------

    def _declare(self, link: _Link, name: str) -> None:
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

    def _publish_on(self, link: _Link, messages: list[QueueMessage]) -> None:
        names = {m.partition_id: self._settings.queue_name(m.partition_id) for m in messages}
        for name in names.values():
            self._declare(link, name)
        confirms, channel = link.confirms, link.publish._impl
        confirms.returned.clear()
        confirms.nacked = 0
        for index, message in enumerate(messages, 1):
            channel.basic_publish(
                exchange="",
                routing_key=names[message.partition_id],
                body=_encode(message),
                properties=self._properties(message),
                mandatory=True,
            )
            confirms.sent += 1
            if index % _FLUSH_EVERY == 0:
                link.connection.process_data_events(time_limit=0)  # let the broker start on it
        link.wait(
            lambda: confirms.settled, self._timeout, f"waiting for the confirms of {len(messages)} messages"
        )
        self._check_confirms(link, len(messages))

    def _properties(self, message: QueueMessage) -> pika.BasicProperties:
        return pika.BasicProperties(
            delivery_mode=pika.DeliveryMode.Persistent,
            priority=min(max(message.priority, 0), self._settings.max_priority),
            message_id=f"{self._client_id}.{next(self._message_ids)}",
            content_type="application/json",
        )

    def _check_confirms(self, link: _Link, count: int) -> None:
        confirms = link.confirms
        if confirms.returned:
            # Queues deleted behind our back: declare them again next time.
            link.declared.difference_update(confirms.returned)
            raise RabbitMQRefusedError(
                f"RabbitMQ at {self._settings.address} could not route {len(confirms.returned)} of {count}"
                f" messages (queues {sorted(set(confirms.returned))} missing); publish them again"
            )
        if confirms.nacked:
            raise RabbitMQRefusedError(
                f"RabbitMQ at {self._settings.address} refused {confirms.nacked} of {count} messages"
                " (negative publisher confirm); publish them again"
            )

    def _take_on(
        self, link: _Link, partition_id: str, name: str, max_messages: int, lease_seconds: float
    ) -> list[Lease]:
        self._expire(link)
        self._declare(link, name)
        want = max_messages
        if want > _GET_LIMIT:
            ready = link.consume.queue_declare(name, passive=True).method.message_count
            want = min(want, ready, _MAX_PREFETCH)
        if want <= 0:
            return []
        deliveries = self._get(link, name, want) if want <= _GET_LIMIT else self._consume(link, name, want)
        deadline = time.monotonic() + lease_seconds
        try:
            leases = [self._hold(link, partition_id, delivery, deadline) for delivery in deliveries]
        except BaseException as error:
            # A delivery open on the channel but not held would break `_settle`'s `multiple` frames: give
            # them all back with the connection instead.
            self._drop_link(error)
            raise
        return [lease for lease in leases if lease is not None]

    @staticmethod
    def _get(link: _Link, name: str, want: int) -> list[_Delivery]:
        deliveries: list[_Delivery] = []
        for _ in range(want):
            method, properties, body = link.consume.basic_get(name, auto_ack=False)
            if method is None:
                break
            deliveries.append((method, properties, body))
        return deliveries

    @staticmethod
    def _consume(link: _Link, name: str, want: int) -> list[_Delivery]:
        """A consumer allowed `want` unacked deliveries, cancelled once it has them (or once none came for
        `_SETTLE_SECONDS`: another consumer took them)."""
        if link.prefetch != want:
            link.consume.basic_qos(prefetch_count=want)  # applies to consumers created from now on
            link.prefetch = want
        deliveries: list[_Delivery] = []

        def on_message(_channel: Any, method: Any, properties: Any, body: bytes) -> None:
            deliveries.append((method, properties, body))

        tag = link.consume.basic_consume(name, on_message, auto_ack=False)
        deadline = time.monotonic() + _SETTLE_SECONDS
        while len(deliveries) < want and (left := deadline - time.monotonic()) > 0:
            before = len(deliveries)
            link.connection.process_data_events(time_limit=left)
            if len(deliveries) > before:
                deadline = time.monotonic() + _SETTLE_SECONDS
        # Deliveries arriving after the cut (only possible when the wait ran out) are requeued by pika.
        link.consume.basic_cancel(tag)
        return deliveries

    def _hold(self, link: _Link, partition_id: str, delivery: _Delivery, deadline: float) -> Lease | None:
        method, properties, body = delivery
        tag = int(method.delivery_tag)
        message = _decode(body, partition_id)
        if message is None:
            log.error(
                "RabbitMQ queue of partition %s: dropping a message that is not a task: %r",
                partition_id,
                body[:200],
            )
            link.consume.basic_reject(tag, requeue=False)
            return None
        message_id = properties.message_id
        deliveries = 1
        if method.redelivered:
            deliveries = self._counts.pop(message_id, 1) + 1 if message_id else 2
        handle = f"{self._client_id}:{link.generation}:{tag}"
        link.held[handle] = _Held(tag, deadline, message_id, deliveries)
        link.earliest = min(link.earliest, deadline)
        return Lease(handle, message, deliveries)

    def _depth_on(self, link: _Link, name: str) -> int:
        self._expire(link)
        if name in link.declared:
            return int(link.consume.queue_declare(name, passive=True).method.message_count)
        try:
            return int(link.probe.queue_declare(name, passive=True).method.message_count)
        except pika.exceptions.ChannelClosedByBroker as error:
            if error.reply_code != 404:
                raise
            link.reopen_probe()
            return 0

    # -- leases (broker thread) -----------------------------------------------------------------------------

    def _expire(self, link: _Link) -> None:
        """Give back the deliveries whose lease ran out."""
        now = time.monotonic()
        if now < link.earliest:
            return
        expired = [handle for handle, held in link.held.items() if held.deadline <= now]
        self._settle(link, [self._give_back(link, handle) for handle in expired], requeue=True)
        link.earliest = min((held.deadline for held in link.held.values()), default=math.inf)

    def _give_back(self, link: _Link, handle: str) -> int:
        held = link.held.pop(handle)
        self._remember(held)
        return held.tag

    def _remember(self, held: _Held) -> None:
        if held.message_id:
            self._counts[held.message_id] = held.deliveries
            self._counts.move_to_end(held.message_id)
            if len(self._counts) > _REMEMBERED_COUNTS:
                self._counts.popitem(last=False)

    def _renew_held(self, handles: list[str], lease_seconds: float) -> None:
        link = self._link
        if link is None:
            return
        deadline = time.monotonic() + lease_seconds
        for handle in handles:
            held = link.held.get(handle)
            if held is not None:
                held.deadline = deadline

    def _settle_handles(self, handles: list[str], requeue: bool) -> None:
        """Ack (or requeue) the held deliveries among `handles`; the others are stale and ignored. Never
        reconnects: a lost connection's deliveries are back in the queue already."""
        link = self._link
        if link is None:
            return
        live = [handle for handle in dict.fromkeys(handles) if handle in link.held]
        if requeue:
            tags = [self._give_back(link, handle) for handle in live]
        else:
            tags = [link.held.pop(handle).tag for handle in live]
        try:
            self._settle(link, tags, requeue)
        except _LINK_ERRORS as error:
            self._drop_link(error)
            log.warning(
                "RabbitMQ connection lost while settling %d deliveries: they will be delivered again",
                len(tags),
            )

    @staticmethod
    def _settle(link: _Link, tags: list[int], requeue: bool) -> None:
        """Ack or requeue deliveries already removed from `link.held`. A `multiple` frame settles every open
        delivery of the channel up to its tag, and the open deliveries are exactly the held ones plus these:
        one frame covers the tags below the oldest delivery still held, the others go one by one."""
        if not tags:
            return
        tags.sort()
        oldest_held = min((held.tag for held in link.held.values()), default=None)
        cut = len(tags) if oldest_held is None else bisect.bisect_left(tags, oldest_held)
        channel = link.consume

        def settle(tag: int, multiple: bool) -> None:
            if requeue:
                channel.basic_nack(delivery_tag=tag, multiple=multiple, requeue=True)
            else:
                channel.basic_ack(delivery_tag=tag, multiple=multiple)

        if cut:
            settle(tags[cut - 1], multiple=True)
        for tag in tags[cut:]:
            settle(tag, multiple=False)
        if requeue:
            link.barrier()
