"""Backends the contract suites run against: queues and object storages collected from the modules of
`tests.contract.backends` (adding a backend is one module there; no suite changes), and the state stores
(`STATE_BACKENDS`: SQLite, MongoDB through mongomock, and a real MongoDB when MONGODB_URI is set).
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import mongomock
import pytest
from pymongo import MongoClient
from pymongo.uri_parser import parse_uri

import tests.contract.backends as backend_modules
from armonik_core.adapters.objects.base import ObjectStorage
from armonik_core.adapters.queue.base import TaskQueue
from armonik_core.adapters.state.base import StateStore
from armonik_core.adapters.state.mongodb import MongoStateStore
from armonik_core.adapters.state.sqlite import SqliteStateStore
from armonik_core.domain.records import Partition
from tests.contract.backends.service import require_service
from tests.contract.harness import QueueBackend, StorageBackend
from tests.contract.state_store_support import SID, session


def _collect() -> tuple[
    dict[str, Callable[[Path], QueueBackend]], dict[str, Callable[[Path], StorageBackend]]
]:
    queues: dict[str, Callable[[Path], QueueBackend]] = {}
    storages: dict[str, Callable[[Path], StorageBackend]] = {}
    for info in pkgutil.iter_modules(backend_modules.__path__):
        module = importlib.import_module(f"{backend_modules.__name__}.{info.name}")
        queues.update(getattr(module, "QUEUE_BACKENDS", {}))
        storages.update(getattr(module, "STORAGE_BACKENDS", {}))
    return queues, storages


QUEUE_BACKENDS, STORAGE_BACKENDS = _collect()
Backend = TypeVar("Backend", QueueBackend, StorageBackend)


async def _close_all(clients: Iterable[TaskQueue | ObjectStorage | StateStore]) -> None:
    """Close what a test opened on a backend, once the test is done with it."""
    for client in clients:
        await client.close()


def _backend_fixture(name: str, backends: dict[str, Callable[[Path], Backend]]) -> Any:
    """A fixture running its test once per backend of one kind, each in the test's own folder, and closing
    what the test opened on it afterwards: queues and object storages are set up alike."""

    @pytest.fixture(name=name, params=sorted(backends))
    async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
        made = backends[request.param](tmp_path)
        yield made
        await _close_all(made.clients)

    return backend


queue_backend = _backend_fixture("queue_backend", QUEUE_BACKENDS)
storage_backend = _backend_fixture("storage_backend", STORAGE_BACKENDS)


@pytest.fixture
def queue(queue_backend: QueueBackend) -> TaskQueue:
    return queue_backend.open()


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


# -- state stores ---------------------------------------------------------------------------------------------
@dataclass
class StateBackend:
    """One state store backend under test; `open()` opens a store on the same data (another process, or the
    same one after a restart), with the store's own options (`clock`, `outbox`)."""

    name: str
    new_store: Callable[..., StateStore]
    stores: list[StateStore] = field(default_factory=list)
    cleanup: Callable[[], None] = lambda: None

    def open(self, **options: Any) -> StateStore:
        store = self.new_store(**options)
        self.stores.append(store)
        return store


def _sqlite_state(tmp_path: Path) -> StateBackend:
    """Durable commits (FULL): units are committed on the store's writer thread."""
    return StateBackend(
        "sqlite", lambda **options: SqliteStateStore(tmp_path / "state.db", synchronous="FULL", **options)
    )


def _sqlite_inline_state(tmp_path: Path) -> StateBackend:
    """The deployments' default (NORMAL): units are committed on the event loop itself."""
    return StateBackend(
        "sqlite-inline",
        lambda **options: SqliteStateStore(tmp_path / "state.db", synchronous="NORMAL", **options),
    )


def _mongomock_state(tmp_path: Path) -> StateBackend:
    client: Any = mongomock.MongoClient()
    return StateBackend("mongomock", lambda **options: MongoStateStore(client, database="armonik", **options))


def _mongodb_state(tmp_path: Path) -> StateBackend:
    """A real server (MONGODB_URI), a database of this test's own, dropped afterwards."""
    uri = os.environ["MONGODB_URI"]
    host, port = parse_uri(uri)["nodelist"][0]
    require_service("MongoDB", host, port)
    client: MongoClient[Any] = MongoClient(uri, serverSelectionTimeoutMS=5000)
    name = f"armonik_test_{uuid.uuid4().hex[:12]}"

    def cleanup() -> None:
        client.drop_database(name)
        client.close()

    return StateBackend(
        "mongodb", lambda **options: MongoStateStore(client, database=name, **options), cleanup=cleanup
    )


STATE_BACKENDS: dict[str, Callable[[Path], StateBackend]] = {
    "sqlite": _sqlite_state,
    "sqlite-inline": _sqlite_inline_state,
    "mongomock": _mongomock_state,
    **({"mongodb": _mongodb_state} if os.environ.get("MONGODB_URI") else {}),
}


@pytest.fixture(params=sorted(STATE_BACKENDS))
async def state_backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StateBackend]:
    backend = STATE_BACKENDS[request.param](tmp_path)
    yield backend
    await _close_all(backend.stores)
    backend.cleanup()


@pytest.fixture
def state_store(state_backend: StateBackend) -> StateStore:
    return state_backend.open()


@pytest.fixture
async def store(state_backend: StateBackend) -> AsyncIterator[StateStore]:
    """A store holding the running session `SID` on the partitions `default` and `gpu`, the case most state
    store contracts start from (the compute-plane module sets up its own)."""
    state = state_backend.open()
    await state.upsert_partitions([Partition("default"), Partition("gpu", priority=2)])
    await state.create_session(session(SID))
    yield state
