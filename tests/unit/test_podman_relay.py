"""Storage blocks naming services that run already (`storage.names_running_service`): the renderer deploys none
for them and gives the core processes their address; the podman target gives the containers the network's
gateway for the host's loopback services (`armonik_deploy.podman.host_services`) and relays it to them
(`armonik_deploy.podman.relay`, driven here with real sockets on the loopback interface)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from armonik_deploy.kubernetes import Rendered, render
from armonik_deploy.parameters import ParametersError, load_parameters, load_versions
from armonik_deploy.podman.host_services import reach_host, relay_pod
from armonik_deploy.podman.relay import Forward, serve
from armonik_deploy.podman.translate import Network, secret_data, translate
from armonik_deploy.storage import names_running_service

ROOT = Path(__file__).resolve().parents[2]
QUICK_DEPLOY = ROOT / "infrastructure" / "quick-deploy" / "localhost"
GATEWAY = "10.89.7.1"
HOST_SERVICES = """
rabbitmq = { host = "127.0.0.1", port = 5672, user = "guest", password = "guest" }
redis = { endpoint_url = "localhost:6379" }
"""


def parameters_file(tmp_path: Path, extra: str) -> Path:
    file = tmp_path / "parameters.tfvars"
    file.write_text((QUICK_DEPLOY / "parameters.tfvars").read_text() + extra)
    return file


def render_on_podman(tmp_path: Path, extra: str) -> tuple[Rendered, list[Forward]]:
    file = parameters_file(tmp_path, extra)
    params, forwards = reach_host(load_parameters(file), file, GATEWAY)
    versions = load_versions(QUICK_DEPLOY / "versions.tfvars.json")
    return render(params, versions, file, certificates=tmp_path / "certs"), forwards


def core_env(rendered: Rendered) -> dict[str, str]:
    env = dict(rendered.get("ConfigMap", "core-configmap")["data"])
    for secret in rendered.of_kind("Secret"):
        if secret["metadata"]["name"].endswith("-credentials"):
            env |= {k: v.decode() for k, v in secret_data(secret).items()}
    return env


@pytest.mark.parametrize(
    ("name", "block", "running"),
    [
        ("rabbitmq", {"host": "127.0.0.1"}, True),
        ("rabbitmq", {"max_priority": 10}, False),
        ("rabbitmq", {}, False),
        ("redis", {"endpoint_url": "h:6379"}, True),
        ("minio", {"default_bucket": "b"}, False),
        ("minio", {"endpoint_url": "http://h:9000"}, True),
        ("mongodb", {"connection_string": "mongodb://h"}, True),
        ("mongodb", {"cluster": {"replicas": 1}}, False),
    ],
)
def test_a_block_with_an_address_names_a_running_service(name: str, block: dict, running: bool) -> None:
    assert names_running_service(name, block) is running


def test_running_services_are_not_deployed_and_the_core_reaches_them(tmp_path: Path) -> None:
    rendered, forwards = render_on_podman(tmp_path, HOST_SERVICES)
    kinds = {(m["kind"], m["metadata"]["name"]) for m in rendered.manifests}
    for workload in ("StatefulSet", "Deployment", "Service"):
        assert (workload, "rabbitmq") not in kinds and (workload, "redis") not in kinds
    env = core_env(rendered)
    assert env["Components__QueueStorage"] == "rabbitmq" and env["Components__ObjectStorage"] == "redis"
    assert (env["Amqp__Host"], env["Amqp__Port"]) == (GATEWAY, "5672")
    assert (env["Amqp__User"], env["Amqp__Password"]) == ("guest", "guest")
    assert env["Redis__EndpointUrl"] == f"{GATEWAY}:6379" and "Redis__Password" not in env
    assert "Amqp__Password" not in rendered.get("ConfigMap", "core-configmap")["data"]
    assert forwards == [Forward(5672, "127.0.0.1", 5672), Forward(6379, "localhost", 6379)]


def test_addresses_outside_the_host_are_kept_and_need_no_relay(tmp_path: Path) -> None:
    extra = 'rabbitmq = { host = "broker.example", port = 5671 }\nminio = { endpoint_url = "http://s3.example:9000" }\n'
    rendered, forwards = render_on_podman(tmp_path, extra)
    env = rendered.get("ConfigMap", "core-configmap")["data"]
    assert (env["Amqp__Host"], env["S3__EndpointUrl"]) == ("broker.example", "http://s3.example:9000")
    assert forwards == []
    assert ("StatefulSet", "minio") not in {(m["kind"], m["metadata"]["name"]) for m in rendered.manifests}


def test_a_loopback_url_keeps_its_scheme_and_credentials(tmp_path: Path) -> None:
    rendered, forwards = render_on_podman(tmp_path, 'minio = { endpoint_url = "http://[::1]:9000" }\n')
    assert rendered.get("ConfigMap", "core-configmap")["data"]["S3__EndpointUrl"] == f"http://{GATEWAY}:9000"
    assert forwards == [Forward(9000, "::1", 9000)]


def test_a_loopback_mongodb_connection_string_is_a_named_error(tmp_path: Path) -> None:
    file = parameters_file(tmp_path, 'mongodb = { connection_string = "mongodb://127.0.0.1:27017" }\n')
    with pytest.raises(ParametersError, match=r"mongodb\.connection_string.*host and port"):
        reach_host(load_parameters(file), file, GATEWAY)


def test_the_relay_runs_first_in_the_host_network_unprivileged(tmp_path: Path) -> None:
    rendered, forwards = render_on_podman(tmp_path, HOST_SERVICES)
    pod = relay_pod("ak", "localhost/armonik-control-plane:1", GATEWAY, forwards)
    (container,) = pod.containers
    args = container.args
    assert args[args.index("--network") + 1] == "host"
    assert args[args.index("--user") + 1] == "5000:5000" and "ALL" in args
    assert json.loads(args[args.index("--entrypoint") + 1])[-1] == "armonik_deploy.podman.relay"
    assert args[args.index("@image") + 1 :] == [GATEWAY, "5672=127.0.0.1:5672", "6379=localhost:6379"]
    translation = translate(rendered.manifests, "ak", Network("ak", GATEWAY, "127.0.0.1"), lambda i: True)
    assert {p.name for p in translation.pods}.isdisjoint({pod.name})


def test_forward_arguments_round_trip_and_bad_ones_are_refused() -> None:
    forward = Forward(6379, "::1", 6380)
    assert Forward.parse(forward.argument()) == forward
    with pytest.raises(ValueError, match="PORT=HOST:PORT"):
        Forward.parse("6379:localhost")


def test_the_relay_carries_both_directions_to_the_target() -> None:
    async def scenario() -> tuple[bytes, bytes]:
        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            data = await reader.read(100)
            writer.write(b"echo:" + data)
            await writer.drain()
            writer.close()

        target = await asyncio.start_server(echo, "127.0.0.1", 0)
        target_port = target.sockets[0].getsockname()[1]
        relay_port = target_port + 1 if target_port < 65000 else target_port - 1
        stop = asyncio.Event()
        relay = asyncio.create_task(serve("127.0.0.2", [Forward(relay_port, "127.0.0.1", target_port)], stop))
        await asyncio.sleep(0.2)
        reader, writer = await asyncio.open_connection("127.0.0.2", relay_port)
        writer.write(b"ping")
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(100), 5)
        writer.close()
        stop.set()
        await asyncio.wait_for(relay, 5)
        target.close()
        # Nothing listens on that port once the relay stopped.
        try:
            await asyncio.open_connection("127.0.0.2", relay_port)
            after = b"connected"
        except OSError:
            after = b"refused"
        return answer, after

    assert asyncio.run(scenario()) == (b"echo:ping", b"refused")
