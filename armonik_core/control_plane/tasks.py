"""Tasks service: submission with dependency tracking, listing, counting and cancellation."""

from __future__ import annotations

import functools
import time
from typing import TypeAlias

import grpc
from armonik.protogen.client.tasks_service_pb2_grpc import TasksServicer
from armonik.protogen.common import objects_pb2
from armonik.protogen.common import tasks_common_pb2 as pb

from armonik_core.control_plane import filters
from armonik_core.control_plane.context import Backends, list_reply
from armonik_core.control_plane.convert import (
    optional_options,
    options_from_proto,
    task_from_creation,
    task_to_detailed,
    task_to_summary,
)
from armonik_core.control_plane.errors import unary
from armonik_core.domain.errors import InvalidArgument, NotFound, describe_missing
from armonik_core.domain.options import merge_options
from armonik_core.ids import new_ids

Ctx: TypeAlias = grpc.aio.ServicerContext


class TasksService(TasksServicer):
    def __init__(self, backends: Backends) -> None:
        self._b = backends

    @unary
    async def SubmitTasks(self, request: pb.SubmitTasksRequest, context: Ctx) -> pb.SubmitTasksResponse:
        if not request.task_creations:
            return pb.SubmitTasksResponse()
        session = await self._b.state.get_session(request.session_id)
        # Tasks without options of their own share one merged TaskOptions: records are never mutated
        # after construction, and merging once per request instead of once per task matters at 10k tasks/s.
        base = merge_options(optional_options(request, "task_options"), session.options)
        base.partition_id = base.partition_id or session.partition_ids[0]
        now = time.time()
        tasks = []
        ids = new_ids(len(request.task_creations))
        for task_id, creation in zip(ids, request.task_creations, strict=True):
            if not creation.payload_id:
                raise InvalidArgument("Every task needs a payload_id (create the payload as a result first)")
            options = base
            if creation.HasField("task_options"):
                options = merge_options(options_from_proto(creation.task_options), base)
            tasks.append(
                task_from_creation(creation, task_id, session.session_id, options, now, [session.session_id])
            )
        messages = await self._b.state.submit_tasks(session.session_id, tasks)
        await self._b.dispatcher.publish(messages)
        response = pb.SubmitTasksResponse()
        add = response.task_infos.add  # appending in place is a third faster than building a list of messages
        for task_id, creation in zip(ids, request.task_creations, strict=True):
            add(
                task_id=task_id,
                expected_output_ids=creation.expected_output_keys,
                data_dependencies=creation.data_dependencies,
                payload_id=creation.payload_id,
            )
        return response

    @unary
    async def GetTask(self, request: pb.GetTaskRequest, context: Ctx) -> pb.GetTaskResponse:
        return pb.GetTaskResponse(task=task_to_detailed(await self._b.state.get_task(request.task_id)))

    @unary
    async def ListTasks(self, request: pb.ListTasksRequest, context: Ctx) -> pb.ListTasksResponse:
        convert = functools.partial(task_to_summary, with_errors=request.with_errors)
        return await list_reply(self._b, request, "tasks", pb.ListTasksResponse, convert)

    @unary
    async def ListTasksDetailed(
        self, request: pb.ListTasksRequest, context: Ctx
    ) -> pb.ListTasksDetailedResponse:
        return await list_reply(self._b, request, "tasks", pb.ListTasksDetailedResponse, task_to_detailed)

    @unary
    async def CountTasksByStatus(
        self, request: pb.CountTasksByStatusRequest, context: Ctx
    ) -> pb.CountTasksByStatusResponse:
        counts = await self._b.state.count_tasks_by_status(filters.task_filter(request.filters))
        return pb.CountTasksByStatusResponse(
            status=[
                objects_pb2.StatusCount(status=int(status), count=count)  # type: ignore[arg-type]
                for status, count in sorted(counts.items())
            ]
        )

    @unary
    async def CancelTasks(self, request: pb.CancelTasksRequest, context: Ctx) -> pb.CancelTasksResponse:
        tasks = await self._b.state.cancel_tasks(list(dict.fromkeys(request.task_ids)))
        return pb.CancelTasksResponse(tasks=[task_to_summary(t) for t in tasks])

    @unary
    async def GetResultIds(self, request: pb.GetResultIdsRequest, context: Ctx) -> pb.GetResultIdsResponse:
        tasks = {t.task_id: t for t in await self._b.state.get_tasks(list(request.task_id))}
        missing = set(request.task_id) - set(tasks)
        if missing:
            raise NotFound(describe_missing("Task", missing))
        return pb.GetResultIdsResponse(
            task_results=[
                pb.GetResultIdsResponse.MapTaskResult(task_id=tid, result_ids=tasks[tid].expected_output_ids)
                for tid in dict.fromkeys(request.task_id)
            ]
        )
