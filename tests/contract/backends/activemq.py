"""The ActiveMQ queue: a real broker over AMQP 1.0, started by tools/activemq/start-activemq.sh.

Leases are timed by the client, with real sleeps (no injected clock), hence leases of one second; a closed or
killed client's leases come back at once (the broker requeues the deliveries of a lost connection). Each test has
partitions of its own (the `partition` fixture), so tests never see each other's messages on the shared broker.
Amqp__Host / Amqp__Port point the suite at another broker.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from armonik_core.adapters.queue.activemq import ActiveMQQueue, ActiveMQSettings
from armonik_core.config import Environment
from tests.contract.backends.service import require_service
from tests.contract.harness import QueueBackend

LEASE_SECONDS = 1.0


def broker_settings() -> ActiveMQSettings:
    """The broker under test: ours by default, or Amqp__Host/Amqp__Port from the environment."""
    return ActiveMQSettings.from_env(Environment())


def _activemq_queue(_tmp_path: Path) -> QueueBackend:
    settings = broker_settings()
    require_service("ActiveMQ", settings.host, settings.port)
    setup = (
        "from armonik_core.adapters.queue.activemq import ActiveMQQueue, ActiveMQSettings\n"
        "def make_queue():\n"
        f"    return ActiveMQQueue(ActiveMQSettings(host={settings.host!r}, port={settings.port}))\n"
    )
    return QueueBackend(
        name="activemq",
        new_client=lambda: ActiveMQQueue(settings),
        clock=None,
        lease_seconds=LEASE_SECONDS,
        subprocess_setup=setup,
        # The broker requeues a connection's unsettled deliveries as soon as the connection closes or drops.
        leases_outlive_client=False,
    )


QUEUE_BACKENDS: dict[str, Callable[[Path], QueueBackend]] = {"activemq": _activemq_queue}
