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
    QuotaExceeded,
)
from armonik_core.ids import shorten_words

_CODES: dict[type[ArmoniKError], grpc.StatusCode] = {
    NotFound: grpc.StatusCode.NOT_FOUND,
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    QuotaExceeded: grpc.StatusCode.RESOURCE_EXHAUSTED,
}


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status and message for an error; ids the message quotes are cut to a readable length."""
    for kind, code in _CODES.items():
        if isinstance(exc, kind):
            return code, shorten_words(str(exc))
    return grpc.StatusCode.INTERNAL, shorten_words(f"Internal error: {type(exc).__name__}: {exc}")
