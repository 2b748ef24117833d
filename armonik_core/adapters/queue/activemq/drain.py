"""Taking messages from ActiveMQ with drains, and the leases they become.

A pull opens one AMQP session (a "group") and takes messages with *drains* (take up to n, answer at once,
even with nothing), so that a pull never waits for publications. Ending the group's session gives every
unsettled message of it back to the queue at once, counting a redelivery.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from proton import Delivery, Message
from proton.reactor import Selector

from ..base import QueueMessage
from .errors import ActiveMQError

if TYPE_CHECKING:  # the engine drives the drainers it creates
    from .leases import Engine

log = logging.getLogger("armonik_core.adapters.queue.activemq")

#: A drain ActiveMQ has not finished by then is taken as finished: ActiveMQ 5 may leave the completion of a
#: drain pending when another connection dispatches to the same queue at that instant (see `Drainer`).
DRAIN_TIMEOUT = 5.0


@dataclass(eq=False)
class Held:
    """A message leased to the caller: `delivery` is None while a partial release takes it back."""

    handle: str
    uid: str
    band: int
    message: QueueMessage
    deliveries: int
    group: Group
    delivery: Delivery | None
    deadline: float = 0.0


@dataclass(eq=False)
class Group:
    """The leases of one pull, held by one AMQP session: ending the session gives them all back."""

    ident: int
    session: Any
    live: dict[str, Held] = field(default_factory=dict)
    closing: bool = False
    on_closed: list[Callable[[], None]] = field(default_factory=list)


class Drainer:
    """Takes messages through fresh receivers of one session, a drain each, highest band first.

    One drain per receiver: a second drain on a receiver could reach ActiveMQ before it has finished the first
    and be answered empty. A drain answered with fewer messages than asked means the band is empty for now.
    `selectors` (band -> JMS selector) restricts the receivers to given messages (a partial release).

    ActiveMQ 5 answers a drain with a "pull" that ends with a marker message; when another connection makes
    the queue dispatch at that very instant, the marker can be left behind (the drain never completes: hence
    DRAIN_TIMEOUT) or a message can arrive after it (`Engine._late` gives it back) or stay assigned to the
    receiver without being sent (it returns to the queue when the group's session ends). The queues run with
    optimizedDispatch, which removes the race between the receivers of one connection."""

    def __init__(
        self,
        engine: Engine,
        group: Group,
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
