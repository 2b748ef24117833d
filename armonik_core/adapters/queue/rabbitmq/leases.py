"""Leases on RabbitMQ: taking deliveries, counting what waits, and settling or expiring what is held.

A taken message is an unacknowledged delivery; the broker keeps it from other consumers for as long as the
delivery is open. The lease deadline is kept by this client: a delivery whose deadline passed is nacked with
requeue (by the next operation, or by the idle tick between operations). A handle names the client, the
connection (a generation counter) and the delivery tag; one not among the deliveries this connection still
holds is stale, and ack, renew and release ignore it.

Taking: a take of up to `_GET_LIMIT` messages uses `basic.get` (one round trip each); a larger one opens a
consumer whose prefetch is the number of messages wanted, gathers the deliveries and cancels it. Counting:
`depth` is the ready count of a passive declare; a give-back ends with a round trip on its channel
(`Link.barrier`) so that the count that follows sees it.
"""

from __future__ import annotations

import bisect
import json
import logging
import math
import time
from typing import Any

import pika.exceptions

from ..base import Lease, QueueMessage
from .connection import Connected
from .errors import LINK_ERRORS
from .link import Delivery, Held, Link

log = logging.getLogger("armonik_core.adapters.queue.rabbitmq")

#: Takes of at most this many messages use basic.get (one round trip each); larger ones a consumer.
_GET_LIMIT = 4
#: AMQP's prefetch count is a 16-bit field.
_MAX_PREFETCH = 65535
#: How long a consumer take waits for a delivery that may never come (another consumer took the message).
_SETTLE_SECONDS = 0.25


def decode(body: bytes, partition_id: str) -> QueueMessage | None:
    """The message of a delivery, or None when the body is not one of ours."""
    try:
        data = json.loads(body)
        return QueueMessage(
            str(data["task_id"]), str(data["session_id"]), partition_id, int(data["priority"])
        )
    except (ValueError, KeyError, TypeError):
        return None


class Leasing(Connected):
    """Taking, counting, renewing, settling and expiring deliveries, on the broker thread."""

    def _take_on(
        self, link: Link, partition_id: str, name: str, max_messages: int, lease_seconds: float
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
    def _get(link: Link, name: str, want: int) -> list[Delivery]:
        deliveries: list[Delivery] = []
        for _ in range(want):
            method, properties, body = link.consume.basic_get(name, auto_ack=False)
            if method is None:
                break
            deliveries.append((method, properties, body))
        return deliveries

    @staticmethod
    def _consume(link: Link, name: str, want: int) -> list[Delivery]:
        """A consumer allowed `want` unacked deliveries, cancelled once it has them (or once none came for
        `_SETTLE_SECONDS`: another consumer took them)."""
        if link.prefetch != want:
            link.consume.basic_qos(prefetch_count=want)  # applies to consumers created from now on
            link.prefetch = want
        deliveries: list[Delivery] = []

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

    def _hold(self, link: Link, partition_id: str, delivery: Delivery, deadline: float) -> Lease | None:
        method, properties, body = delivery
        tag = int(method.delivery_tag)
        message = decode(body, partition_id)
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
        link.held[handle] = Held(tag, deadline, message_id, deliveries)
        link.earliest = min(link.earliest, deadline)
        return Lease(handle, message, deliveries)

    def _depth_on(self, link: Link, name: str) -> int:
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

    def _expire(self, link: Link) -> None:
        """Give back the deliveries whose lease ran out."""
        now = time.monotonic()
        if now < link.earliest:
            return
        expired = [handle for handle, held in link.held.items() if held.deadline <= now]
        self._settle(link, [self._give_back(link, handle) for handle in expired], requeue=True)
        link.earliest = min((held.deadline for held in link.held.values()), default=math.inf)

    def _give_back(self, link: Link, handle: str) -> int:
        held = link.held.pop(handle)
        self._remember(held)
        return held.tag

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
        except LINK_ERRORS as error:
            self._drop_link(error)
            log.warning(
                "RabbitMQ connection lost while settling %d deliveries: they will be delivered again",
                len(tags),
            )

    @staticmethod
    def _settle(link: Link, tags: list[int], requeue: bool) -> None:
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
