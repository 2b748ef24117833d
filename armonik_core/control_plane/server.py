"""Assembling the control plane: backends from settings, the client services on one grpc.aio server, the
agents' compute gateway on another (its own listener: see armonik_core.gateway.listener)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import grpc
from armonik.protogen.client import (
    applications_service_pb2_grpc,
    auth_service_pb2_grpc,
    events_service_pb2_grpc,
    health_checks_service_pb2_grpc,
    partitions_service_pb2_grpc,
    results_service_pb2_grpc,
    sessions_service_pb2_grpc,
    tasks_service_pb2_grpc,
    versions_service_pb2_grpc,
)

from armonik_core.adapters import factory
from armonik_core.adapters.queue.base import TaskQueue
from armonik_core.adapters.queue.memory import MemoryQueue
from armonik_core.adapters.state.base import StateStore
from armonik_core.config import ControlPlaneSettings
from armonik_core.control_plane.applications import ApplicationsService
from armonik_core.control_plane.context import Backends
from armonik_core.control_plane.dispatch import TaskDispatcher
from armonik_core.control_plane.events import EventsService
from armonik_core.control_plane.info import AuthenticationService, HealthChecksService, VersionsService
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

    async def stop(self, grace: float = 5.0) -> None:
        self.events.shutdown()
        self.gateway.shutdown()
        await asyncio.gather(self.server.stop(grace), self.gateway_server.stop(grace))
        await close_backends(self.backends)


def add_services(server: grpc.aio.Server, backends: Backends) -> EventsService:
    """Register every client service; returns the one with long-lived streams, which needs telling when the
    server stops."""
    events = EventsService(backends)
    sessions_service_pb2_grpc.add_SessionsServicer_to_server(SessionsService(backends), server)
    tasks_service_pb2_grpc.add_TasksServicer_to_server(TasksService(backends), server)
    results_service_pb2_grpc.add_ResultsServicer_to_server(ResultsService(backends), server)
    events_service_pb2_grpc.add_EventsServicer_to_server(events, server)
    partitions_service_pb2_grpc.add_PartitionsServicer_to_server(PartitionsService(backends), server)
    applications_service_pb2_grpc.add_ApplicationsServicer_to_server(ApplicationsService(backends), server)
    versions_service_pb2_grpc.add_VersionsServicer_to_server(VersionsService(), server)
    health_checks_service_pb2_grpc.add_HealthChecksServiceServicer_to_server(
        HealthChecksService(backends), server
    )
    auth_service_pb2_grpc.add_AuthenticationServicer_to_server(AuthenticationService(), server)
    return events


async def start_control_plane(settings: ControlPlaneSettings) -> ControlPlane:
    gateway_settings = settings.gateway or GatewaySettings.from_env(
        settings.environment, settings.data_directory
    )
    keys = GatewayKeys(gateway_settings.load_secret())
    backends = await open_backends(settings)
    server = grpc.aio.server(options=GRPC_OPTIONS)
    events = add_services(server, backends)
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
        raise OSError(f"cannot listen on {settings.host}:{settings.port}")
    try:
        gateway_server, gateway_endpoint = await start_gateway_server(
            gateway_settings, gateway, tls, GRPC_OPTIONS
        )
    except BaseException:
        await close_backends(backends)
        raise
    await server.start()
    log.info(
        "control plane listening",
        extra={
            "address": f"{settings.host}:{port}",
            "tls": "off" if tls is None else "mtls" if tls.mtls else "on",
        },
    )
    return ControlPlane(server, backends, port, events, gateway, gateway_server, gateway_endpoint)
