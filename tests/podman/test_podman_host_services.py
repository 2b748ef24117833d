"""The podman target on the host's own services: the storage blocks name the RabbitMQ and Redis that run on this
machine's loopback address (127.0.0.1:5672 guest/guest, 127.0.0.1:6379), as the local target's do. No broker or
cache is deployed; the containers reach them through the relay on the deployment network's gateway
(`armonik_deploy.podman.host_services`). SDK hello world runs, on a partition with unix-socket channels and on
one with upstream's TCP channels, and the broker and Redis hold the deployment's queue and objects (names of
this run's own: the services are shared)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pika
import pytest
import redis
from pika.exceptions import ChannelClosedByBroker

from tests.contract.backends.service import require_service
from tests.e2e.scenarios import Clients
from tests.e2e.test_local_deployment import test_hello_world_with_the_sdk as hello_world
from tests.podman.conftest import PodmanDeployment, Variant, deployed

pytestmark = pytest.mark.podman

RUN = uuid.uuid4().hex[:8]
PREFIX = f"podman-{RUN}"
HOST = Variant(
    "host-services",
    storage={
        "rabbitmq": {
            "host": "127.0.0.1",
            "port": 5672,
            "user": "guest",
            "password": "guest",
            "prefix": PREFIX,
        },
        "redis": {"host": "127.0.0.1", "port": 6379, "instance_name": PREFIX},
    },
    partitions=("default",),
    # Upstream's TCP channels: the agent and the worker meet on the pod's localhost.
    partition_settings={"tcp": {"socket_type": "tcp", "replicas": 1}},
)


@pytest.fixture(scope="module")
def host_deployment(
    images: dict[str, float], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PodmanDeployment]:
    require_service("RabbitMQ", "127.0.0.1", 5672)
    require_service("Redis", "127.0.0.1", 6379)
    with deployed(tmp_path_factory, HOST) as running:
        yield running
    with pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", 5672)) as connection:
        for partition in ("default", "tcp"):
            connection.channel().queue_delete(f"armonik.{PREFIX}.{partition}")


@pytest.fixture(scope="module")
def clients(host_deployment: PodmanDeployment) -> Iterator[Clients]:
    with host_deployment.channel() as channel:
        yield Clients(channel)


def test_no_broker_or_cache_is_deployed_and_the_relay_runs_on_the_gateway(
    host_deployment: PodmanDeployment,
) -> None:
    names = [c["Names"][0] for c in host_deployment.containers()]
    assert not [n for n in names if "rabbitmq" in n or "redis" in n], names
    skipped = [line for line in host_deployment.deploy_output.splitlines() if "not run" in line]
    assert not [line for line in skipped if "rabbitmq" in line or "redis" in line], skipped
    relay = host_deployment.container("-host-services-0-relay")
    (state,) = json.loads(host_deployment.podman("container", "inspect", relay).stdout)
    assert state["State"]["Status"] == "running"
    assert state["HostConfig"]["NetworkMode"] == "host"
    gateway, *forwards = state["Args"][-3:]
    assert forwards == ["5672=127.0.0.1:5672", "6379=127.0.0.1:6379"], state["Args"]
    network = json.loads(
        host_deployment.podman("network", "inspect", host_deployment.label.split("=")[1]).stdout
    )
    assert gateway == network[0]["subnets"][0]["gateway"]


@pytest.mark.parametrize("partition", ["default", "tcp"])
def test_hello_world_on_the_host_s_rabbitmq_and_redis(
    host_deployment: PodmanDeployment, clients: Clients, partition: str
) -> None:
    hello_world(host_deployment, clients, partition)  # type: ignore[arg-type]


def test_the_host_s_broker_holds_the_partition_s_queue(host_deployment: PodmanDeployment) -> None:
    """A passive declare succeeds for the deployment's queue only (an unknown one closes the channel)."""
    with pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", 5672)) as connection:
        declared = connection.channel().queue_declare(f"armonik.{PREFIX}.default", passive=True)
        assert declared.method.queue == f"armonik.{PREFIX}.default"
        with pytest.raises(ChannelClosedByBroker) as absent:
            connection.channel().queue_declare(f"armonik.{PREFIX}.no-such-partition", passive=True)
        assert absent.value.reply_code == 404


def test_the_host_s_redis_holds_the_session_s_objects(host_deployment: PodmanDeployment) -> None:
    client = redis.Redis(host="127.0.0.1", port=6379)
    try:
        keys = list(client.scan_iter(match=f"{PREFIX}:object:*", count=1000))
    finally:
        client.close()
    # hello world's payload and output, at least
    assert len(keys) >= 2, keys


def test_destroy_keeps_the_data_volume_and_a_deploy_finds_the_sessions_again(
    host_deployment: PodmanDeployment, clients: Clients
) -> None:
    """Last of this module: `status` lists the containers, `destroy` removes every pod and container it
    made and the network but keeps the data volume (the embedded state); deploying again finds the sessions."""
    status = host_deployment.status_table()
    rows = [line for line in status.splitlines() if line.startswith("│ armonik-")]
    assert len(rows) == len(host_deployment.containers()) >= 6, status
    assert all("running" in row for row in rows), status
    assert any("-host-servi" in row for row in rows) and any("-control-pl" in row for row in rows), status
    data = f"{host_deployment.label.split('=', 1)[1]}-armonik-data"
    assert host_deployment.podman("volume", "exists", data).returncode == 0

    done = host_deployment.deploy_cli("destroy")

    assert done.returncode == 0, done.stdout + done.stderr
    assert host_deployment.containers() == []
    pods = host_deployment.podman("pod", "ps", "--quiet", "--filter", f"label={host_deployment.label}")
    assert pods.stdout.split() == []
    kept = host_deployment.podman("volume", "ls", "--quiet", "--filter", f"label={host_deployment.label}")
    assert kept.stdout.split() == [data], "the pods' own volumes go, the data volume stays"
    assert "Nothing is running" in host_deployment.status_table()

    done = host_deployment.deploy_cli("deploy")

    assert done.returncode == 0, done.stdout + done.stderr
    session_id = host_deployment.sessions["hello_world"]
    with host_deployment.channel() as channel:
        assert Clients(channel).sessions.get_session(session_id).session_id == session_id
