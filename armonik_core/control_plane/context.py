"""What every service shares: the storage backends, the dispatcher and the settings."""

from __future__ import annotations

from dataclasses import dataclass

from armonik_core.adapters.objects.base import ObjectStorage
from armonik_core.adapters.queue.base import TaskQueue
from armonik_core.adapters.state.base import StateStore
from armonik_core.config import ControlPlaneSettings
from armonik_core.control_plane.dispatch import TaskDispatcher
from armonik_core.domain.filters import ListQuery


@dataclass(slots=True)
class Backends:
    state: StateStore
    objects: ObjectStorage
    queue: TaskQueue
    dispatcher: TaskDispatcher
    settings: ControlPlaneSettings


def list_query(request: object, flt: object, sort: object) -> ListQuery:
    """A ListQuery from a List request's page fields and already converted filter and sort."""
    page = int(getattr(request, "page", 0))
    page_size = int(getattr(request, "page_size", 0)) or 100
    return ListQuery(filter=flt, sort=sort, page=page, page_size=page_size)  # type: ignore[arg-type]
