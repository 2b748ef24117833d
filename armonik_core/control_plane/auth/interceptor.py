"""The grpc.aio interceptor that runs the authenticator before every client RPC and sets the user for the handler.

It wraps the handler of each client method (unary, server-streaming such as `Events.GetEvents`,
client-streaming such as `Results.UploadResultData`) in one that checks first: a refused call is aborted before
the handler runs or reads a request message. Methods that are not the client services' (the agents' gateway)
pass untouched. The handler reads the user with `current_user()` (GetCurrentUser does).
"""

from __future__ import annotations

import contextvars
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeAlias

import grpc

from armonik_core.control_plane.auth.authenticator import ANONYMOUS, Authenticator, AuthError
from armonik_core.control_plane.auth.identity import peer_identity
from armonik_core.control_plane.auth.permissions import METHOD_PERMISSIONS
from armonik_core.control_plane.auth.users import User

_CURRENT_USER: contextvars.ContextVar[User] = contextvars.ContextVar("armonik_user", default=ANONYMOUS)

Ctx: TypeAlias = grpc.aio.ServicerContext


def current_user() -> User:
    """The user the running client call was authenticated as (Anonymous when authentication is off)."""
    return _CURRENT_USER.get()


def call_metadata(context: Ctx) -> dict[str, str]:
    """Header name (lower case) -> first value; binary headers are not identity headers and are skipped."""
    found: dict[str, str] = {}
    for key, value in context.invocation_metadata() or ():
        if isinstance(value, str):
            found.setdefault(key.lower(), value)
    return found


class AuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    def __init__(self, authenticator: Authenticator) -> None:
        self._auth = authenticator

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method not in METHOD_PERMISSIONS:
            return handler
        return _guarded(handler, self._checker(method))

    def _checker(self, method: str) -> Callable[[Ctx], Awaitable[None]]:
        auth = self._auth

        async def check(context: Ctx) -> None:
            try:
                user = await auth.authenticate(
                    method, call_metadata(context), peer_identity(context.auth_context())
                )
            except AuthError as error:
                await context.abort(error.code, error.message)
            _CURRENT_USER.set(user)

        return check


def _guarded(
    handler: grpc.RpcMethodHandler, check: Callable[[Ctx], Awaitable[None]]
) -> grpc.RpcMethodHandler:
    codec = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(_call(handler.unary_unary, check), **codec)
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(_call(handler.stream_unary, check), **codec)
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(_stream(handler.unary_stream, check), **codec)
    return grpc.stream_stream_rpc_method_handler(_stream(handler.stream_stream, check), **codec)


def _call(inner: Callable[..., Any], check: Callable[[Ctx], Awaitable[None]]) -> Callable[..., Any]:
    async def behavior(request: Any, context: Ctx) -> Any:
        await check(context)
        return await inner(request, context)

    return behavior


def _stream(inner: Callable[..., Any], check: Callable[[Ctx], Awaitable[None]]) -> Callable[..., Any]:
    if not inspect.isasyncgenfunction(inner):  # a handler writing with context.write

        async def writer(request: Any, context: Ctx) -> Any:
            await check(context)
            return await inner(request, context)

        return writer

    async def generator(request: Any, context: Ctx) -> AsyncIterator[Any]:
        await check(context)
        async for item in inner(request, context):
            yield item

    return generator
