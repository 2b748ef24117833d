"""The dispatcher lives in `armonik_core.services.dispatch`, shared with the compute gateway; its name stays
importable from here."""

from armonik_core.services.dispatch import TaskDispatcher

__all__ = ["TaskDispatcher"]
