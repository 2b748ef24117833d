"""Turning domain errors into the gRPC status a client expects, and never leaking a stack trace.

Every handler is wrapped: a domain error becomes its status with its message; anything else is logged
with its traceback and reported as INTERNAL with a short message, so no unhandled exception reaches a
client as an opaque "Exception calling application".
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc

from armonik_core.services.errors import status_for

__all__ = ["status_for", "streaming", "unary"]

log = logging.getLogger("armonik.control_plane")

R = TypeVar("R")


async def _abort(context: grpc.aio.ServicerContext, exc: BaseException, method: str) -> None:
    code, message = status_for(exc)
    if code is grpc.StatusCode.INTERNAL:
        log.exception("unhandled error in %s", method, exc_info=exc)
    else:
        log.info("%s refused: %s (%s)", method, message, code.name)
    await context.abort(code, message)


def unary(fn: Callable[..., Awaitable[R]]) -> Callable[..., Awaitable[R]]:
    """Wrap a unary (or client-streaming) handler."""

    @functools.wraps(fn)
    async def handler(self: Any, request: Any, context: grpc.aio.ServicerContext) -> R:
        try:
            return await fn(self, request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await _abort(context, exc, fn.__name__)
            raise AssertionError("unreachable: abort raises") from exc

    return handler


def streaming(fn: Callable[..., AsyncIterator[R]]) -> Callable[..., AsyncIterator[R]]:
    """Wrap a server-streaming handler."""

    @functools.wraps(fn)
    async def handler(self: Any, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[R]:
        try:
            async for item in fn(self, request, context):
                yield item
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await _abort(context, exc, fn.__name__)

    return handler
