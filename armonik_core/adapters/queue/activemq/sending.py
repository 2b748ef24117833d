"""Publications and counts on an ActiveMQ connection: what goes through the anonymous relay sender.

`publish` returns once the broker has accepted every message (ActiveMQ accepts a persistent message after
storing it in KahaDB). Depth asks the broker's statistics plugin (`<statisticsBrokerPlugin/>`): a message to
`ActiveMQ.Statistics.Destination.<queue>` is answered with the queue's counters on the reply receiver;
depth = size - inflightCount.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from proton import Delivery, Message

from .connection import EngineCore
from .errors import ActiveMQError
from .futures import fail, resolve
from .settings import ActiveMQSettings

STATS_PREFIX = "ActiveMQ.Statistics.Destination."
#: A property asking the statistics plugin for an empty reply after the last queue's, so that a query about a
#: queue that does not exist yet is answered too.
STATS_END_LIST = "ActiveMQ.Statistics.Destination.List.End.With.Null"


@dataclass(eq=False)
class Counts:
    """A question to the statistics plugin about some queues: messages available (size - inflight) in each,
    handed to `on_done` once every queue has answered; `future` is failed if the connection drops."""

    future: Future[Any]
    on_done: Callable[[dict[str, int]], None]
    available: dict[str, int] = field(default_factory=dict)
    waiting: int = 0


class Sending(EngineCore):
    """Publications (confirmed by the broker's accept) and statistics queries, on the engine's thread."""

    def __init__(self, settings: ActiveMQSettings) -> None:
        super().__init__(settings)
        self._publishes: dict[int, tuple[Future[Any], list[int]]] = {}
        self._counts: dict[str, tuple[Counts, str]] = {}

    def _fail_everything(self, error: BaseException) -> None:
        super()._fail_everything(error)
        for future, _ in list(self._publishes.values()):
            fail(future, error)
        for counts, _ in list(self._counts.values()):
            fail(counts.future, error)
        self._publishes.clear()
        self._counts.clear()

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
            resolve(future, None)

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
            fail(
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
        self._count(addresses, future, lambda available: resolve(future, sum(available.values())))

    def _count(
        self, addresses: list[str], future: Future[Any], on_done: Callable[[dict[str, int]], None]
    ) -> None:
        """Ask the statistics plugin about each queue. The request asks for an empty reply after the queue's
        own, so that a queue that does not exist yet (no reply of its own) counts 0."""
        self._require_connection()
        query = Counts(future, on_done, dict.fromkeys(addresses, 0), len(addresses))
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

    def _on_reply(self, event: Any) -> None:
        """A message on the reply receiver: the statistics plugin's answer."""
        event.delivery.update(Delivery.ACCEPTED)
        event.delivery.settle()
        event.link.flow(1)
        self._on_stats(event.message)
