"""The small services describing the deployment: Versions and HealthChecks (Authentication: auth/service.py)."""

from __future__ import annotations

import asyncio
from importlib import metadata
from typing import TypeAlias

from armonik.protogen.client.health_checks_service_pb2_grpc import HealthChecksServiceServicer
from armonik.protogen.client.versions_service_pb2_grpc import VersionsServicer
from armonik.protogen.common import health_checks_common_pb2, versions_common_pb2

import armonik_core
from armonik_core.control_plane.context import ClientService, Ctx
from armonik_core.control_plane.errors import unary
from armonik_core.domain.filters import ListQuery

Health: TypeAlias = health_checks_common_pb2.CheckHealthResponse.ServiceHealth
HEALTH_TIMEOUT = 5.0


def api_version() -> str:
    try:
        return metadata.version("armonik")
    except metadata.PackageNotFoundError:
        return "unknown"


class VersionsService(VersionsServicer):
    @unary
    async def ListVersions(
        self, request: versions_common_pb2.ListVersionsRequest, context: Ctx
    ) -> versions_common_pb2.ListVersionsResponse:
        return versions_common_pb2.ListVersionsResponse(core=armonik_core.__version__, api=api_version())


class HealthChecksService(ClientService, HealthChecksServiceServicer):
    """Probes each backend with a real, cheap operation."""

    async def _probe(self, name: str, probe: object) -> Health:
        try:
            await asyncio.wait_for(probe, HEALTH_TIMEOUT)  # type: ignore[arg-type]
        except Exception as exc:  # a failing backend is reported, not raised
            return Health(
                name=name,
                message=f"{type(exc).__name__}: {exc}",
                healthy=health_checks_common_pb2.HEALTH_STATUS_ENUM_UNHEALTHY,
            )
        return Health(
            name=name,
            message=f"{name} is healthy",
            healthy=health_checks_common_pb2.HEALTH_STATUS_ENUM_HEALTHY,
        )

    @unary
    async def CheckHealth(
        self, request: health_checks_common_pb2.CheckHealthRequest, context: Ctx
    ) -> health_checks_common_pb2.CheckHealthResponse:
        default = self._b.settings.default_partition
        services = await asyncio.gather(
            self._probe("database", self._b.state.list_partitions(ListQuery(page_size=1))),
            self._probe("object", self._b.objects.size("__health__")),
            self._probe("queue", self._b.queue.depth(default)),
        )
        return health_checks_common_pb2.CheckHealthResponse(services=services)
