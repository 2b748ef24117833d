"""Domain errors. The control plane maps each one to a gRPC status; the message is meant for a person."""

from __future__ import annotations

from armonik_core.ids import quote_id


class ArmoniKError(Exception):
    """Base of every error a client may be shown."""


class NotFound(ArmoniKError):
    """An entity named in the request does not exist (gRPC NOT_FOUND)."""


class InvalidArgument(ArmoniKError):
    """The request itself is malformed (gRPC INVALID_ARGUMENT)."""


class FailedPrecondition(ArmoniKError):
    """The request is well-formed but the current state forbids it (gRPC FAILED_PRECONDITION)."""


class AlreadyExists(ArmoniKError):
    """The entity to create is already there (gRPC ALREADY_EXISTS)."""


class QuotaExceeded(ArmoniKError):
    """The request would take a session past a configured limit (gRPC RESOURCE_EXHAUSTED)."""


def describe_missing(kind: str, ids: list[str] | set[str], limit: int = 5) -> str:
    """A short, readable message naming the first missing ids."""
    ordered = sorted(ids)
    shown = ", ".join(quote_id(i) for i in ordered[:limit])
    more = f" and {len(ordered) - limit} more" if len(ordered) > limit else ""
    plural = "s" if len(ordered) > 1 else ""
    return f"{kind}{plural} not found: {shown}{more}"
