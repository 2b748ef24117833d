"""Storage blocks naming services on the host's loopback address, made reachable from the containers.

A block that gives an address (`storage.names_running_service`) is used as written by the renderer: no service
is deployed for it. An address of the host's loopback (`127.0.0.1`, `localhost`, `::1`), as the local target's
blocks usually give, means the host itself; inside a container it would be the container. For those, the
podman target gives the containers the gateway address of the deployment's network instead, and runs the
relay (`armonik_deploy.podman.relay`) in the host's network namespace, on that address and the service's port,
to the loopback address. Other addresses are left as they are: the containers reach them through the
network's gateway like any address outside the machine.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from armonik_deploy.parameters import Parameters, ParametersError
from armonik_deploy.podman.relay import Forward
from armonik_deploy.podman.translate import Container, Pod
from armonik_deploy.storage import ADDRESS_KEYS, names_running_service

RELAY_POD = "host-services"
#: The relay's user: the images' unprivileged user (it binds ports above 1024 only).
RELAY_USER = "5000:5000"
#: Default ports of the blocks' `host` key, as `storage` has them.
DEFAULT_PORTS = {"mongodb": 27017, "rabbitmq": 5672, "activemq": 5673, "redis": 6379}


def is_loopback(host: str) -> bool:
    name = host.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class _Rewriter:
    def __init__(self, file: Path, gateway: str):
        self.file = file
        self.gateway = gateway
        self.forwards: dict[int, Forward] = {}

    def target(self, where: str, host: str, port: int) -> str:
        """The gateway for a loopback `host:port` (its forward recorded), else `host` unchanged."""
        if not is_loopback(host):
            return host
        known = self.forwards.get(port)
        target = host.strip("[]")
        if known is not None and known.target_host != target:
            raise ParametersError(self.file, where, f"port {port} of the host is named twice")
        self.forwards[port] = Forward(port, target, port)
        return self.gateway

    def block(self, name: str, block: dict[str, Any]) -> dict[str, Any]:
        out = dict(block)
        if "connection_string" in block:
            url = urlsplit(str(block["connection_string"]))
            if any(is_loopback(h.rsplit(":", 1)[0]) for h in url.netloc.rsplit("@", 1)[-1].split(",")):
                raise ParametersError(
                    self.file,
                    f"{name}.connection_string",
                    "a MongoDB of the host's loopback address is given by host and port on podman",
                )
        if "host" in block and name in DEFAULT_PORTS:
            port = block.get("port", DEFAULT_PORTS[name])
            if isinstance(port, int) and not isinstance(port, bool):
                out["host"] = self.target(f"{name}.host", str(block["host"]), port)
        elif "endpoint_url" in block:
            out["endpoint_url"] = self.url(f"{name}.endpoint_url", str(block["endpoint_url"]), name)
        return out

    def url(self, where: str, value: str, name: str) -> str:
        """`http://host:port` (MinIO) or `host:port` (Redis) with a loopback host replaced."""
        parts = urlsplit(value if "//" in value else f"//{value}")
        if parts.hostname is None or not is_loopback(parts.hostname):
            return value
        default = {"https": 443, "http": 80}.get(parts.scheme, DEFAULT_PORTS.get(name, 0))
        port = parts.port or default
        host = self.target(where, parts.hostname, port)
        netloc = f"{host}:{port}"
        if parts.username is not None:
            netloc = f"{parts.netloc.rsplit('@', 1)[0]}@{netloc}"
        rewritten = urlunsplit(parts._replace(netloc=netloc))
        return rewritten if "//" in value else rewritten.removeprefix("//")


def reach_host(params: Parameters, file: Path, gateway: str) -> tuple[Parameters, list[Forward]]:
    """The parameters with the host's loopback services addressed by `gateway`, and the relay's forwards."""
    rewriter = _Rewriter(file, gateway)
    changed = {
        name: rewriter.block(name, block)
        for name in ADDRESS_KEYS
        if names_running_service(name, block := getattr(params, name))
    }
    # the keys are storage block names (ADDRESS_KEYS), each a dict field: beyond what mypy follows through **
    rewritten = dataclasses.replace(params, **changed)  # type: ignore[arg-type]
    return rewritten, sorted(rewriter.forwards.values(), key=lambda f: f.port)


def relay_pod(prefix: str, image: str, gateway: str, forwards: list[Forward]) -> Pod:
    """The pod of the relay: one container of `image` (which holds this package) in the host's network."""
    name = f"{prefix}-{RELAY_POD}-0"
    args = ["--name", f"{name}-relay", "--network", "host", "--restart", "always", "--stop-timeout", "10"]
    args += ["--user", RELAY_USER, "--cap-drop", "ALL", "--security-opt", "no-new-privileges"]
    args += ["--entrypoint", json.dumps(["python", "-m", "armonik_deploy.podman.relay"])]
    args += ["@image", gateway, *(f.argument() for f in forwards)]
    return Pod(name, "Relay", [Container("relay", image, args)], options=["--infra=false"])
