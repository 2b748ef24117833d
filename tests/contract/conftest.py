"""Backends the contract suites run against.

The suites talk to a backend through a small harness (`QueueBackend`, `StorageBackend`) rather than through a
concrete class, so that adding RabbitMQ, S3 or Redis is one factory here: build the harness (calling
`pytest.skip` when the server is not reachable) and add it to `QUEUE_BACKENDS` / `STORAGE_BACKENDS`.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from armonik_core.adapters.objects.base import ObjectStorage
from armonik_core.adapters.objects.filesystem import FilesystemObjectStorage
from armonik_core.adapters.queue.base import TaskQueue
from armonik_core.adapters.queue.embedded import EmbeddedQueue


class ManualClock:
    """A clock that moves only when told to. It starts at the wall-clock time so that it stays comparable
    with the real clock of a helper process sharing the backend."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class QueueBackend:
    """One queue backend under test.

    `new_client()` opens another client on the same queue: a second process, or the same one after a restart.
    `clock` is None when the backend's time can't be injected (a broker's own timers); tests then wait for
    real, so `lease_seconds` must be short. `subprocess_setup` is Python source defining `make_queue()` that
    builds a client in another process, or None when the backend cannot be driven from a helper process.
    """

    name: str
    new_client: Callable[[], TaskQueue]
    clock: ManualClock | None
    lease_seconds: float
    subprocess_setup: str | None = None
    clients: list[TaskQueue] = field(default_factory=list)

    @property
    def supports_clock(self) -> bool:
        return self.clock is not None

    def open(self) -> TaskQueue:
        client = self.new_client()
        self.clients.append(client)
        return client

    async def advance(self, seconds: float) -> None:
        """Let `seconds` pass: instantly with an injected clock, by sleeping otherwise."""
        if self.clock is not None:
            self.clock.advance(seconds)
        else:
            await asyncio.sleep(seconds)

    async def expire_leases(self) -> None:
        """Let every lease taken so far (for `lease_seconds`) run out."""
        await self.advance(self.lease_seconds * 1.5)


@dataclass
class StorageBackend:
    """One object storage backend under test; `new_client()` opens another client on the same store."""

    name: str
    new_client: Callable[[], ObjectStorage]
    clients: list[ObjectStorage] = field(default_factory=list)

    def open(self) -> ObjectStorage:
        client = self.new_client()
        self.clients.append(client)
        return client


def _embedded_queue(tmp_path: Path) -> QueueBackend:
    path = tmp_path / "queue.sqlite3"
    clock = ManualClock()
    setup = f"from armonik_core.adapters.queue.embedded import EmbeddedQueue\ndef make_queue():\n    return EmbeddedQueue({str(path)!r})\n"
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


QUEUE_BACKENDS: dict[str, Callable[[Path], QueueBackend]] = {"embedded": _embedded_queue}


def _filesystem_storage_without_fsync(tmp_path: Path) -> StorageBackend:
    """The setting of the embedded deployment by default: files moved and copied without fsync."""
    root = tmp_path / "objects"
    return StorageBackend(
        name="filesystem-nofsync", new_client=lambda: FilesystemObjectStorage(root, fsync=False)
    )


STORAGE_BACKENDS: dict[str, Callable[[Path], StorageBackend]] = {
    "filesystem": _filesystem_storage,
    "filesystem-nofsync": _filesystem_storage_without_fsync,
}


@pytest.fixture(params=sorted(QUEUE_BACKENDS))
async def queue_backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[QueueBackend]:
    backend = QUEUE_BACKENDS[request.param](tmp_path)
    yield backend
    for client in backend.clients:
        await client.close()


@pytest.fixture
def queue(queue_backend: QueueBackend) -> TaskQueue:
    return queue_backend.open()


@pytest.fixture(params=sorted(STORAGE_BACKENDS))
async def storage_backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StorageBackend]:
    backend = STORAGE_BACKENDS[request.param](tmp_path)
    yield backend
    for client in backend.clients:
        await client.close()


@pytest.fixture
def storage(storage_backend: StorageBackend) -> ObjectStorage:
    return storage_backend.open()


@pytest.fixture
def partition() -> str:
    """A partition of this test's own, so tests never see each other's messages on a shared broker."""
    return f"part-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def ns() -> str:
    """A key prefix of this test's own, so tests never see each other's objects in a shared bucket."""
    return f"t-{uuid.uuid4().hex[:12]}"
