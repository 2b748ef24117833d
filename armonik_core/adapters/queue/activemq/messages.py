"""A task as an AMQP message on ActiveMQ: durable, with its JMS priority, the task's fields as application
properties and a `MessageUid` (a partial give-back takes messages back by it)."""

from __future__ import annotations

import uuid
from typing import Any

from proton import Message

from ..base import QueueMessage
from .settings import ActiveMQSettings


def encode(settings: ActiveMQSettings, message: QueueMessage) -> Message:
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


def decode(message: Message) -> tuple[QueueMessage, str]:
    """The task a delivered message carries and its MessageUid; KeyError/ValueError if it is not ours."""
    props: dict[Any, Any] = message.properties or {}
    task = QueueMessage(
        task_id=str(props["TaskId"]),
        session_id=str(props["SessionId"]),
        partition_id=str(props["PartitionId"]),
        priority=int(props["Priority"]),
    )
    return task, str(props["MessageUid"])
