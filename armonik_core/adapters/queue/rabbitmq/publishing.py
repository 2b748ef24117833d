"""Publishing to RabbitMQ: persistent messages, confirmed by the broker before `publish` returns.

A message's body is the JSON object `{"task_id", "session_id", "priority"}`; the broker priority is the task's
priority clamped into [0, MaxPriority], while the body keeps the priority as given so that a lease returns the
message unchanged. The publishing channel is in publisher-confirm mode and `publish` returns once the broker
has confirmed every message, i.e. written it to disk for a durable queue; the batch is sent on the channel
underneath pika's BlockingChannel and the confirms are counted as they arrive (`link.Confirms`): one wait per
call. Messages are `mandatory`, so one the broker cannot route (its queue was deleted behind our back) is
reported instead of silently dropped.
"""

from __future__ import annotations

import json

import pika

from ..base import QueueMessage
from .connection import Connected
from .errors import RabbitMQRefusedError
from .link import Link

#: Messages sent between two flushes of the socket while publishing a large batch.
_FLUSH_EVERY = 1000


def encode(message: QueueMessage) -> bytes:
    body = {"task_id": message.task_id, "session_id": message.session_id, "priority": message.priority}
    return json.dumps(body, separators=(",", ":")).encode()


class Publishing(Connected):
    """Confirmed publications, on the broker thread."""

    def _publish_on(self, link: Link, messages: list[QueueMessage]) -> None:
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
                body=encode(message),
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

    def _check_confirms(self, link: Link, count: int) -> None:
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
