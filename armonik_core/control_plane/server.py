"""Assembling the control plane: backends from settings, the client services on one grpc.aio server, the
agents' compute gateway on another (its own listener: see armonik_core.gateway.listener)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import grpc

from armonik_core.adapters import factory
from armonik_core.adapters.queue.base import TaskQueue
from armonik_core.adapters.queue.memory import MemoryQueue
from armonik_core.adapters.state.base import StateStore
from armonik_core.config import ControlPlaneSettings
from armonik_core.control_plane.applications import ApplicationsService
from armonik_core.control_plane.auth import setup as auth_setup
from armonik_core.control_plane.auth.authenticator import Authenticator
from armonik_core.control_plane.auth.service import AuthenticationService
from armonik_core.control_plane.auth.settings import AuthSettings
from armonik_core.control_plane.context import Backends
from armonik_core.control_plane.dispatch import TaskDispatcher
from armonik_core.control_plane.events import EventsService
from armonik_core.control_plane.guard import add_guarded
from armonik_core.control_plane.info import HealthChecksService, VersionsService
from armonik_core.control_plane.limits import InputLimits
from armonik_core.control_plane.partitions import PartitionsService
from armonik_core.control_plane.results import ResultsService
from armonik_core.control_plane.sessions import SessionsService
from armonik_core.control_plane.tasks import TasksService
from armonik_core.gateway.auth import GatewayKeys
from armonik_core.gateway.listener import start_gateway_server
from armonik_core.gateway.server import ComputeGateway
from armonik_core.gateway.settings import GatewaySettings
from armonik_core.tls import server_credentials

log = logging.getLogger("armonik.control_plane")

MAX_MESSAGE = 64 * 1024 * 1024
GRPC_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE),
    ("grpc.max_send_message_length", MAX_MESSAGE),
    ("grpc.so_reuseport", 0),
]


async def rebuilt_memory_queue(state: StateStore, lease_seconds: float) -> MemoryQueue:
    """The in-memory queue as the state says it was: queued tasks waiting, running tasks leased to their agent
    for a fresh lease period (an agent still alive renews it; one that died lets it expire)."""
    queue = MemoryQueue()
    ready, held = await state.tasks_in_flight()
    await queue.publish(ready)
    for message, agent in held:
        queue.hold(message, agent, lease_seconds)
    if ready or held:
        log.info("queue rebuilt from the state", extra={"queued": len(ready), "running": len(held)})
    return queue


async def open_backends(settings: ControlPlaneSettings) -> Backends:
    """The state store, queue and object storage the settings choose (`Components__*`); embedded by default:
    SQLite state, the in-memory queue and filesystem objects under the data directory."""
    root = settings.data_directory
    env = settings.environment
    # One durability level for every embedded store (Embedded__SqliteSynchronous): NORMAL, the default, loses
    # nothing when a process crashes and fsyncs only at checkpoints; FULL also survives a power loss, at the
    # price of an fsync per commit and per object (milliseconds each, on every task's path).
    durable = settings.sqlite_synchronous in ("FULL", "EXTRA")
    in_memory_queue = settings.queue_storage == "memory"
    state = factory.open_state_store(
        env, settings.table_storage, root, settings.sqlite_synchronous, outbox=not in_memory_queue
    )
    queue: TaskQueue
    try:
        if in_memory_queue:
            queue = await rebuilt_memory_queue(state, settings.lease_seconds)
        else:
            queue = factory.open_external_queue(env, settings.queue_storage, root, durable)
        objects = factory.open_object_storage(env, settings.object_storage, root, durable)
    except BaseException:
        await state.close()
        raise
    backends = Backends(
        state, objects, queue, TaskDispatcher(state, queue, outbox=not in_memory_queue), settings
    )
    await state.upsert_partitions(settings.partitions)
    await backends.dispatcher.recover()
    log.info(
        "backends open",
        extra={
            "tableStorage": settings.table_storage,
            "queueStorage": settings.queue_storage,
            "objectStorage": settings.object_storage,
        },
    )
    return backends


async def close_backends(backends: Backends) -> None:
    await backends.dispatcher.close()
    await backends.state.close()
    await backends.queue.close()
    await backends.objects.close()


@dataclass(slots=True)
class ControlPlane:
    server: grpc.aio.Server
    backends: Backends
    port: int
    events: EventsService
    gateway: ComputeGateway
    gateway_server: grpc.aio.Server
    #: Where agents reach the gateway: `unix:///path` or `host:port` (`https://` with TLS).
    gateway_endpoint: str
    authenticator: Authenticator | None = None

    async def stop(self, grace: float = 5.0) -> None:
        self.events.shutdown()
        self.gateway.shutdown()
        await asyncio.gather(self.server.stop(grace), self.gateway_server.stop(grace))
        await close_backends(self.backends)
        if self.authenticator is not None:
            await self.authenticator.close()


def add_services(
    server: grpc.aio.Server, backends: Backends, auth: AuthSettings | None = None
) -> EventsService:
    """Register every client service; returns the one with long-lived streams, which needs telling when the
    server stops. The compute gateway has a server of its own (`start_gateway_server`)."""
    events = EventsService(backends)
    # Client services behind the request guard (armonik_core.control_plane.guard): undecodable requests,
    # overlong ids and oversized pages are refused before a handler runs.
    limits = InputLimits.from_env(backends.settings.environment)
    for servicer in (
        SessionsService(backends),
        TasksService(backends),
        ResultsService(backends),
        events,
        PartitionsService(backends),
        ApplicationsService(backends),
        VersionsService(),
        HealthChecksService(backends),
        AuthenticationService(auth or AuthSettings()),
    ):
        add_guarded(server, servicer, limits)
    return events


async def start_control_plane(settings: ControlPlaneSettings) -> ControlPlane:
    gateway_settings = settings.gateway or GatewaySettings.from_env(
        settings.environment, settings.data_directory
    )
    keys = GatewayKeys(gateway_settings.load_secret())
    authenticator = await auth_setup.open_authenticator(settings)
    try:
        backends = await open_backends(settings)
    except BaseException:
        await authenticator.close()
        raise
    server = grpc.aio.server(options=GRPC_OPTIONS, interceptors=auth_setup.interceptors(authenticator))
    events = add_services(server, backends, authenticator.settings)
    gateway = ComputeGateway(backends, keys, settings.lease_seconds)
    address = f"{settings.host}:{settings.port}"
    tls = settings.tls
    port = (
        server.add_secure_port(address, server_credentials(tls))
        if tls is not None
        else server.add_insecure_port(address)
    )
    if port == 0:
        await close_backends(backends)
        await authenticator.close()
        raise OSError(f"cannot listen on {settings.host}:{settings.port}")
    try:
        gateway_server, gateway_endpoint = await start_gateway_server(
            gateway_settings, gateway, tls, GRPC_OPTIONS
        )
    except BaseException:
        await close_backends(backends)
        await authenticator.close()
        raise
    await server.start()
    log.info(
        "control plane listening",
        extra={
            "address": f"{settings.host}:{port}",
            "tls": "off" if tls is None else "mtls" if tls.mtls else "on",
        },
    )
    return ControlPlane(
        server, backends, port, events, gateway, gateway_server, gateway_endpoint, authenticator
    )
