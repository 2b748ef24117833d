"""What every client service shares: the backends (`armonik_core.services.backends`, shared with the compute
gateway, and importable from here) and the page of a List request."""

from __future__ import annotations

from armonik_core.domain.filters import ListQuery
from armonik_core.services.backends import Backends

__all__ = ["Backends", "list_query", "page_of"]


def list_query(request: object, flt: object, sort: object) -> ListQuery:
    """A ListQuery from a List request's page fields and already converted filter and sort."""
    page = int(getattr(request, "page", 0))
    page_size = int(getattr(request, "page_size", 0)) or 100
    return ListQuery(filter=flt, sort=sort, page=page, page_size=page_size)  # type: ignore[arg-type]


def page_of(query: ListQuery, total: int) -> dict[str, int]:
    """The page fields of a List reply: the page answered (its size made explicit) and the listing's total."""
    return {"page": query.page, "page_size": query.page_size, "total": total}
