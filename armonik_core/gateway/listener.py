"""The compute gateway's own gRPC server: a unix socket (mode 0600) or a TCP port, never the clients' port.

A second `grpc.aio.Server` in the control plane's event loop, sharing its backends: grpcio registers services
per server, not per port, so a service kept off the clients' port needs a server of its own (and a call to
`armonik_py.ComputeGateway/*` on the clients' port answers UNIMPLEMENTED like any unknown method).
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Sequence

import grpc

from armonik_core.gateway.server import ComputeGateway, add_gateway
from armonik_core.gateway.settings import GatewaySettings
from armonik_core.tls import ServerTlsSettings, server_credentials

log = logging.getLogger("armonik.gateway")


def _clear_stale_socket(settings: GatewaySettings) -> None:
    """A socket file left by a control plane that was killed: removed, so that the new one can bind."""
    path = settings.socket
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        if stat.S_ISSOCK(path.lstat().st_mode):
            path.unlink()
    except FileNotFoundError:
        pass


async def start_gateway_server(
    settings: GatewaySettings,
    gateway: ComputeGateway,
    tls: ServerTlsSettings | None,
    options: Sequence[tuple[str, object]],
) -> tuple[grpc.aio.Server, str]:
    """Serve `gateway` on its listener; returns the server and the address agents connect to."""
    server = grpc.aio.server(options=list(options))
    add_gateway(server, gateway)
    _clear_stale_socket(settings)
    address = settings.address
    if settings.socket is not None:
        previous = os.umask(0o177)  # the socket is created 0600: no other user reaches the gateway
        try:
            bound = server.add_insecure_port(address)
        finally:
            os.umask(previous)
    elif tls is not None:
        bound = server.add_secure_port(address, server_credentials(tls))
    else:
        bound = server.add_insecure_port(address)
    if bound == 0:
        raise OSError(f"the compute gateway cannot listen on {address}")
    await server.start()
    if settings.socket is not None:
        os.chmod(settings.socket, 0o600)
        endpoint = f"unix://{settings.socket}"
    else:
        endpoint = f"{'https://' if tls else ''}{settings.host}:{bound}"
    log.info(
        "compute gateway listening",
        extra={"address": endpoint, "tls": "on" if tls and not settings.socket else "off"},
    )
    return server, endpoint
