"""The task queue on an ActiveMQ classic broker, over AMQP 1.0 (upstream ArmoniK's default queue).

Addressing. A partition's messages live on `{Prefix}{partition}{Separator}q{band}` (upstream's naming). ActiveMQ
orders a queue by JMS priority (0-9) when the queue's policy has `prioritizedMessages="true"`, so one address
holds ten priority levels: task priority p (clamped to 0..MaxPriority) goes to band p // 10 with JMS priority
p % 10, and a pull drains the bands from the highest down. MaxPriority <= 9 gives a partition a single address;
upstream's MaxPriority=10 gives two (band 1 holding priority 10 alone). The message carries the task, its
session, partition and priority (unclamped) as application properties, and a `MessageUid`.

Leases. A lease is an unsettled delivery: the broker keeps the message, invisible to other consumers, until the
client settles it. `pull` asks the broker how many messages each band has, then opens one AMQP session (a
"group") and takes them with *drains* (take up to n, answer at once, even with nothing), so that a pull never
waits for publications. `ack` settles deliveries as accepted. Giving messages back (`release`, or a lease that
ran out) ends the group's session: ActiveMQ then puts every unsettled message of the session back in its place
in the queue at once and counts a redelivery (the AMQP `released`/`modified` outcomes do not do that: ActiveMQ 5
hands those back to the *same* link, and detaching a link does not count a redelivery). A release that
concerns only part of a group ends the session and takes the other messages back through a receiver with a JMS
selector on their `MessageUid` (another consumer may take one in that instant: at-least-once delivery covers
it, and its holder's handle then does nothing). Lease expiry is the client's: a timer gives back every lease
not renewed by its deadline. A client that closes or dies loses its connection, and the broker puts the
messages it held back at once, counting a redelivery, rather than when their leases would have run out.
Handles are only valid on the connection that took them: after an expiry, a release or a reconnection they are
stale, and ack/renew/release ignore them.

ActiveMQ 5's drains have a race between connections (see `_Drainer`): when another connection makes a queue
dispatch at the very moment a drain ends, a message may stay assigned to the draining receiver without being
sent; it comes back when that receiver's group ends (its leases acked, released or expired): delayed, not
lost. One client (one connection) publishing and pulling never hits it, thanks to the queues'
`optimizedDispatch` policy.

`deliveries` is the AMQP header's delivery-count + 1. ActiveMQ keeps that count in memory: after a broker
restart a message's count starts again from 0.

Durability: messages are sent durable, and `publish` returns once the broker has accepted every one (ActiveMQ
accepts a persistent message after storing it in KahaDB). `ack` settles deliveries without waiting for the
broker (ActiveMQ settles first): a client that dies right after an ack may see the message redelivered.

Depth: the broker's statistics plugin (`<statisticsBrokerPlugin/>`) answers a message sent to
`ActiveMQ.Statistics.Destination.<queue>` with the queue's counters; depth = size - inflightCount: one round
trip, no browsing. A release returns once the broker confirmed it, so a depth that follows counts it; but the
broker updates its in-flight count in its own time after a dispatch, and settles acks without confirming them,
so a depth right after a pull or an ack may be a moment behind (a message too many).

Threading: proton is callback based and not thread safe. Each client runs one proton `Container` on a thread
of its own; the async methods hand it closures through an `EventInjector` and wait on futures. A thread of our
own rather than `BlockingConnection`, because leases need many sessions, drains and the settlement of any
delivery at any time, which the blocking API does not offer.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from proton import Delivery, Handler, Message, SSLDomain
from proton.handlers import MessagingHandler
from proton.reactor import ApplicationEvent, Container, EventInjector, Selector

from armonik_core.config import ConfigurationError, Environment

from .base import Lease, QueueMessage, TaskQueue

log = logging.getLogger(__name__)

#: JMS priorities ActiveMQ orders a queue by.
JMS_LEVELS = 10
STATS_PREFIX = "ActiveMQ.Statistics.Destination."
#: A property asking the statistics plugin for an empty reply after the last queue's, so that a query about a
#: queue that does not exist yet is answered too.
STATS_END_LIST = "ActiveMQ.Statistics.Destination.List.End.With.Null"
#: A drain ActiveMQ has not finished by then is taken as finished: ActiveMQ 5 may leave the completion of a
#: drain pending when another connection dispatches to the same queue at that instant (see `_Drainer`).
DRAIN_TIMEOUT = 5.0
#: Characters ActiveMQ reads as wildcards or separators in a destination name.
_FORBIDDEN_IN_PARTITION = set("*>, \t\r\n")


class ActiveMQError(RuntimeError):
    """The broker refused or failed an operation; the message says which broker and what happened."""


class ActiveMQUnavailable(ActiveMQError):
    """The broker could not be reached within the bounded retries."""


class _ConnectionLost(Exception):
    """The connection went away while an operation was under way (internal: retried or turned into a
    named error by the async layer)."""


class _ConnectFailed(Exception):
    def __init__(self, reason: str, fatal: bool = False) -> None:
        super().__init__(reason)
        self.fatal = fatal


# -- settings -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ActiveMQSettings:
    """Upstream's `Amqp__*` settings. Port 5673: the broker `tools/activemq/start-activemq.sh` starts (5672,
    upstream's, is RabbitMQ's on a developer machine). No user: SASL ANONYMOUS."""

    host: str = "127.0.0.1"
    port: int = 5673
    user: str = ""
    password: str = ""
    scheme: str = "AMQP"
    ca_path: str = ""
    allow_host_mismatch: bool = False
    allow_insecure_tls: bool = False
    max_priority: int = 10
    prefix: str = ""
    separator: str = "###"
    #: The most messages one drain asks for; a larger pull drains again. Keep it within the broker's
    #: maxPageSize (200 by default, 1000 on our broker) so that a drain is answered in one page.
    link_credit: int = 500
    #: Connection attempts after the first before an operation fails with ActiveMQUnavailable.
    max_retries: int = 5
    #: Longest wait for the broker's answer to one operation.
    operation_timeout: float = 30.0

    def __post_init__(self) -> None:
        if self.scheme not in ("AMQP", "AMQPS"):
            raise ConfigurationError(f"Amqp__Scheme={self.scheme!r}: expected AMQP or AMQPS")
        if not 0 < self.port < 65536:
            raise ConfigurationError(f"Amqp__Port={self.port}: expected a TCP port")
        if self.max_priority < 1:
            raise ConfigurationError(f"Amqp__MaxPriority={self.max_priority}: expected at least 1")
        if self.link_credit < 1:
            raise ConfigurationError(f"Amqp__LinkCredit={self.link_credit}: expected at least 1")
        if self.max_retries < 0:
            raise ConfigurationError(f"Amqp__MaxRetries={self.max_retries}: expected 0 or more")
        if self.ca_path and not os.path.isfile(self.ca_path):
            raise ConfigurationError(f"Amqp__CaPath={self.ca_path!r}: no such file")
        if self.password and not self.user:
            raise ConfigurationError("Amqp__Password is set but Amqp__User is not")

    @classmethod
    def from_env(cls, env: Environment) -> ActiveMQSettings:
        default = cls()
        return cls(
            host=env.get("Amqp__Host", default.host),
            port=env.get_int("Amqp__Port", default.port),
            user=env.get("Amqp__User", default.user),
            password=env.get("Amqp__Password", default.password),
            scheme=env.get("Amqp__Scheme", default.scheme).strip().upper(),
            ca_path=env.get("Amqp__CaPath", default.ca_path),
            allow_host_mismatch=env.get_bool("Amqp__AllowHostMismatch", default.allow_host_mismatch),
            allow_insecure_tls=env.get_bool("Amqp__AllowInsecureTls", default.allow_insecure_tls),
            max_priority=env.get_int("Amqp__MaxPriority", default.max_priority),
            prefix=env.get("Amqp__Prefix", default.prefix),
            separator=env.get("Amqp__Separator", default.separator),
            link_credit=env.get_int("Amqp__LinkCredit", default.link_credit),
            max_retries=env.get_int("Amqp__MaxRetries", default.max_retries),
        )

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{'amqps' if self.scheme == 'AMQPS' else 'amqp'}://{self.host}:{self.port}"

    @property
    def bands(self) -> int:
        return self.max_priority // JMS_LEVELS + 1

    def placement(self, priority: int) -> tuple[int, int]:
        """(band, JMS priority) of a task priority."""
        level = min(max(priority, 0), self.max_priority)
        return level // JMS_LEVELS, level % JMS_LEVELS

    def address(self, partition_id: str, band: int) -> str:
        if not partition_id or _FORBIDDEN_IN_PARTITION & set(partition_id):
            raise ValueError(f"partition id {partition_id!r} cannot name an ActiveMQ queue")
        return f"{self.prefix}{partition_id}{self.separator}q{band}"

    def ssl_domain(self) -> SSLDomain | None:
        if self.scheme != "AMQPS":
            return None
        domain = SSLDomain(SSLDomain.MODE_CLIENT)
        if self.ca_path:
            domain.set_trusted_ca_db(self.ca_path)
        if self.allow_insecure_tls:
            domain.set_peer_authentication(SSLDomain.ANONYMOUS_PEER)
        elif self.allow_host_mismatch:
            domain.set_peer_authentication(SSLDomain.VERIFY_PEER, self.ca_path or None)
        else:
            domain.set_peer_authentication(SSLDomain.VERIFY_PEER_NAME, self.ca_path or None)
        return domain


# -- message encoding ---------------------------------------------------------------------------------------


def _encode(settings: ActiveMQSettings, message: QueueMessage) -> Message:
    band, jms_priority = settings.placement(message.priority)
    uid = uuid.uuid4().hex
    return Message(
        address=settings.address(message.partition_id, band),
        id=uid,
        durable=True,
        priority=jms_priority,
        body=message.task_id,
        properties={
            "TaskId": message.task_id,
            "SessionId": message.session_id,
            "PartitionId": message.partition_id,
            "Priority": message.priority,
            "MessageUid": uid,
        },
    )


def _decode(message: Message) -> tuple[QueueMessage, str]:
    """The task a delivered message carries and its MessageUid; KeyError/ValueError if it is not ours."""
    props: dict[Any, Any] = message.properties or {}
    task = QueueMessage(
        task_id=str(props["TaskId"]),
        session_id=str(props["SessionId"]),
        partition_id=str(props["PartitionId"]),
        priority=int(props["Priority"]),
    )
    return task, str(props["MessageUid"])


def _resolve(future: Future[Any], value: Any) -> None:
    if not future.done():
        future.set_result(value)


def _fail(future: Future[Any], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)


def _nothing() -> None:
    pass


# -- the reactor side: everything below runs on the client's proton thread ---------------------------------


@dataclass(eq=False)
class _Held:
    """A message leased to the caller: `delivery` is None while a partial release takes it back."""

    handle: str
    uid: str
    band: int
    message: QueueMessage
    deliveries: int
    group: _Group
    delivery: Delivery | None
    deadline: float = 0.0


@dataclass(eq=False)
class _Group:
    """The leases of one pull, held by one AMQP session: ending the session gives them all back."""

    ident: int
    session: Any
    live: dict[str, _Held] = field(default_factory=dict)
    closing: bool = False
    on_closed: list[Callable[[], None]] = field(default_factory=list)


@dataclass(eq=False)
class _Counts:
    """A question to the statistics plugin about some queues: messages available (size - inflight) in each,
    handed to `on_done` once every queue has answered; `future` is failed if the connection drops."""

    future: Future[Any]
    on_done: Callable[[dict[str, int]], None]
    available: dict[str, int] = field(default_factory=dict)
    waiting: int = 0


class _Countdown:
    """Resolves `future` once `count` parts are done (at once when there are none)."""

    def __init__(self, future: Future[Any], count: int) -> None:
        self._future = future
        self._left = count
        if count == 0:
            _resolve(future, None)

    def done(self) -> None:
        self._left -= 1
        if self._left == 0:
            _resolve(self._future, None)


class _Timer(Handler):
    """Runs a callback when a timer scheduled on the container fires."""

    def __init__(self, callback: Callable[[], None]) -> None:
        super().__init__()
        self._callback = callback

    def on_timer_task(self, _event: Any) -> None:
        try:
            self._callback()
        except Exception:  # keep the client's thread alive: the operation concerned times out instead
            log.exception("an ActiveMQ client timer failed")


class _Drainer:
    """Takes messages through fresh receivers of one session, a drain each, highest band first.

    One drain per receiver: a second drain on a receiver could reach ActiveMQ before it has finished the first
    and be answered empty. A drain answered with fewer messages than asked means the band is empty for now.
    `selectors` (band -> JMS selector) restricts the receivers to given messages (a partial release).

    ActiveMQ 5 answers a drain with a "pull" that ends with a marker message; when another connection makes
    the queue dispatch at that very instant, the marker can be left behind (the drain never completes: hence
    DRAIN_TIMEOUT) or a message can arrive after it (`_Engine._late` gives it back) or stay assigned to the
    receiver without being sent (it returns to the queue when the group's session ends). The queues run with
    optimizedDispatch, which removes the race between the receivers of one connection."""

    def __init__(
        self,
        engine: _Engine,
        group: _Group,
        addresses: dict[int, str],
        wanted: int,
        on_done: Callable[[list[tuple[Delivery, Message, int]]], None],
        name: str,
        selectors: dict[int, str] | None = None,
        limits: dict[int, int] | None = None,
        on_error: Callable[[ActiveMQError], None] | None = None,
    ) -> None:
        self._engine = engine
        self.group = group
        self._addresses = addresses
        self._bands = sorted(addresses, reverse=True)
        self._wanted = wanted
        self._on_done = on_done
        self._on_error = on_error
        self._name = name
        self._selectors = selectors or {}
        #: Messages each band had available when the pull began: a drain asks for no more.
        self._limits = dict(limits) if limits is not None else {band: wanted for band in addresses}
        self._got: list[tuple[Delivery, Message, int]] = []
        self._links = itertools.count()
        self._link: Any = None
        self._asked = 0
        self._received = 0
        self._timeout: Any = None
        self.finished = False

    def start(self) -> None:
        self._engine.track(self, True)
        self._next()

    def _next(self) -> None:
        remaining = self._wanted - len(self._got)
        if remaining <= 0 or not self._bands:
            self.finished = True
            self._engine.track(self, False)
            self._on_done(self._got)
            return
        band = self._bands[0]
        self._asked = min(remaining, self._limits[band], self._engine.settings.link_credit)
        self._received = 0
        link = self.group.session.receiver(f"{self._name}/{self.group.ident}/{next(self._links)}")
        link.source.address = self._addresses[band]
        if band in self._selectors:
            Selector(self._selectors[band]).apply(link)
        link.armonik_drainer = self
        link.armonik_band = band
        link.open()
        link.drain(self._asked)
        self._link = link
        self._timeout = self._engine.schedule(DRAIN_TIMEOUT, lambda: self._give_up(link))

    def _give_up(self, link: Any) -> None:
        if self.finished or link != self._link:
            return
        log.warning(
            "ActiveMQ at %s did not finish a drain of %s within %g s; going on with %d message(s)",
            self._engine.settings.endpoint, self._addresses[link.armonik_band], DRAIN_TIMEOUT, self._received,
        )  # fmt: skip
        self._complete(link)

    def on_message(self, link: Any, delivery: Delivery, message: Message) -> None:
        self._got.append((delivery, message, link.armonik_band))
        self._received += 1
        self.check(link)

    def check(self, link: Any) -> None:
        """A drain is over when the link has no credit left and every transfer has been read."""
        if self.finished or link != self._link or link.credit > 0 or link.queued > 0:
            return
        self._complete(link)

    def _complete(self, link: Any) -> None:
        if self._timeout is not None:
            self._timeout.cancel()
            self._timeout = None
        if self._received == 0:
            link.close()  # no delivery to hold: free the broker's consumer
        band = link.armonik_band
        self._limits[band] -= self._received
        if self._received < self._asked or self._limits[band] <= 0:
            self._bands.pop(0)
        self._next()

    def fail(self) -> None:
        """Stop, without a word to anyone (the connection is gone and the caller is told so)."""
        self.finished = True
        self._engine.track(self, False)
        if self._timeout is not None:
            self._timeout.cancel()
            self._timeout = None

    def abort(self, error: ActiveMQError) -> None:
        """The broker refused a receiver: `on_error`, or without one, done with what was received."""
        if self.finished:
            return
        self.fail()
        if self._on_error is not None:
            self._on_error(error)
        else:
            self._on_done(self._got)


class _Engine(MessagingHandler):
    """One AMQP connection and the leases taken on it; runs on its own thread (see the module docstring).

    Public methods named `do_*` run on that thread, called through `call`; they receive the future to resolve.
    """

    def __init__(self, settings: ActiveMQSettings) -> None:
        super().__init__(prefetch=0, auto_accept=False, auto_settle=True)
        self.settings = settings
        self._uid = uuid.uuid4().hex[:12]
        self._container = Container(self)
        self._container.container_id = f"armonik-{self._uid}"
        self._injector = EventInjector()
        self._container.selectable(self._injector)
        self._inbox: queue.SimpleQueue[tuple[Callable[[Future[Any]], None], Future[Any]]] = (
            queue.SimpleQueue()
        )
        self._thread = threading.Thread(target=self._run, name=f"activemq-{self._uid}", daemon=True)
        self._thread_lock = threading.Lock()
        self._stopped = False
        # connection state
        self._connection: Any = None
        self._sender: Any = None
        self._replies: Any = None
        self._reply_address: str | None = None
        self._opened = False
        self._generation = 0
        self._last_error = ""
        self._connect_waiters: list[Future[Any]] = []
        # operations under way
        self._sequence = itertools.count(1)
        self._publishes: dict[int, tuple[Future[Any], list[int]]] = {}
        self._counts: dict[str, tuple[_Counts, str]] = {}
        self._pulls: dict[int, tuple[Future[Any], _Drainer]] = {}
        self._drainers: set[_Drainer] = set()
        self._groups: dict[int, _Group] = {}
        self._held: dict[str, _Held] = {}
        #: Give-backs whose session end the broker has not confirmed yet; pulls, acks, releases and expiries
        #: wait for them (so a pull finds the messages back, and a kept lease has its new delivery).
        self._returning = 0
        self._deferred: list[Callable[[], None]] = []
        self._expiries: list[tuple[float, int, str]] = []
        self._timer: Any = None
        self._timer_at = float("inf")
        self._closing = False
        self._stopping = False

    # -- thread plumbing (any thread) -----------------------------------------------------------------------

    def call(self, work: Callable[[Future[Any]], None]) -> Future[Any]:
        """Run `work(future)` on the engine's thread; `work` resolves the future, now or later."""
        future: Future[Any] = Future()
        with self._thread_lock:
            if self._stopped:
                future.set_exception(
                    ActiveMQError(f"the ActiveMQ client of {self.settings.endpoint} is closed")
                )
                return future
            if not self._thread.is_alive():
                self._thread.start()
            self._inbox.put((work, future))
            self._injector.trigger(ApplicationEvent("armonik_work"))
        return future

    def track(self, drainer: _Drainer, active: bool) -> None:
        """Drainers under way, so that a lost connection stops them."""
        if active:
            self._drainers.add(drainer)
        else:
            self._drainers.discard(drainer)

    def schedule(self, delay: float, callback: Callable[[], None]) -> Any:
        """A timer on the engine's thread (call from that thread); `.cancel()` on the result stops it."""
        return self._container.schedule(delay, _Timer(callback))

    @property
    def started(self) -> bool:
        return self._thread.is_alive()

    def join(self, timeout: float) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        try:
            self._container.run()
        except Exception:  # a bug in a handler: fail what waits rather than hang it
            log.exception("the ActiveMQ client thread of %s failed", self.settings.endpoint)
        finally:
            with self._thread_lock:
                self._stopped = True
            self._fail_everything(ActiveMQError(f"the ActiveMQ client of {self.settings.endpoint} stopped"))
            while not self._inbox.empty():
                _fail(
                    self._inbox.get()[1],
                    ActiveMQError(f"the ActiveMQ client of {self.settings.endpoint} stopped"),
                )
            for fd in self._injector.pipe:
                os.close(fd)

    def on_armonik_work(self, _event: Any) -> None:
        while not self._inbox.empty():
            work, future = self._inbox.get()
            if future.done():
                continue
            try:
                work(future)
            except _ConnectionLost as lost:
                _fail(future, lost)
            except Exception as error:  # a bug or bad input: the caller sees it
                _fail(future, error)

    # -- connection -----------------------------------------------------------------------------------------

    def do_connect(self, future: Future[Any]) -> None:
        if self._opened:
            _resolve(future, self._generation)
            return
        self._connect_waiters.append(future)
        if self._connection is not None:
            return
        settings = self.settings
        self._last_error = ""
        self._connection = self._container.connect(
            url=settings.url,
            handler=self,
            reconnect=False,
            heartbeat=20,
            ssl_domain=settings.ssl_domain(),
            sasl_enabled=True,
            allowed_mechs="PLAIN" if settings.user else "ANONYMOUS",
            allow_insecure_mechs=True,
            user=settings.user or None,
            password=settings.password or None,
        )
        self._sender = self._container.create_sender(self._connection, None)  # anonymous relay
        self._replies = self._container.create_receiver(self._connection, None, dynamic=True)
        self._replies.flow(1000)

    def _check_opened(self) -> None:
        if self._opened or self._connection is None or self._reply_address is None:
            return
        if self._sender.state & self._sender.REMOTE_ACTIVE:
            self._opened = True
            self._generation += 1
            for waiter in self._connect_waiters:
                _resolve(waiter, self._generation)
            self._connect_waiters.clear()

    def _require_connection(self) -> None:
        if not self._opened:
            raise _ConnectionLost(self._last_error or "not connected")

    def on_link_opened(self, event: Any) -> None:
        link = event.link
        if self._replies is not None and link == self._replies:
            self._reply_address = link.remote_source.address
        self._check_opened()

    def on_transport_error(self, event: Any) -> None:
        condition = event.transport.condition
        if condition is not None:
            self._last_error = f"{condition.name}: {condition.description}"

    def on_connection_error(self, event: Any) -> None:
        condition = event.connection.remote_condition
        if condition is not None:
            self._last_error = f"{condition.name}: {condition.description}"

    def on_link_error(self, event: Any) -> None:
        link = event.link
        condition = link.remote_condition
        reason = f"{condition.name}: {condition.description}" if condition else "closed by the broker"
        drainer = getattr(link, "armonik_drainer", None)
        if drainer is not None:
            self._drainer_failed(
                drainer,
                ActiveMQError(
                    f"ActiveMQ at {self.settings.endpoint} refused a receiver on {link.source.address}: {reason}"
                ),
            )
        elif link == self._sender or link == self._replies:
            self._last_error = reason
            if self._connection is not None:
                self._connection.close()

    def on_transport_closed(self, _event: Any) -> None:
        self._connection_gone(self._last_error or "connection closed")

    def _connection_gone(self, reason: str) -> None:
        if self._connection is None:
            return
        was_open = self._opened
        self._connection = self._sender = self._replies = None
        self._reply_address = None
        self._opened = False
        fatal = "unauthorized" in reason or "authentication" in reason.lower()
        for waiter in self._connect_waiters:
            _fail(waiter, _ConnectFailed(reason, fatal=fatal))
        self._connect_waiters.clear()
        self._fail_everything(_ConnectionLost(reason))
        if was_open and not self._closing:
            log.warning("lost the connection to ActiveMQ at %s: %s", self.settings.endpoint, reason)
        if self._closing:
            self._stop()

    def _fail_everything(self, error: BaseException) -> None:
        for future, _ in list(self._publishes.values()):
            _fail(future, error)
        for counts, _ in list(self._counts.values()):
            _fail(counts.future, error)
        for future, _ in list(self._pulls.values()):
            _fail(future, error)
        for drainer in list(self._drainers):
            drainer.fail()
        self._drainers.clear()
        self._publishes.clear()
        self._counts.clear()
        self._pulls.clear()
        groups = list(self._groups.values())
        self._groups.clear()
        self._held.clear()
        self._expiries.clear()
        for group in groups:
            group.live.clear()
            self._group_closed(group)
        self._returning = 0
        deferred, self._deferred = self._deferred, []
        for work in deferred:
            work()

    # -- publish --------------------------------------------------------------------------------------------

    def do_publish(self, messages: list[Message], future: Future[Any]) -> None:
        self._require_connection()
        ident = next(self._sequence)
        pending = [len(messages)]
        self._publishes[ident] = (future, pending)
        for message in messages:
            delivery = self._sender.send(message)
            delivery.armonik_publish = ident

    def on_accepted(self, event: Any) -> None:
        ident: int | None = getattr(event.delivery, "armonik_publish", None)
        entry = self._publishes.get(ident) if ident is not None else None
        if ident is None or entry is None:
            return
        future, pending = entry
        pending[0] -= 1
        if pending[0] == 0:
            del self._publishes[ident]
            _resolve(future, None)

    def _refused(self, event: Any, outcome: str) -> None:
        future: Future[Any] | None = None
        ident = getattr(event.delivery, "armonik_publish", None)
        if ident is not None and ident in self._publishes:
            future = self._publishes.pop(ident)[0]
        correlation = getattr(event.delivery, "armonik_depth", None)
        if correlation is not None and correlation in self._counts:
            future = self._counts.pop(correlation)[0].future
        if future is not None:
            condition = event.delivery.remote_state
            _fail(
                future,
                ActiveMQError(f"ActiveMQ at {self.settings.endpoint} {outcome} a message: {condition}"),
            )

    def on_rejected(self, event: Any) -> None:
        self._refused(event, "rejected")

    def on_released(self, event: Any) -> None:
        self._refused(event, "released (did not store)")

    def on_modified(self, event: Any) -> None:
        self._refused(event, "did not store (modified)")

    # -- depth ----------------------------------------------------------------------------------------------

    def do_depth(self, addresses: list[str], future: Future[Any]) -> None:
        """Messages waiting on the queues: size - inflight, summed (see the module docstring)."""
        self._count(addresses, future, lambda available: _resolve(future, sum(available.values())))

    def _count(
        self, addresses: list[str], future: Future[Any], on_done: Callable[[dict[str, int]], None]
    ) -> None:
        """Ask the statistics plugin about each queue. The request asks for an empty reply after the queue's
        own, so that a queue that does not exist yet (no reply of its own) counts 0."""
        self._require_connection()
        query = _Counts(future, on_done, dict.fromkeys(addresses, 0), len(addresses))
        for address in addresses:
            correlation = f"count-{next(self._sequence)}"
            self._counts[correlation] = (query, address)
            request = Message(
                address=STATS_PREFIX + address,
                reply_to=self._reply_address,
                correlation_id=correlation,
                properties={STATS_END_LIST: True},
            )
            self._sender.send(request).armonik_depth = correlation

    def _on_stats(self, message: Message) -> None:
        correlation = str(message.correlation_id)
        entry = self._counts.get(correlation)
        if entry is None:
            return
        query, address = entry
        body = message.body if isinstance(message.body, dict) else {}
        if "size" in body:
            query.available[address] = max(0, int(body["size"]) - int(body.get("inflightCount", 0)))
            return
        del self._counts[correlation]  # the empty reply that ends the list
        query.waiting -= 1
        if query.waiting == 0 and not query.future.done():
            query.on_done(query.available)

    # -- pull -----------------------------------------------------------------------------------------------

    def do_pull(
        self, addresses: dict[int, str], wanted: int, lease_seconds: float, consumer: str, future: Future[Any]
    ) -> None:
        """Count the messages available in each band first: bands with none are skipped (no receiver, and an
        empty partition answers in one round trip), and a drain never asks for more than there is, which keeps
        ActiveMQ's drain race (see `_Drainer`) to the messages other clients take meanwhile."""
        self._require_connection()
        if self._returning:
            self._deferred.append(
                lambda: self._guard(future, self.do_pull, addresses, wanted, lease_seconds, consumer)
            )
            return

        def counted(available: dict[str, int]) -> None:
            limits = {
                band: available[address] for band, address in addresses.items() if available[address] > 0
            }
            if not limits:
                _resolve(future, [])
            elif self._opened:
                self._drain(addresses, limits, wanted, lease_seconds, consumer, future)

        self._count(list(addresses.values()), future, counted)

    def _drain(
        self,
        addresses: dict[int, str],
        limits: dict[int, int],
        wanted: int,
        lease_seconds: float,
        consumer: str,
        future: Future[Any],
    ) -> None:
        group = self._new_group()
        ident = next(self._sequence)

        def done(got: list[tuple[Delivery, Message, int]]) -> None:
            self._pulls.pop(ident, None)
            leases = self._hold(group, got, lease_seconds)
            if future.done():  # the caller gave up (timeout): nobody knows these leases
                self._give_back(group, list(group.live.values()), _nothing)
                return
            _resolve(future, leases)

        def failed(error: ActiveMQError) -> None:
            self._pulls.pop(ident, None)
            self._close_group(group)
            _fail(future, error)

        bands = {band: addresses[band] for band in limits}
        drainer = _Drainer(self, group, bands, wanted, done, consumer, limits=limits, on_error=failed)
        self._pulls[ident] = (future, drainer)
        drainer.start()

    def _guard(self, future: Future[Any], work: Callable[..., None], *args: Any) -> None:
        """Run deferred work, failing its future instead of raising on the reactor."""
        try:
            work(*args, future)
        except Exception as error:
            _fail(future, error)

    def _new_group(self) -> _Group:
        assert self._connection is not None
        session = self._connection.session()
        group = _Group(next(self._sequence), session)
        session.armonik_group = group.ident
        session.open()
        self._groups[group.ident] = group
        return group

    def _hold(
        self, group: _Group, got: list[tuple[Delivery, Message, int]], lease_seconds: float
    ) -> list[Lease]:
        deadline = time.monotonic() + lease_seconds
        leases: list[Lease] = []
        for delivery, message, band in got:
            try:
                task, uid = _decode(message)
            except (KeyError, ValueError, TypeError):
                log.error(
                    "rejecting a message that is not an ArmoniK task on %s: %r",
                    delivery.link.source.address,
                    message,
                )
                delivery.update(Delivery.REJECTED)
                delivery.settle()
                continue
            handle = f"{self._uid}.{self._generation}.{group.ident}.{next(self._sequence)}"
            held = _Held(
                handle, uid, band, task, (message.delivery_count or 0) + 1, group, delivery, deadline
            )
            group.live[handle] = held
            self._held[handle] = held
            self._expire_at(held)
            leases.append(Lease(handle, task, held.deliveries))
        if not group.live:
            self._close_group(group)
        return leases

    def on_message(self, event: Any) -> None:
        link = event.link
        if self._replies is not None and link == self._replies:
            event.delivery.update(Delivery.ACCEPTED)
            event.delivery.settle()
            link.flow(1)
            self._on_stats(event.message)
            return
        drainer = getattr(link, "armonik_drainer", None)
        if drainer is None or drainer.finished:
            self._late(link, event.delivery, event.message)
            return
        drainer.on_message(link, event.delivery, event.message)

    def _late(self, link: Any, delivery: Delivery, message: Message) -> None:
        """A message that arrived after its pull was over (see `_Drainer`): nobody holds it, give it back."""
        group = self._groups.get(getattr(link.session, "armonik_group", -1))
        if group is None or group.closing:
            return  # its session is ending: the broker takes it back
        log.warning(
            "ActiveMQ at %s sent a message after a drain was over: giving it back", self.settings.endpoint
        )
        try:
            task, uid = _decode(message)
        except (KeyError, ValueError, TypeError):
            task, uid = QueueMessage("", "", ""), ""
        handle = f"{self._uid}.late.{next(self._sequence)}"
        held = _Held(handle, uid, getattr(link, "armonik_band", 0), task, 1, group, delivery)
        group.live[handle] = held
        self._held[handle] = held
        if self._returning:
            self._deferred.append(lambda: self._give_back_if_held(held))
        else:
            self._give_back(group, [held], _nothing)

    def _give_back_if_held(self, held: _Held) -> None:
        if self._held.get(held.handle) is held and held.delivery is not None:
            self._give_back(held.group, [held], _nothing)

    def on_link_flow(self, event: Any) -> None:
        drainer = getattr(event.link, "armonik_drainer", None)
        if drainer is not None:
            drainer.check(event.link)

    def _drainer_failed(self, drainer: _Drainer, error: ActiveMQError) -> None:
        drainer.abort(error)

    # -- ack, renew, release --------------------------------------------------------------------------------

    def do_ack(self, handles: list[str], future: Future[Any]) -> None:
        if self._returning:
            self._deferred.append(lambda: self._guard(future, self.do_ack, handles))
            return
        for handle in handles:
            held = self._held.pop(handle, None)
            if held is None or held.delivery is None:
                continue
            held.delivery.update(Delivery.ACCEPTED)
            held.delivery.settle()
            group = held.group
            group.live.pop(handle, None)
            if not group.live:
                self._close_group(group)
        _resolve(future, None)

    def do_renew(self, handles: list[str], lease_seconds: float, future: Future[Any]) -> None:
        deadline = time.monotonic() + lease_seconds
        for handle in handles:
            held = self._held.get(handle)
            if held is not None:
                held.deadline = deadline
                self._expire_at(held)
        _resolve(future, None)

    def do_release(self, handles: list[str], future: Future[Any]) -> None:
        if self._returning:
            self._deferred.append(lambda: self._guard(future, self.do_release, handles))
            return
        by_group: dict[int, list[_Held]] = {}
        for handle in handles:
            held = self._held.get(handle)
            if held is not None:
                by_group.setdefault(held.group.ident, []).append(held)
        countdown = _Countdown(future, len(by_group))
        for give in by_group.values():
            self._give_back(give[0].group, give, countdown.done)

    def _give_back(self, group: _Group, give: list[_Held], on_done: Callable[[], None]) -> None:
        """Put `give` back in the queue at once, with a redelivery counted, by ending the group's session; the
        group's other leases are then received again (`_take_back`). `on_done` runs once the broker confirmed."""
        for held in give:
            self._held.pop(held.handle, None)
            group.live.pop(held.handle, None)
        keep = list(group.live.values())
        group.live.clear()  # `keep` stay in self._held: their handles remain valid
        self._returning += 1

        def finish() -> None:
            on_done()
            self._returning = max(0, self._returning - 1)
            self._run_deferred()

        def returned() -> None:
            if keep and self._opened:
                self._take_back(keep, finish)
            else:
                for held in keep:
                    self._held.pop(held.handle, None)
                finish()

        # The take-back must reach the broker after the session's end: proton does not keep the order of
        # frames across sessions, hence waiting for the broker's end.
        group.on_closed.append(returned)
        self._close_group(group)

    def _take_back(self, keep: list[_Held], finish: Callable[[], None]) -> None:
        """Receive the kept messages of a partial give-back again, by MessageUid, on a new session."""
        group = self._new_group()
        for held in keep:
            held.group, held.delivery = group, None
            group.live[held.handle] = held
        by_band: dict[int, list[str]] = {}
        for held in keep:
            by_band.setdefault(held.band, []).append(held.uid)
        selectors = {
            band: "MessageUid IN ({})".format(", ".join(f"'{uid}'" for uid in uids))
            for band, uids in by_band.items()
        }
        addresses = {band: self.settings.address(keep[0].message.partition_id, band) for band in by_band}

        def done(got: list[tuple[Delivery, Message, int]]) -> None:
            pending = {held.uid: held for held in group.live.values()}
            for delivery, message, _band in got:
                properties: dict[Any, Any] = message.properties or {}
                held = pending.pop(str(properties.get("MessageUid", "")), None)
                if held is not None:
                    held.delivery = delivery
            for held in pending.values():  # taken by another consumer in the meantime: the handle is stale
                self._held.pop(held.handle, None)
                group.live.pop(held.handle, None)
            if not group.live:
                self._close_group(group)
            finish()

        _Drainer(self, group, addresses, len(keep), done, "take-back", selectors).start()

    def _run_deferred(self) -> None:
        while self._deferred and not self._returning:
            self._deferred.pop(0)()

    def _close_group(self, group: _Group) -> None:
        if group.closing:
            return
        group.closing = True
        for held in group.live.values():
            self._held.pop(held.handle, None)
        group.live.clear()
        group.session.close()

    def on_session_closed(self, event: Any) -> None:
        group = self._groups.pop(getattr(event.session, "armonik_group", -1), None)
        if group is not None:
            self._group_closed(group)

    def _group_closed(self, group: _Group) -> None:
        callbacks, group.on_closed = group.on_closed, []
        for callback in callbacks:
            callback()

    # -- lease expiry ---------------------------------------------------------------------------------------

    def _expire_at(self, held: _Held) -> None:
        heapq.heappush(self._expiries, (held.deadline, next(self._sequence), held.handle))
        if held.deadline < self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = held.deadline
            self._timer = self._container.schedule(max(0.0, held.deadline - time.monotonic()), self)

    def on_timer_task(self, _event: Any) -> None:
        self._timer, self._timer_at = None, float("inf")
        if self._returning:  # a give-back is under way: look again when it is done
            self._deferred.append(self._expire_due)
        else:
            self._expire_due()

    def _expire_due(self) -> None:
        now = time.monotonic()
        due: dict[int, list[_Held]] = {}
        while self._expiries and self._expiries[0][0] <= now:
            _, _, handle = heapq.heappop(self._expiries)
            held = self._held.get(handle)
            if held is not None and held.deadline <= now and held.delivery is not None:
                due.setdefault(held.group.ident, []).append(held)
        for give in due.values():
            log.info(
                "lease of %d message(s) on %s expired: giving them back", len(give), self.settings.endpoint
            )
            self._give_back(give[0].group, give, _nothing)
        if self._expiries:
            deadline = self._expiries[0][0]
            self._timer_at = deadline
            self._timer = self._container.schedule(max(0.0, deadline - now), self)

    # -- closing --------------------------------------------------------------------------------------------

    def do_close(self, future: Future[Any]) -> None:
        """Close the connection: the broker puts every message still leased back at once."""
        self._closing = True
        for pending, drainer in list(self._pulls.values()):
            drainer.fail()
            _fail(pending, ActiveMQError("the ActiveMQ client was closed during a pull"))
        self._pulls.clear()
        if self._connection is None:
            self._stop()
        else:
            self._connection.close()
        _resolve(future, None)

    def _stop(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._injector.close()
        self._container.stop()


# -- the asyncio facade -------------------------------------------------------------------------------------


class ActiveMQQueue(TaskQueue):
    """TaskQueue on ActiveMQ over AMQP 1.0; see the module docstring for the model."""

    def __init__(self, settings: ActiveMQSettings | None = None) -> None:
        self._settings = settings or ActiveMQSettings()
        self._engine = _Engine(self._settings)
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
            except _ConnectFailed as failure:
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
            except _ConnectionLost as lost:
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
        except _ConnectionLost:
            pass  # the broker gives back what the lost connection held

    def _check_open(self) -> None:
        if self._closed:
            raise ActiveMQError(f"the ActiveMQ client of {self._settings.endpoint} is closed")

    async def publish(self, messages: Sequence[QueueMessage]) -> None:
        """Send durable messages; returns when the broker accepted (stored) them all. If the connection drops
        midway the whole batch is sent again: a message may then be queued twice (at-least-once)."""
        if not messages:
            return
        encoded = [_encode(self._settings, message) for message in messages]
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
