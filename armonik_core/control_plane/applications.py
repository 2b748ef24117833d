"""Applications service: the distinct applications named in tasks' options."""

from __future__ import annotations

from armonik.protogen.client.applications_service_pb2_grpc import ApplicationsServicer
from armonik.protogen.common import applications_common_pb2 as pb

from armonik_core.adapters.state.base import Application
from armonik_core.control_plane.context import ClientService, Ctx, list_reply
from armonik_core.control_plane.errors import unary


class ApplicationsService(ClientService, ApplicationsServicer):
    @unary
    async def ListApplications(
        self, request: pb.ListApplicationsRequest, context: Ctx
    ) -> pb.ListApplicationsResponse:
        return await list_reply(self._b, request, "applications", pb.ListApplicationsResponse, _to_proto)


def _to_proto(a: Application) -> pb.ApplicationRaw:
    return pb.ApplicationRaw(name=a.name, version=a.version, namespace=a.namespace, service=a.service)
