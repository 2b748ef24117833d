"""The compute gateway's settings: its own listener, its secret, and the agents' credentials."""

from __future__ import annotations

from pathlib import Path

import pytest

from armonik_core.adapters.queue.base import Lease, QueueMessage
from armonik_core.config import ConfigurationError, ControlPlaneSettings, Environment
from armonik_core.gateway.auth import (
    GatewayKeys,
    Handle,
    Issued,
    PermissionDenied,
    Unauthenticated,
    agent_credential,
)
from armonik_core.gateway.settings import GatewaySettings
from armonik_core.polling_agent.settings import AgentSettings


def test_the_default_listener_is_a_private_socket_under_the_data_directory(tmp_path: Path) -> None:
    settings = ControlPlaneSettings.from_env({"Embedded__DataDirectory": str(tmp_path)}).gateway
    assert settings is not None and settings.port is None
    assert settings.socket == tmp_path.absolute() / "compute-gateway.sock"
    secret = settings.load_secret()
    assert len(secret) == 64 and settings.load_secret() == secret  # made once, then kept
    assert (tmp_path / "compute-gateway.secret").stat().st_mode & 0o777 == 0o600


def test_a_tcp_port_and_a_given_secret(tmp_path: Path) -> None:
    file = tmp_path / "secret"
    file.write_text("s3cret\n")
    env = Environment({"ComputeGateway__Port": "7001", "ComputeGateway__SecretFile": str(file)})
    settings = GatewaySettings.from_env(env, tmp_path)
    assert (settings.socket, settings.host, settings.port) == (None, "127.0.0.1", 7001)
    assert settings.load_secret() == b"s3cret"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"ComputeGateway__Port": "7001", "ComputeGateway__Socket": "/tmp/x.sock"}, "ComputeGateway__Socket"),
        ({"ComputeGateway__Port": "99999"}, "ComputeGateway__Port"),
        ({"ComputeGateway__Socket": "/" + "x" * 120}, "ComputeGateway__Socket"),
        ({"ComputeGateway__SecretFile": "/nonexistent/secret"}, "ComputeGateway__SecretFile"),
        ({"ComputeGateway__Secret": "a", "ComputeGateway__SecretFile": "/x"}, "ComputeGateway__Secret"),
    ],
)
def test_unusable_settings_name_the_variable(tmp_path: Path, env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigurationError, match=named):
        GatewaySettings.from_env(Environment(env), tmp_path)


def test_an_agent_reads_its_endpoint_and_credential(tmp_path: Path) -> None:
    file = tmp_path / "credential"
    file.write_text("abc\n")
    env = {"ComputeGateway__Endpoint": "unix:///run/gw.sock", "ComputeGateway__CredentialFile": str(file)}
    settings = AgentSettings.from_env(env)
    assert (settings.control_plane_endpoint, settings.gateway_credential) == ("unix:///run/gw.sock", "abc")
    assert "abc" not in repr(settings)


def test_credentials_and_handles() -> None:
    keys = GatewayKeys(b"secret")
    good = agent_credential(b"secret", "gpu")
    assert keys.authenticate((("x-armonik-partition", "gpu"), ("x-armonik-agent-credential", good))) == "gpu"
    with pytest.raises(Unauthenticated):
        keys.authenticate((("x-armonik-partition", "cpu"), ("x-armonik-agent-credential", good)))
    with pytest.raises(Unauthenticated):
        keys.authenticate(None)
    lease = Lease("handle", QueueMessage("task", "session", "gpu", 1), 1)
    handle, nonce = keys.issue(lease, "agent")
    checked = keys.check(handle, "agent", "gpu")
    assert (checked.lease, checked.nonce, checked.session_id) == (lease, nonce, "session")
    assert keys.issue(lease, "agent")[1] != nonce  # a new run, a new nonce
    for text, agent, partition in (
        (handle, "other", "gpu"),
        (handle, "agent", "cpu"),
        ("x.y.z", "agent", "gpu"),
    ):
        with pytest.raises(PermissionDenied):
            keys.check(text, agent, partition)
    with pytest.raises(PermissionDenied):
        GatewayKeys(b"another secret").check(handle, "agent", "gpu")


def test_a_handle_the_gateway_holds_is_checked_as_strictly_as_by_its_mac() -> None:
    """A handle sent back exactly as issued is the run's; one that differs in anything (its MAC, its lease,
    its agent, its partition) is refused, as the MAC check refuses it."""
    keys = GatewayKeys(b"secret")
    lease = Lease("handle", QueueMessage("task", "session", "gpu", 1), 1)
    text, nonce = keys.issue(lease, "agent")
    issued = {nonce: Issued(text, Handle(lease, "agent", nonce))}
    assert keys.check(text, "agent", "gpu", issued) is issued[nonce].handle
    _, mac, clear = text.split(".", 2)
    forged = f"{nonce}.{mac[:-1]}{'0' if mac[-1] != '0' else '1'}.{clear}"
    other_lease = f"{nonce}.{mac}.{clear.replace('session', 'sessiom')}"
    for candidate, agent, partition in (
        (forged, "agent", "gpu"),
        (other_lease, "agent", "gpu"),
        (text, "other", "gpu"),
        (text, "agent", "cpu"),
    ):
        with pytest.raises(PermissionDenied):
            keys.check(candidate, agent, partition, issued)
