"""One RabbitMQ connection and its channels, with what is only true while it lasts.

The publishing channel is in publisher-confirm mode, driven through the channel underneath pika's
BlockingChannel (which would wait for the confirm of each message before sending the next): `Confirms` counts
the broker's acks and nacks as they arrive, `multiple` ones included, so a batch costs one wait.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection

from .errors import LINK_ERRORS
from .thread import do_nothing

log = logging.getLogger("armonik_core.adapters.queue.rabbitmq")


class Confirms:
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
class Held:
    """A delivery this client holds: the lease behind a handle."""

    tag: int
    deadline: float  # time.monotonic()
    message_id: str | None
    deliveries: int


class Link:
    """One connection and its channels, with what is only true while it lasts: the queues declared on it and
    the deliveries held on its consuming channel (the broker requeues them when the connection closes).

    - `consume`: basic.get, consumers, acks and nacks. A passive declare of a queue declared on this
      connection also goes here, so that it counts the messages this channel nacked just before.
    - `probe`: first declarations and passive declares of unknown queues, which close their channel when
      they fail (404, 406): never on `consume`, whose closing would give back every held delivery.
    - `publish`: in confirm mode, driven through the channel underneath (see `Confirms`).
    """

    def __init__(self, connection: BlockingConnection, generation: int, timeout: float) -> None:
        self.connection = connection
        self.generation = generation
        self.consume: BlockingChannel = connection.channel()
        self.probe: BlockingChannel = connection.channel()
        self.publish: BlockingChannel = connection.channel()
        self.confirms = Confirms(self.wake)
        self.declared: set[str] = set()
        self.held: dict[str, Held] = {}
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
        self.connection.call_later(0, do_nothing)

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
        except LINK_ERRORS as error:
            log.debug("closing a RabbitMQ connection failed: %r", error)


Delivery = tuple[Any, Any, bytes]  # (Basic.GetOk | Basic.Deliver, BasicProperties, body)
