"""The storage backends, the dispatcher and the settings every service of a control plane process works on."""

from __future__ import annotations

from dataclasses import dataclass

from armonik_core.adapters.objects.base import ObjectStorage
from armonik_core.adapters.queue.base import TaskQueue
from armonik_core.adapters.state.base import StateStore
from armonik_core.config import ControlPlaneSettings
from armonik_core.services.dispatch import TaskDispatcher


@dataclass(slots=True)
class Backends:
    state: StateStore
    objects: ObjectStorage
    queue: TaskQueue
    dispatcher: TaskDispatcher
    settings: ControlPlaneSettings
