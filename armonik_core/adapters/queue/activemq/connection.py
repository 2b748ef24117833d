"""The reactor side of an ActiveMQ client: one proton `Container` on a thread of its own, and its connection.

proton is callback based and not thread safe: the asyncio side hands closures to the thread through an
`EventInjector` (`EngineCore.call`) and waits on futures. The connection is opened on demand with an anonymous
relay sender (publications, statistics queries) and a dynamic receiver for the statistics plugin's replies;
when it goes, every operation under way fails with `ConnectionLost` and the asyncio side decides what to
retry. The layers above add publications and counts (`sending`), then leases (`leases`).
"""

from __future__ import annotations

import itertools
import logging
import os
import queue
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from proton import Handler
from proton.handlers import MessagingHandler
from proton.reactor import ApplicationEvent, Container, EventInjector

from .errors import ActiveMQError, ConnectFailed, ConnectionLost
from .futures import fail, resolve
from .settings import ActiveMQSettings

log = logging.getLogger("armonik_core.adapters.queue.activemq")


class Timer(Handler):
    """Runs a callback when a timer scheduled on the container fires."""

    def __init__(self, callback: Callable[[], None]) -> None:
        super().__init__()
        self._callback = callback

    def on_timer_task(self, _event: Any) -> None:
        try:
            self._callback()
        except Exception:  # keep the client's thread alive: the operation concerned times out instead
            log.exception("an ActiveMQ client timer failed")


class EngineCore(MessagingHandler):
    """One AMQP connection on its own thread (see the package docstring).

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
        #: Numbers operations, groups and handles (each layer draws from it).
        self._sequence = itertools.count(1)
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

    def schedule(self, delay: float, callback: Callable[[], None]) -> Any:
        """A timer on the engine's thread (call from that thread); `.cancel()` on the result stops it."""
        return self._container.schedule(delay, Timer(callback))

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
                fail(
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
            except ConnectionLost as lost:
                fail(future, lost)
            except Exception as error:  # a bug or bad input: the caller sees it
                fail(future, error)

    # -- connection -----------------------------------------------------------------------------------------

    def do_connect(self, future: Future[Any]) -> None:
        if self._opened:
            resolve(future, self._generation)
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
                resolve(waiter, self._generation)
            self._connect_waiters.clear()

    def _require_connection(self) -> None:
        if not self._opened:
            raise ConnectionLost(self._last_error or "not connected")

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
        """The sender or the reply receiver refused: the connection is of no use, close it."""
        link = event.link
        condition = link.remote_condition
        reason = f"{condition.name}: {condition.description}" if condition else "closed by the broker"
        if link == self._sender or link == self._replies:
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
            fail(waiter, ConnectFailed(reason, fatal=fatal))
        self._connect_waiters.clear()
        self._fail_everything(ConnectionLost(reason))
        if was_open and not self._closing:
            log.warning("lost the connection to ActiveMQ at %s: %s", self.settings.endpoint, reason)
        if self._closing:
            self._stop()

    def _fail_everything(self, error: BaseException) -> None:
        """Fail every operation under way; each layer above fails its own."""

    # -- closing --------------------------------------------------------------------------------------------

    def do_close(self, future: Future[Any]) -> None:
        """Close the connection: the broker puts every message still leased back at once."""
        self._closing = True
        if self._connection is None:
            self._stop()
        else:
            self._connection.close()
        resolve(future, None)

    def _stop(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        self._injector.close()
        self._container.stop()
