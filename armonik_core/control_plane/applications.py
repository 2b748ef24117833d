"""Applications service: the distinct applications named in tasks' options."""

from __future__ import annotations

from typing import TypeAlias

import grpc
from armonik.protogen.client.applications_service_pb2_grpc import ApplicationsServicer
from armonik.protogen.common import applications_common_pb2 as pb

from armonik_core.control_plane import filters
from armonik_core.control_plane.context import Backends, list_query, page_of
from armonik_core.control_plane.errors import unary

Ctx: TypeAlias = grpc.aio.ServicerContext


class ApplicationsService(ApplicationsServicer):
    def __init__(self, backends: Backends) -> None:
        self._b = backends

    @unary
    async def ListApplications(
        self, request: pb.ListApplicationsRequest, context: Ctx
    ) -> pb.ListApplicationsResponse:
        query = list_query(
            request,
            filters.application_filter(request.filters),
            filters.application_sort(request.sort.fields, request.sort.direction),
        )
        total, applications = await self._b.state.list_applications(query)
        return pb.ListApplicationsResponse(
            applications=[
                pb.ApplicationRaw(name=a.name, version=a.version, namespace=a.namespace, service=a.service)
                for a in applications
            ],
            **page_of(query, total),
        )
