"""The RabbitMQ queue when things go wrong, on a real broker: a broker restart with messages in flight, a
consumer SIGKILLed between take and ack, an unreachable or misconfigured broker.

The restart test stops and starts the local broker's application with `rabbitmqctl`: every client of the
broker (other tests included) loses its connection for a few seconds. The broker is started again whatever
the outcome.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from armonik_core.adapters.queue.base import Lease, QueueMessage, TaskQueue
from armonik_core.adapters.queue.rabbitmq import (
    RabbitMQQueue,
    RabbitMQRefusedError,
    RabbitMQSettings,
    RabbitMQUnavailableError,
)
from armonik_core.config import ConfigurationError, Environment
from armonik_deploy.certificates import ServerIdentity, ensure_certificates
from tests.contract.backends.rabbitmq import broker_settings, subprocess_setup
from tests.support import free_port, unavailable

REPO_ROOT = Path(__file__).resolve().parents[2]
#: Leases the tests never let run out: what comes back, comes back because of the fault.
LONG_LEASE = 60.0


def msg(partition: str, task: str, priority: int = 0) -> QueueMessage:
    return QueueMessage(task_id=task, session_id="s", partition_id=partition, priority=priority)


def task_ids(leases: list[Lease]) -> list[str]:
    return [lease.message.task_id for lease in leases]


async def drain(queue: TaskQueue, partition: str) -> list[Lease]:
    taken: list[Lease] = []
    while leases := await queue.pull(partition, 100, LONG_LEASE, "drain"):
        taken.extend(leases)
    return taken


async def wait_for_depth(queue: TaskQueue, partition: str, expected: int, within: float) -> float:
    """Seconds until the queue holds `expected` ready messages; fails after `within` seconds."""
    start = time.monotonic()
    while (depth := await queue.depth(partition)) != expected:
        assert time.monotonic() - start < within, f"depth {depth}, expected {expected} within {within} s"
        await asyncio.sleep(0.05)
    return time.monotonic() - start


@pytest.fixture
def settings() -> RabbitMQSettings:
    return broker_settings()


@pytest.fixture
def partition() -> str:
    return f"part-{os.urandom(6).hex()}"


# -- broker restart ---------------------------------------------------------------------------------------


def _rabbitmqctl(*args: str) -> None:
    done = subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"rabbitmqctl {' '.join(args)} failed: {done.stdout}{done.stderr}"


@pytest.fixture
def broker_control(settings: RabbitMQSettings) -> Iterator[None]:
    """rabbitmqctl on the broker under test; at teardown the broker runs, whatever the test did to it."""
    problem = None
    if shutil.which("rabbitmqctl") is None:
        problem = "rabbitmqctl is not installed"
    elif settings.host not in ("127.0.0.1", "localhost", "::1"):
        problem = f"the broker under test ({settings.address}) is not the local node rabbitmqctl controls"
    if problem:
        unavailable(problem, f"{problem}; CI must be able to restart its broker")
    try:
        yield
    finally:
        _rabbitmqctl("start_app")  # a no-op when it runs
        _rabbitmqctl("await_startup")


def restart_broker() -> None:
    """Stop and start the broker application (connections closed, queues recovered from disk)."""
    try:
        _rabbitmqctl("stop_app")
    finally:
        _rabbitmqctl("start_app")
        _rabbitmqctl("await_startup")


@pytest.mark.timeout(60)
async def test_broker_restart_keeps_messages_requeues_leases_and_stales_handles(
    broker_control: None, settings: RabbitMQSettings, partition: str
) -> None:
    async with RabbitMQQueue(settings) as queue:
        await queue.publish([msg(partition, f"t{i:02d}") for i in range(20)])
        held = await queue.pull(partition, 5, LONG_LEASE, "agent")
        assert task_ids(held) == [f"t{i:02d}" for i in range(5)]

        await asyncio.to_thread(restart_broker)

        # The same client, untouched: it reconnects by itself. The leased messages are back in their place
        # and, taken on the new connection, get the delivery tags the old leases had (1 to 5).
        again = await queue.pull(partition, 5, LONG_LEASE, "agent")
        assert task_ids(again) == task_ids(held)
        assert all(lease.deliveries >= 2 for lease in again)
        assert not {lease.handle for lease in again} & {lease.handle for lease in held}
        assert await queue.depth(partition) == 15

        # Old handles are stale: they neither ack, release nor renew the redelivered copies.
        await queue.ack(held)
        await queue.release(held)
        await queue.renew(held, LONG_LEASE)
        assert await queue.depth(partition) == 15
        await queue.release(again)
        await wait_for_depth(queue, partition, 20, within=5)  # acked copies would never come back

        everything = await drain(queue, partition)
        assert sorted(task_ids(everything)) == [f"t{i:02d}" for i in range(20)]
        await queue.ack(everything)
        assert await queue.depth(partition) == 0


# -- a consumer killed between take and ack ---------------------------------------------------------------

_CONSUMER = """
import asyncio, sys
{setup}
async def main() -> None:
    queue = make_queue()
    leases = await queue.pull(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), "doomed-agent")
    print("took", *sorted(lease.message.task_id for lease in leases), flush=True)
    await asyncio.sleep(3600)
