"""The ActiveMQ queue when things go wrong, on a real broker (tools/activemq/start-activemq.sh): a consumer process
SIGKILLed between take and ack, the broker restarted while messages are leased, an unreachable broker, bad
settings.

The restart test stops the broker the script started and starts it again with the script: every client of the
broker loses its connection for a few seconds. The broker is started again whatever the outcome.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from armonik_core.adapters.queue.activemq import (
    ActiveMQError,
    ActiveMQQueue,
    ActiveMQSettings,
    ActiveMQUnavailable,
)
from armonik_core.adapters.queue.base import QueueMessage
from armonik_core.config import ConfigurationError, Environment
from tests.contract.backends.activemq import broker_settings
from tests.contract.backends.service import require_service

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tools" / "activemq" / "start-activemq.sh"


def _partition() -> str:
    return f"fault-{uuid.uuid4().hex[:12]}"


def _messages(partition: str, count: int) -> list[QueueMessage]:
    return [QueueMessage(f"t{i}", "s1", partition) for i in range(count)]


@pytest.fixture
def settings() -> ActiveMQSettings:
    settings = broker_settings()
    require_service("ActiveMQ", settings.host, settings.port)
    return settings


def _script(*args: str) -> str:
    done = subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, f"{SCRIPT.name} {' '.join(args)} failed: {done.stdout}{done.stderr}"
    return done.stdout


_CONSUMER = """
import asyncio, sys
from armonik_core.adapters.queue.activemq import ActiveMQQueue, ActiveMQSettings

async def main() -> None:
    queue = ActiveMQQueue(ActiveMQSettings(host=sys.argv[1], port=int(sys.argv[2])))
    leases = await queue.pull(sys.argv[3], 1, 600.0, "doomed-agent")
    print("took", *[lease.message.task_id for lease in leases], flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


async def test_consumer_killed_between_take_and_ack_gives_the_message_to_another_client(
    settings: ActiveMQSettings,
) -> None:
    """The dead consumer's lease was for ten minutes: the broker hands the message over at once anyway."""
    partition = _partition()
    queue = ActiveMQQueue(settings)
    try:
        await queue.publish(_messages(partition, 2))
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        }
        consumer = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _CONSUMER, settings.host, str(settings.port), partition,
            stdout=asyncio.subprocess.PIPE, env=env, cwd=ROOT,
        )  # fmt: skip
        try:
            assert consumer.stdout is not None
            line = await asyncio.wait_for(consumer.stdout.readline(), 60)
        finally:
            consumer.send_signal(signal.SIGKILL)
            await consumer.wait()
        assert line.split() == [b"took", b"t0"]
        assert consumer.returncode == -signal.SIGKILL

        deadline = time.monotonic() + 10
        taken = await queue.pull(partition, 10, 30.0, "survivor")
        while len(taken) < 2 and time.monotonic() < deadline:  # the broker notices the closed socket
            await asyncio.sleep(0.1)
            taken += await queue.pull(partition, 10, 30.0, "survivor")

        assert sorted((lease.message.task_id, lease.deliveries) for lease in taken) == [("t0", 2), ("t1", 1)]
        await queue.ack(taken)
        assert await queue.depth(partition) == 0
    finally:
        await queue.close()


async def test_broker_restart_loses_nothing_and_leaves_old_handles_stale(settings: ActiveMQSettings) -> None:
    if not SCRIPT.exists() or "127.0.0.1" not in settings.host:
        pytest.skip("restarts only the local broker of tools/activemq/start-activemq.sh")
    partition = _partition()
    queue = ActiveMQQueue(settings)
    try:
        await queue.publish(_messages(partition, 20))
        held = await queue.pull(partition, 5, 600.0, "agent-before")
        assert [lease.message.task_id for lease in held] == [f"t{i}" for i in range(5)]

        _script("stop")
        with pytest.raises(ActiveMQUnavailable, match=f"ActiveMQ at {settings.endpoint}"):
            await ActiveMQQueue(
                ActiveMQSettings(host=settings.host, port=settings.port, max_retries=1)
            ).depth(partition)
        await queue.ack(held[:2])  # no connection: the handles are stale, nothing to do and no error
        _script("start")

        # The client reconnects by itself; the five leased messages are back (ActiveMQ restarts their count).
        assert await queue.depth(partition) == 20
        await queue.ack(held)
        await queue.renew(held, 600.0)
        await queue.release(held)
        assert await queue.depth(partition) == 20
        await queue.publish([QueueMessage("after", "s1", partition)])
        taken = []
        while leases := await queue.pull(partition, 50, 600.0, "agent-after"):
            taken += leases
        assert sorted(lease.message.task_id for lease in taken) == sorted(
            [f"t{i}" for i in range(20)] + ["after"]
        )
        assert {lease.handle for lease in taken}.isdisjoint(lease.handle for lease in held)
        await queue.ack(taken)
        assert await queue.depth(partition) == 0
    finally:
        _script("start")
        await queue.close()


