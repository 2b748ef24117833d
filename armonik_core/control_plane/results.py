"""Results service: result metadata, streamed data upload and download, deletion and import.

Data goes to object storage before the metadata says it is there: a crash in between leaves at worst an
unreferenced object, never a COMPLETED result without data.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from armonik.protogen.client.results_service_pb2_grpc import ResultsServicer
from armonik.protogen.common import objects_pb2
from armonik.protogen.common import results_common_pb2 as pb

from armonik_core.adapters.objects.base import ObjectNotFound
from armonik_core.adapters.state.base import ResultCompletion
from armonik_core.control_plane.context import Backends, ClientService, Ctx, list_reply
from armonik_core.control_plane.convert import result_to_proto
from armonik_core.control_plane.errors import streaming, unary
from armonik_core.control_plane.limits import InputLimits
from armonik_core.control_plane.quota import SessionDataQuota
from armonik_core.domain.errors import FailedPrecondition, InvalidArgument, NotFound, describe_missing
from armonik_core.domain.records import Result
from armonik_core.domain.statuses import ResultStatus
from armonik_core.ids import new_id, new_ids


def new_object_key() -> str:
    """Each upload gets its own object, so re-uploading never overwrites data a reader may be streaming."""
    return new_id().replace("-", "")


class ResultsService(ClientService, ResultsServicer):
    def __init__(self, backends: Backends) -> None:
        super().__init__(backends)
        limit = InputLimits.from_env(backends.settings.environment).max_session_data_bytes
        self._quota = SessionDataQuota(backends.state, limit)

    @unary
    async def GetServiceConfiguration(
        self, request: objects_pb2.Empty, context: Ctx
    ) -> pb.ResultsServiceConfigurationResponse:
        return pb.ResultsServiceConfigurationResponse(data_chunk_max_size=self._b.settings.chunk_size)

    @unary
    async def CreateResultsMetaData(
        self, request: pb.CreateResultsMetaDataRequest, context: Ctx
    ) -> pb.CreateResultsMetaDataResponse:
        now = time.time()
        ids = new_ids(len(request.results))
        results = [
            Result(
                result_id=result_id,
                session_id=request.session_id,
                name=item.name,
                status=ResultStatus.CREATED,
                created_at=now,
                manual_deletion=item.manual_deletion,
            )
            for result_id, item in zip(ids, request.results, strict=True)
        ]
        await self._b.state.create_results(request.session_id, results)
        return pb.CreateResultsMetaDataResponse(results=[result_to_proto(r) for r in results])

    @unary
    async def CreateResults(self, request: pb.CreateResultsRequest, context: Ctx) -> pb.CreateResultsResponse:
        # Check the session before writing any data, so a refused request leaves nothing behind.
        await self._b.state.get_session(request.session_id)
        now = time.time()
        results: list[Result] = []
        objects: dict[str, bytes] = {}
        for item in request.results:
            key = new_object_key()
            objects[key] = item.data
            results.append(
                Result(
                    result_id=new_id(),
                    session_id=request.session_id,
                    name=item.name,
                    status=ResultStatus.COMPLETED,
                    created_at=now,
                    completed_at=now,
                    owner_task_id=request.session_id,
                    size=len(item.data),
                    opaque_id=key.encode(),
                    manual_deletion=item.manual_deletion,
                )
            )
        size = sum(len(data) for data in objects.values())
        await self._quota.reserve(request.session_id, size)
        try:
            await self._b.objects.put_many(objects)
            await self._b.state.create_results(request.session_id, results)
        except BaseException:
            self._quota.release(request.session_id, size)
            raise
        return pb.CreateResultsResponse(results=[result_to_proto(r) for r in results])

    @unary
    async def UploadResultData(
        self, request_iterator: AsyncIterator[pb.UploadResultDataRequest], context: Ctx
    ) -> pb.UploadResultDataResponse:
        first = await anext(aiter(request_iterator), None)
        if first is None:
            raise FailedPrecondition("Missing result metadata: the upload stream was empty")
        if first.WhichOneof("type") != "id":
            raise InvalidArgument(
                "The first message of an upload must identify the result (session_id, result_id)"
            )
        session_id, result_id = first.id.session_id, first.id.result_id
        result = await self._b.state.get_result(result_id)
        if result.session_id != session_id:
            raise NotFound(f"Result {result_id} is not in session {session_id}")
        if result.status != ResultStatus.CREATED:
            raise FailedPrecondition(
                f"Result {result_id} is {result.status.name}: only a CREATED result can receive data"
            )

        reserved = 0

        async def chunks() -> AsyncIterator[bytes]:
            nonlocal reserved
            async for message in request_iterator:
                if message.WhichOneof("type") != "data_chunk":
                    raise InvalidArgument("After the result id, an upload may only carry data chunks")
                if self._quota.enabled:
                    await self._quota.reserve(session_id, len(message.data_chunk))
                    reserved += len(message.data_chunk)
                yield message.data_chunk

        key = new_object_key()
        try:
            size = await self._b.objects.put(key, chunks())
        except BaseException:
            self._quota.release(session_id, reserved)
            raise
        messages = await self._b.state.complete_results(
            session_id, [ResultCompletion(result_id, size, key.encode())]
        )
        await self._b.dispatcher.publish(messages)
        return pb.UploadResultDataResponse(result=result_to_proto(await self._b.state.get_result(result_id)))

    @streaming
    async def DownloadResultData(
        self, request: pb.DownloadResultDataRequest, context: Ctx
    ) -> AsyncIterator[pb.DownloadResultDataResponse]:
        result = await self._b.state.get_result(request.result_id)
        if result.session_id != request.session_id:
            raise NotFound(f"Result {request.result_id} is not in session {request.session_id}")
        if result.status != ResultStatus.COMPLETED:
            raise FailedPrecondition(
                f"Result {request.result_id} is {result.status.name}: it has no data to download"
            )
        try:
            async for chunk in self._b.objects.get(result.opaque_id.decode(), self._b.settings.chunk_size):
                yield pb.DownloadResultDataResponse(data_chunk=chunk)
        except ObjectNotFound:
            raise NotFound(f"The data of result {request.result_id} is missing from object storage") from None

    @unary
    async def GetResult(self, request: pb.GetResultRequest, context: Ctx) -> pb.GetResultResponse:
        return pb.GetResultResponse(result=result_to_proto(await self._b.state.get_result(request.result_id)))

    @unary
    async def ListResults(self, request: pb.ListResultsRequest, context: Ctx) -> pb.ListResultsResponse:
        return await list_reply(self._b, request, "results", pb.ListResultsResponse, result_to_proto)

    @unary
    async def GetOwnerTaskId(
        self, request: pb.GetOwnerTaskIdRequest, context: Ctx
    ) -> pb.GetOwnerTaskIdResponse:
        found = {r.result_id: r for r in await self._b.state.get_results(list(request.result_id))}
        missing = {
            rid
            for rid in request.result_id
            if rid not in found or found[rid].session_id != request.session_id
        }
        if missing:
            raise NotFound(describe_missing("Result", missing) + f" in session {request.session_id}")
        return pb.GetOwnerTaskIdResponse(
            session_id=request.session_id,
            result_task=[
                pb.GetOwnerTaskIdResponse.MapResultTask(result_id=rid, task_id=found[rid].owner_task_id)
                for rid in request.result_id
            ],
        )

    @unary
    async def DeleteResultsData(
        self, request: pb.DeleteResultsDataRequest, context: Ctx
    ) -> pb.DeleteResultsDataResponse:
        ids = list(dict.fromkeys(request.result_id))
        opaque = await self._b.state.delete_results_data(request.session_id, ids)
        await self._b.objects.delete([o.decode() for o in opaque])
        return pb.DeleteResultsDataResponse(session_id=request.session_id, result_id=ids)

    @unary
    async def ImportResultsData(
        self, request: pb.ImportResultsDataRequest, context: Ctx
    ) -> pb.ImportResultsDataResponse:
        completions = []
        for item in request.results:
            size = await self._b.objects.size(item.opaque_id.decode(errors="replace"))
            if size is None:
                raise NotFound(
                    f"No object {item.opaque_id!r} in object storage to import into {item.result_id}"
                )
            completions.append(ResultCompletion(item.result_id, size, item.opaque_id))
        messages = await self._b.state.complete_results(request.session_id, completions)
        await self._b.dispatcher.publish(messages)
        results = await self._b.state.get_results([c.result_id for c in completions])
        return pb.ImportResultsDataResponse(results=[result_to_proto(r) for r in results])
