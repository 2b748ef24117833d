"""Sessions service: creation, listing and the session life cycle."""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from armonik.protogen.client.sessions_service_pb2_grpc import SessionsServicer
from armonik.protogen.common import sessions_common_pb2 as pb

from armonik_core.control_plane.context import ClientService, Ctx, list_reply
from armonik_core.control_plane.convert import options_from_proto, session_to_proto
from armonik_core.control_plane.errors import unary
from armonik_core.domain.errors import InvalidArgument, NotFound
from armonik_core.domain.records import Session
from armonik_core.domain.sessions import SessionAction
from armonik_core.domain.statuses import SessionStatus
from armonik_core.ids import new_id

R = TypeVar("R")


def _life_cycle(action: SessionAction, reply: Callable[..., R]) -> Callable[..., Awaitable[R]]:
    """The handler of the life-cycle RPC answered by `reply` (`CancelSession` by `CancelSessionResponse`...),
    named after it for the error handler's log lines."""

    async def handler(self: SessionsService, request: Any, context: Ctx) -> R:
        return reply(session=await self._act(request.session_id, action))

    handler.__name__ = handler.__qualname__ = reply.__name__.removesuffix("Response")
    return unary(handler)


class SessionsService(ClientService, SessionsServicer):
    @unary
    async def CreateSession(self, request: pb.CreateSessionRequest, context: Ctx) -> pb.CreateSessionReply:
        partitions = list(dict.fromkeys(request.partition_ids)) or [self._b.settings.default_partition]
        options = options_from_proto(request.default_task_option)
        if not options.partition_id:
            # Upstream falls back to the global default partition, which breaks a session created for
            # other partitions only; the session's own first partition is what the user meant.
            options.partition_id = partitions[0]
        if options.partition_id not in partitions:
            raise InvalidArgument(
                f"Default task option partition '{options.partition_id}' is not one of the session's "
                f"partitions ({', '.join(partitions)})"
            )
        session = Session(
            session_id=new_id(),
            status=SessionStatus.RUNNING,
            partition_ids=partitions,
            options=options,
            created_at=time.time(),
        )
        try:
            await self._b.state.create_session(session)
        except NotFound as exc:
            # The partitions are arguments of this request, not the entity it addresses: upstream (and
            # armonik-cli's exit codes) expect INVALID_ARGUMENT here.
            raise InvalidArgument(str(exc)) from exc
        return pb.CreateSessionReply(session_id=session.session_id)

    @unary
    async def GetSession(self, request: pb.GetSessionRequest, context: Ctx) -> pb.GetSessionResponse:
        session = await self._b.state.get_session(request.session_id)
        return pb.GetSessionResponse(session=session_to_proto(session))

    @unary
    async def ListSessions(self, request: pb.ListSessionsRequest, context: Ctx) -> pb.ListSessionsResponse:
        convert = functools.partial(session_to_proto, with_options=request.with_task_options)
        return await list_reply(self._b, request, "sessions", pb.ListSessionsResponse, convert)

    async def _act(self, session_id: str, action: SessionAction) -> pb.SessionRaw:
        outcome = await self._b.state.apply_session_action(session_id, action)
        await self._b.dispatcher.publish(outcome.to_enqueue)
        if outcome.objects_to_delete:
            await self._b.objects.delete([o.decode() for o in outcome.objects_to_delete])
        return session_to_proto(outcome.session)

    # The life-cycle RPCs: one action each, answered with the session as the action left it.
    CancelSession = _life_cycle(SessionAction.CANCEL, pb.CancelSessionResponse)
    PauseSession = _life_cycle(SessionAction.PAUSE, pb.PauseSessionResponse)
    ResumeSession = _life_cycle(SessionAction.RESUME, pb.ResumeSessionResponse)
    CloseSession = _life_cycle(SessionAction.CLOSE, pb.CloseSessionResponse)
    PurgeSession = _life_cycle(SessionAction.PURGE, pb.PurgeSessionResponse)
    DeleteSession = _life_cycle(SessionAction.DELETE, pb.DeleteSessionResponse)

    @unary
    async def StopSubmission(
        self, request: pb.StopSubmissionRequest, context: Ctx
    ) -> pb.StopSubmissionResponse:
        session = await self._b.state.stop_submission(request.session_id, request.client, request.worker)
        return pb.StopSubmissionResponse(session=session_to_proto(session))
