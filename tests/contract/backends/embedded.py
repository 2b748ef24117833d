"""The embedded backends: SQLite file queue and filesystem object storage."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from armonik_core.adapters.objects.filesystem import FilesystemObjectStorage
from armonik_core.adapters.queue.embedded import EmbeddedQueue
from tests.contract.harness import ManualClock, QueueBackend, StorageBackend


def _embedded_queue(tmp_path: Path) -> QueueBackend:
    path = tmp_path / "queue.sqlite3"
    clock = ManualClock()
    setup = (
        "from armonik_core.adapters.queue.embedded import EmbeddedQueue\n"
        f"def make_queue():\n    return EmbeddedQueue({str(path)!r})\n"
    )
    return QueueBackend(
        name="embedded",
        new_client=lambda: EmbeddedQueue(path, clock=clock),
        clock=clock,
        lease_seconds=30.0,
        subprocess_setup=setup,
    )


def _filesystem_storage(tmp_path: Path) -> StorageBackend:
    root = tmp_path / "objects"
    return StorageBackend(name="filesystem", new_client=lambda: FilesystemObjectStorage(root))


def _filesystem_storage_without_fsync(tmp_path: Path) -> StorageBackend:
    """The setting of the embedded deployment by default: files moved and copied without fsync."""
    root = tmp_path / "objects"
    return StorageBackend(
        name="filesystem-nofsync", new_client=lambda: FilesystemObjectStorage(root, fsync=False)
    )


QUEUE_BACKENDS: dict[str, Callable[[Path], QueueBackend]] = {"embedded": _embedded_queue}
STORAGE_BACKENDS: dict[str, Callable[[Path], StorageBackend]] = {
    "filesystem": _filesystem_storage,
    "filesystem-nofsync": _filesystem_storage_without_fsync,
}
