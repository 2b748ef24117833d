"""The RabbitMQ queue, on the broker named by the `Amqp__*` variables (127.0.0.1:5672, guest/guest by default).

Each test gets a prefix of its own, so its queues are apart from every other test's and from a deployment's
on the same broker; they are declared with `x-expires`, so the broker deletes them a minute after the test.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from pathlib import Path

from armonik_core.adapters.queue.rabbitmq import RabbitMQQueue, RabbitMQSettings
from armonik_core.config import Environment
from tests.contract.backends.service import require_service
from tests.contract.harness import QueueBackend

#: Leases short enough for tests that wait for them to run out on the broker's real clock.
LEASE_SECONDS = 1.0
#: Test queues vanish this long after their last use.
QUEUE_EXPIRES_SECONDS = 60.0


def broker_settings() -> RabbitMQSettings:
    """Settings of the broker under test, with a prefix (and so queues) of the calling test's own."""
    settings = RabbitMQSettings.from_env(Environment())
    require_service("RabbitMQ", settings.host, settings.port)
    return dataclasses.replace(
        settings, prefix=f"test-{uuid.uuid4().hex[:12]}", queue_expires_seconds=QUEUE_EXPIRES_SECONDS
    )


def subprocess_setup(settings: RabbitMQSettings) -> str:
    """Python source defining `make_queue()`, for a helper process on the same queues."""
    return (
        "from armonik_core.adapters.queue.rabbitmq import RabbitMQQueue, RabbitMQSettings\n"
        f"def make_queue():\n    return RabbitMQQueue(RabbitMQSettings(**{settings.as_kwargs()!r}))\n"
    )


def _rabbitmq_queue(_tmp_path: Path) -> QueueBackend:
    settings = broker_settings()
    backend = QueueBackend(
        name="rabbitmq",
        new_client=lambda: RabbitMQQueue(settings),
        clock=None,
        lease_seconds=LEASE_SECONDS,
        subprocess_setup=subprocess_setup(settings),
        # The broker takes back the deliveries of a client that closes or dies at once, not when their
        # leases expire (see the adapter's docstring).
        leases_outlive_client=False,
    )
    return backend


QUEUE_BACKENDS: dict[str, Callable[[Path], QueueBackend]] = {"rabbitmq": _rabbitmq_queue}
