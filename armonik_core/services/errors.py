"""The gRPC status of a domain error, the same for the client services and the compute gateway.

A domain error becomes its status with its message; anything else is INTERNAL with a short message (the
caller logs the traceback), so no unhandled exception reaches a caller as an opaque "Exception calling
application".
"""

from __future__ import annotations

import grpc

from armonik_core.domain.errors import (
    AlreadyExists,
    ArmoniKError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)

_CODES: dict[type[ArmoniKError], grpc.StatusCode] = {
    NotFound: grpc.StatusCode.NOT_FOUND,
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
}


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    for kind, code in _CODES.items():
        if isinstance(exc, kind):
            return code, str(exc)
    return grpc.StatusCode.INTERNAL, f"Internal error: {type(exc).__name__}: {exc}"