asyncio.run(main())
"""


@pytest.mark.timeout(30)
async def test_consumer_killed_between_take_and_ack_gives_messages_to_another_client(
    settings: RabbitMQSettings, partition: str
) -> None:
    survivor = RabbitMQQueue(settings)
    try:
        await survivor.publish([msg(partition, f"t{i}") for i in range(5)])
        code = _CONSUMER.format(setup=subprocess_setup(settings))
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
        }
        consumer = await asyncio.create_subprocess_exec(
            sys.executable, "-c", code, partition, "3", str(LONG_LEASE),
            stdout=asyncio.subprocess.PIPE, env=env, cwd=REPO_ROOT,
        )  # fmt: skip
        try:
            assert consumer.stdout is not None
            line = await asyncio.wait_for(consumer.stdout.readline(), 20)
            assert line.split() == [b"took", b"t0", b"t1", b"t2"]
            assert await survivor.depth(partition) == 2  # the three are leased to the helper
        finally:
            consumer.send_signal(signal.SIGKILL)
            await consumer.wait()
        assert consumer.returncode == -signal.SIGKILL

        # The broker sees the connection drop and requeues at once, long before the lease would end.
        assert await wait_for_depth(survivor, partition, 5, within=10) < LONG_LEASE / 4
        taken = await survivor.pull(partition, 10, LONG_LEASE, "survivor")
        assert task_ids(taken) == ["t0", "t1", "t2", "t3", "t4"]
        assert [lease.deliveries for lease in taken] == [2, 2, 2, 1, 1]
        await survivor.ack(taken)
        assert await survivor.depth(partition) == 0
    finally:
        await survivor.close()


# -- unreachable or misconfigured broker -----------------------------------------------------------------


@pytest.mark.timeout(30)
async def test_unreachable_broker_fails_with_a_named_error_after_bounded_retries(partition: str) -> None:
    port = free_port()  # nothing listens there
    async with RabbitMQQueue(RabbitMQSettings(port=port, max_retries=3), retry_delay=0.1) as queue:
        start = time.monotonic()
        with pytest.raises(
            RabbitMQUnavailableError, match=rf"RabbitMQ at 127\.0\.0\.1:{port} is unreachable \(3 attempts\)"
        ):
            await queue.publish([msg(partition, "t1")])
        assert time.monotonic() - start < 10
        with pytest.raises(RabbitMQUnavailableError):
            await queue.depth(partition)


@pytest.mark.timeout(30)
async def test_wrong_password_is_reported_without_retrying(
    settings: RabbitMQSettings, partition: str
) -> None:
    async with RabbitMQQueue(
        dataclasses.replace(settings, password="not-the-password", max_retries=5), retry_delay=2
    ) as queue:
        start = time.monotonic()
        with pytest.raises(RabbitMQUnavailableError, match=f"rejected user '{settings.user}'"):
            await queue.depth(partition)
        assert time.monotonic() - start < 2  # no retry delay was waited


@pytest.mark.timeout(30)
async def test_tls_to_a_plain_port_fails_with_a_named_error(
    settings: RabbitMQSettings, partition: str
) -> None:
    tls = dataclasses.replace(settings, scheme="AMQPS", allow_insecure_tls=True, max_retries=1)
    async with RabbitMQQueue(tls) as queue:
        with pytest.raises(RabbitMQUnavailableError, match=rf"RabbitMQ at {settings.host}:{settings.port}"):
            await queue.publish([msg(partition, "t1")])


@pytest.mark.timeout(30)
async def test_queue_declared_with_other_arguments_is_refused_and_held_leases_survive(
    settings: RabbitMQSettings, partition: str
) -> None:
    other = f"{partition}-other"
    async with (
        RabbitMQQueue(dataclasses.replace(settings, max_priority=3)) as elsewhere,
        RabbitMQQueue(settings) as queue,
    ):
        await elsewhere.publish([msg(other, "theirs")])
        await queue.publish([msg(partition, "mine")])
        (lease,) = await queue.pull(partition, 1, LONG_LEASE, "agent")

        with pytest.raises(
            RabbitMQRefusedError,
            match=rf"queue armonik\.{settings.prefix}\.{other} exists with other arguments",
        ):
            await queue.publish([msg(other, "more")])

        # The refusal closed a side channel only: the lease is still held (not requeued) and still acks.
        assert await queue.depth(partition) == 0
        await queue.ack([lease])
        await queue.release([lease])  # stale once acked
        assert await queue.depth(partition) == 0
        assert await elsewhere.depth(other) == 1


# -- TLS (AMQPS) --------------------------------------------------------------------------------------------
# The local broker has no TLS listener; a TLS terminator in front of it (as an ingress or a cloud load
# balancer would be) gives the client a real handshake to make, with certificates from armonik_deploy.


@dataclass
class TlsTerminator:
    port: int
    ca: Path
    handshakes: int = 0


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()


@pytest.fixture
async def tls_terminator(settings: RabbitMQSettings, tmp_path: Path) -> AsyncIterator[TlsTerminator]:
    certificates = ensure_certificates(
        tmp_path / "certificates", [ServerIdentity("amqp", ["127.0.0.1", "localhost"])], key_size=2048
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    pair = certificates.servers["amqp"]
    context.load_cert_chain(pair.certificate, pair.key)
    terminator = TlsTerminator(port=0, ca=certificates.ca.certificate)

    async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        terminator.handshakes += 1
        broker_reader, broker_writer = await asyncio.open_connection(settings.host, settings.port)
        await asyncio.gather(_pipe(reader, broker_writer), _pipe(broker_reader, writer))

    server = await asyncio.start_server(forward, "127.0.0.1", 0, ssl=context)
    terminator.port = server.sockets[0].getsockname()[1]
    async with server:
        yield terminator


@pytest.mark.timeout(30)
async def test_amqps_verifies_the_broker_against_amqp_ca_path(
    settings: RabbitMQSettings, tls_terminator: TlsTerminator, partition: str
) -> None:
    variables = {
        "Amqp__Host": "localhost",
        "Amqp__Port": str(tls_terminator.port),
        "Amqp__Scheme": "AMQPS",
        "Amqp__CaPath": str(tls_terminator.ca),
        "Amqp__Prefix": settings.prefix,
    }
    tls = dataclasses.replace(RabbitMQSettings.from_env(Environment(variables)), queue_expires_seconds=60)
    async with RabbitMQQueue(tls) as queue:
        await queue.publish([msg(partition, "over-tls")])
        (lease,) = await queue.pull(partition, 1, LONG_LEASE, "agent")
        await queue.ack([lease])
        assert lease.message.task_id == "over-tls"
        assert await queue.depth(partition) == 0
        assert tls_terminator.handshakes == 1


@pytest.mark.timeout(30)
async def test_amqps_refuses_a_broker_certificate_it_cannot_verify(
    settings: RabbitMQSettings, tls_terminator: TlsTerminator, partition: str
) -> None:
    untrusted = RabbitMQSettings(
        port=tls_terminator.port, scheme="AMQPS", prefix=settings.prefix, max_retries=1
    )
    insecure = dataclasses.replace(untrusted, allow_insecure_tls=True, queue_expires_seconds=60)
    async with (
        RabbitMQQueue(untrusted) as queue,  # the system's authorities do not know the terminator's CA
        RabbitMQQueue(insecure) as insecure_queue,
    ):
        with pytest.raises(
            RabbitMQUnavailableError,
            match=rf"RabbitMQ at 127\.0\.0\.1:{tls_terminator.port}.*CERTIFICATE_VERIFY_FAILED",
        ):
            await queue.depth(partition)
        assert await insecure_queue.depth(partition) == 0  # Amqp__AllowInsecureTls skips the verification


def test_settings_from_environment() -> None:
    settings = RabbitMQSettings.from_env(
        Environment(
            {
                "AMQP__HOST": "broker.example",
                "Amqp__Port": "5671",
                "Amqp__User": "armonik",
                "Amqp__Password": "secret",
                "Amqp__Scheme": "amqps",
                "Amqp__AllowInsecureTls": "true",
                "Amqp__MaxPriority": "5",
                "Amqp__Prefix": "prod",
                "Amqp__MaxRetries": "2",
            }
        )
    )
    assert (settings.address, settings.user, settings.password) == (
        "broker.example:5671",
        "armonik",
        "secret",
    )
    assert (settings.scheme, settings.allow_insecure_tls, settings.max_priority) == ("AMQPS", True, 5)
    assert settings.queue_name("gpu") == "armonik.prod.gpu"
    assert settings.queue_arguments() == {"x-max-priority": 5}
    assert "secret" not in repr(settings)
    assert RabbitMQSettings.from_env(Environment({})).queue_name("default") == "armonik.default"


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"Amqp__Scheme": "HTTP"}, "Amqp__Scheme"),
        ({"Amqp__MaxPriority": "0"}, "Amqp__MaxPriority"),
        ({"Amqp__MaxPriority": "ten"}, "Amqp__MaxPriority"),
        ({"Amqp__Port": "70000"}, "Amqp__Port"),
        ({"Amqp__MaxRetries": "0"}, "Amqp__MaxRetries"),
        ({"Amqp__AllowInsecureTls": "maybe"}, "Amqp__AllowInsecureTls"),
    ],
)
def test_bad_settings_name_their_variable(variables: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigurationError, match=named):
        RabbitMQSettings.from_env(Environment(variables))


def test_missing_ca_file_is_a_configuration_error(tmp_path: Path) -> None:
    settings = RabbitMQSettings(scheme="AMQPS", ca_path=str(tmp_path / "missing-ca.pem"))
    with pytest.raises(ConfigurationError, match="Amqp__CaPath"):
        RabbitMQQueue(settings)