async def test_unreachable_broker_raises_a_named_error_after_bounded_retries() -> None:
    closed_port = 1  # nothing listens on tcpmux
    queue = ActiveMQQueue(ActiveMQSettings(host="127.0.0.1", port=closed_port, max_retries=2))
    started = time.monotonic()
    try:
        with pytest.raises(
            ActiveMQUnavailable, match=r"ActiveMQ at 127\.0\.0\.1:1 is unreachable after 3 attempt"
        ):
            await queue.publish(_messages(_partition(), 1))
        assert time.monotonic() - started < 10
        # Lease operations need no broker: without a connection every handle is stale.
        await queue.ack([])
    finally:
        await queue.close()
    with pytest.raises(ActiveMQError, match="closed"):
        await queue.depth("any")


async def test_plain_login_works_and_rejected_credentials_fail_without_retrying(
    settings: ActiveMQSettings,
) -> None:
    """Our broker accepts ANONYMOUS and PLAIN as admin/admin (tools/activemq/start-activemq.sh)."""
    if "127.0.0.1" not in settings.host:
        pytest.skip("the credentials are those of the local broker of tools/activemq/start-activemq.sh")
    partition = _partition()
    good = ActiveMQQueue(
        ActiveMQSettings(host=settings.host, port=settings.port, user="admin", password="admin")
    )
    bad = ActiveMQQueue(
        ActiveMQSettings(
            host=settings.host, port=settings.port, user="admin", password="wrong", max_retries=5
        )
    )
    try:
        await good.publish(_messages(partition, 1))
        assert await good.depth(partition) == 1
        started = time.monotonic()
        with pytest.raises(ActiveMQError, match=f"ActiveMQ at {settings.endpoint} refused the connection"):
            await bad.depth(partition)
        assert time.monotonic() - started < 5  # no retry: wrong credentials stay wrong
        await good.ack(await good.pull(partition, 1, 30.0, "agent"))
        assert await good.depth(partition) == 0
    finally:
        await good.close()
        await bad.close()


def test_settings_come_from_upstream_variables() -> None:
    env = Environment(
        {
            "Amqp__Host": "mq.example",
            "Amqp__Port": "5671",
            "Amqp__User": "armonik",
            "Amqp__Password": "secret",
            "Amqp__MaxPriority": "25",
            "Amqp__Prefix": "tenant-",
            "Amqp__LinkCredit": "7",
            "Amqp__MaxRetries": "2",
        }
    )
    settings = ActiveMQSettings.from_env(env)
    assert (settings.host, settings.port, settings.user, settings.password) == (
        "mq.example",
        5671,
        "armonik",
        "secret",
    )
    assert (settings.max_priority, settings.link_credit, settings.max_retries) == (25, 7, 2)
    assert settings.bands == 3
    assert [settings.placement(p) for p in (-3, 0, 9, 10, 25, 99)] == [
        (0, 0),
        (0, 0),
        (0, 9),
        (1, 0),
        (2, 5),
        (2, 5),
    ]
    assert settings.address("gpu", 2) == "tenant-gpu###q2"
    defaults = ActiveMQSettings.from_env(Environment({}))
    assert (defaults.host, defaults.port, defaults.scheme, defaults.bands) == ("127.0.0.1", 5673, "AMQP", 2)


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"Amqp__Scheme": "http"}, "Amqp__Scheme"),
        ({"Amqp__Port": "70000"}, "Amqp__Port"),
        ({"Amqp__Port": "five"}, "Amqp__Port"),
        ({"Amqp__MaxPriority": "0"}, "Amqp__MaxPriority"),
        ({"Amqp__LinkCredit": "0"}, "Amqp__LinkCredit"),
        ({"Amqp__Scheme": "AMQPS", "Amqp__CaPath": "/nonexistent/ca.pem"}, "Amqp__CaPath"),
        ({"Amqp__Password": "secret"}, "Amqp__User"),
    ],
)
def test_bad_settings_name_the_variable(variables: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigurationError, match=named):
        ActiveMQSettings.from_env(Environment(variables))


async def test_partition_names_that_activemq_would_read_as_wildcards_are_refused() -> None:
    queue = ActiveMQQueue(ActiveMQSettings(port=1, max_retries=0))
    try:
        for bad in ("a>b", "gpu.*", "two words", ""):
            with pytest.raises(ValueError, match="cannot name an ActiveMQ queue"):
                await queue.publish([QueueMessage("t", "s", bad)])
    finally:
        await queue.close()
