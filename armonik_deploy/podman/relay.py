"""A TCP relay from the deployment network's gateway address to services on the host's loopback address.

A storage block of the podman target may name a service that runs on the host (`rabbitmq = { host =
"127.0.0.1" }`), as the local target's do. Such services usually listen on 127.0.0.1 only, which a container on
a bridge network cannot reach: the loopback address inside it is its own. This relay runs in a container of the
host's network namespace (`--network host`) and listens on the gateway address of the deployment's own network,
which only the host and the containers on that network route to, forwarding each connection to the service's
loopback address. The services see a local client (RabbitMQ's `guest`, Redis' protected mode accept it), and
nothing listens on the host's other interfaces.

The gateway address exists only while a container is attached to the network (netavark removes an unused
bridge), so the listening sockets are bound with IP_FREEBIND: they accept connections whenever it is up.

    python -m armonik_deploy.podman.relay LISTEN_ADDRESS PORT=TARGET_HOST:TARGET_PORT ...

Runs as PID 1 of its container: SIGTERM closes the listeners and the open connections and exits at once.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass

#: Linux's IP_FREEBIND (linux/in.h), which the socket module does not name before Python 3.12.
IP_FREEBIND = getattr(socket, "IP_FREEBIND", 15)
BUFFER = 64 * 1024


@dataclass(frozen=True, slots=True)
class Forward:
    """Connections to `port` on the listening address go to `target_host:target_port`."""

    port: int
    target_host: str
    target_port: int

    def argument(self) -> str:
        return f"{self.port}={self.target_host}:{self.target_port}"

    @classmethod
    def parse(cls, text: str) -> Forward:
        port, _, target = text.partition("=")
        host, _, target_port = target.rpartition(":")
        if not (port.isdigit() and host and target_port.isdigit()):
            raise ValueError(f"expected PORT=HOST:PORT, got {text!r}")
        return cls(int(port), host.strip("[]"), int(target_port))


def listening_socket(address: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_IPV6 if family == socket.AF_INET6 else socket.IPPROTO_IP, IP_FREEBIND, 1)
    sock.bind((address, port))
    sock.setblocking(False)
    return sock


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(BUFFER):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.close()


async def _relay(
    forward: Forward, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
) -> None:
    try:
        target_reader, target_writer = await asyncio.open_connection(forward.target_host, forward.target_port)
    except OSError as exc:
        print(f"relay: {forward.argument()}: {exc}", file=sys.stderr, flush=True)
        client_writer.close()
        return
    try:
        await asyncio.gather(_pipe(client_reader, target_writer), _pipe(target_reader, client_writer))
    finally:
        for writer in (client_writer, target_writer):
            writer.close()


async def serve(address: str, forwards: Sequence[Forward], stop: asyncio.Event) -> None:
    """Relay every forward until `stop` is set."""
    servers = []
    for forward in forwards:

        async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter, f: Forward = forward) -> None:
            await _relay(f, r, w)

        servers.append(await asyncio.start_server(handle, sock=listening_socket(address, forward.port)))
    print(f"relay: on {address}: {', '.join(f.argument() for f in forwards)}", file=sys.stderr, flush=True)
    await stop.wait()
    for server in servers:
        server.close()


async def _main(address: str, forwards: list[Forward]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await serve(address, forwards, stop)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        forwards = [Forward.parse(a) for a in args[1:]]
    except ValueError as exc:
        print(f"relay: {exc}", file=sys.stderr)
        return 2
    asyncio.run(_main(args[0], forwards))
    return 0


if __name__ == "__main__":
    sys.exit(main())
