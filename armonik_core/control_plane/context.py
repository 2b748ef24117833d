"""What every client service shares: the backends (`armonik_core.services.backends`, shared with the compute
gateway, and importable from here) and the List requests, answered one page at a time."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeAlias, TypeVar

import grpc
from google.protobuf.message import Message

from armonik_core.control_plane import filters
from armonik_core.domain.filters import ListQuery
from armonik_core.services.backends import Backends

__all__ = ["Backends", "ClientService", "Ctx", "list_query", "list_reply", "page_of"]

Ctx: TypeAlias = grpc.aio.ServicerContext

_Reply = TypeVar("_Reply", bound=Message)


class ClientService:
    """The base of every client servicer: the backends it serves from, as `_b`."""

    def __init__(self, backends: Backends) -> None:
        self._b = backends


def list_query(request: object, flt: object, sort: object) -> ListQuery:
    """A ListQuery from a List request's page fields and already converted filter and sort."""
    page = int(getattr(request, "page", 0))
    page_size = int(getattr(request, "page_size", 0)) or 100
    return ListQuery(filter=flt, sort=sort, page=page, page_size=page_size)  # type: ignore[arg-type]


def page_of(query: ListQuery, total: int) -> dict[str, int]:
    """The page fields of a List reply: the page answered (its size made explicit) and the listing's total."""
    return {"page": query.page, "page_size": query.page_size, "total": total}


async def list_reply(
    backends: Backends, request: Any, noun: str, reply: Callable[..., _Reply], convert: Callable[[Any], Any]
) -> _Reply:
    """A List RPC on `noun` ("tasks", "sessions", ...), which names the state store's `list_<noun>` and the
    reply's field of the page: the request's filter, sort and page read, the store asked, its records
    converted."""
    query = list_query(request, *filters.of_request(noun, request))
    total, records = await getattr(backends.state, f"list_{noun}")(query)
    return reply(**{noun: [convert(record) for record in records]}, **page_of(query, total))
