"""Partitions service: the pools of workers tasks run in."""

from __future__ import annotations

from armonik.protogen.client.partitions_service_pb2_grpc import PartitionsServicer
from armonik.protogen.common import partitions_common_pb2 as pb

from armonik_core.control_plane.context import ClientService, Ctx, list_reply
from armonik_core.control_plane.convert import partition_to_proto
from armonik_core.control_plane.errors import unary


class PartitionsService(ClientService, PartitionsServicer):
    @unary
    async def GetPartition(self, request: pb.GetPartitionRequest, context: Ctx) -> pb.GetPartitionResponse:
        return pb.GetPartitionResponse(
            partition=partition_to_proto(await self._b.state.get_partition(request.id))
        )

    @unary
    async def ListPartitions(
        self, request: pb.ListPartitionsRequest, context: Ctx
    ) -> pb.ListPartitionsResponse:
        return await list_reply(self._b, request, "partitions", pb.ListPartitionsResponse, partition_to_proto)
