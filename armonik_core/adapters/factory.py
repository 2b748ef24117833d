"""Opening the backends a process uses, as `armonik_core.settings.components` names them from `Components__*`.

Each backend reads its own section (`MongoDB__*`, `Amqp__*`, `Redis__*`, `S3__*`); its module is imported only
when it is chosen, so a process never loads a client library it does not use. The choices themselves are read
by the settings (which import no adapter); their names are re-exported here for the callers that open what
they name.
"""

from __future__ import annotations

from pathlib import Path

from armonik_core.adapters.objects.base import ObjectStorage
from armonik_core.adapters.queue.base import TaskQueue
from armonik_core.adapters.state.auth_base import AuthStore
from armonik_core.adapters.state.base import StateStore
from armonik_core.settings.components import object_storage, queue_storage, table_storage
from armonik_core.settings.environment import ConfigurationError, Environment

__all__ = [
    "object_storage",
    "open_external_queue",
    "open_object_storage",
    "open_state_store",
    "queue_storage",
    "table_storage",
]


def open_state_store(
    env: Environment, kind: str, data_directory: Path, synchronous: str, outbox: bool
) -> StateStore:
    if kind == "mongodb":
        from armonik_core.adapters.state.mongodb import MongoStateStore

        return MongoStateStore.from_env(env, outbox=outbox)
    from armonik_core.adapters.state.sqlite import SqliteStateStore

    data_directory.mkdir(parents=True, exist_ok=True)
    return SqliteStateStore(data_directory / "state.db", synchronous=synchronous, outbox=outbox)


def open_auth_store(env: Environment, kind: str, data_directory: Path) -> AuthStore:
    """Users, roles and certificates, in the state's database (see adapters/state/auth_base.py)."""
    if kind == "mongodb":
        from armonik_core.adapters.state.mongodb import MongoSettings
        from armonik_core.adapters.state.mongodb_auth import MongoAuthStore

        settings = MongoSettings.from_env(env)
        client = settings.connect()
        return MongoAuthStore(client[settings.database(client)], owned_client=client)
    from armonik_core.adapters.state.sqlite_auth import SqliteAuthStore

    data_directory.mkdir(parents=True, exist_ok=True)
    return SqliteAuthStore(data_directory / "state.db")


def open_external_queue(env: Environment, kind: str, data_directory: Path, durable: bool) -> TaskQueue:
    """A queue that lives outside the control plane (anything but `memory`)."""
    if kind == "rabbitmq":
        from armonik_core.adapters.queue.rabbitmq import RabbitMQQueue

        return RabbitMQQueue.from_env(env)
    if kind == "activemq":
        from armonik_core.adapters.queue.activemq import ActiveMQQueue

        return ActiveMQQueue.from_env(env)
    if kind == "embedded":
        from armonik_core.adapters.queue.embedded import EmbeddedQueue

        data_directory.mkdir(parents=True, exist_ok=True)
        return EmbeddedQueue(data_directory / "queue.db", synchronous="FULL" if durable else "NORMAL")
    raise ConfigurationError(f"Components__QueueStorage={kind!r} is not a queue of its own")


def open_object_storage(env: Environment, kind: str, data_directory: Path, durable: bool) -> ObjectStorage:
    if kind == "redis":
        from armonik_core.adapters.objects.redis import RedisObjectStorage

        return RedisObjectStorage.from_env(env)
    if kind == "s3":
        from armonik_core.adapters.objects.s3 import S3ObjectStorage

        return S3ObjectStorage.from_env(env)
    from armonik_core.adapters.objects.filesystem import FilesystemObjectStorage

    # Upstream's LocalStorage adapter setting; a deployment points it at a memory file system (/dev/shm) to
    # keep objects off the disk, as Ray keeps its object store.
    path = env.get("LocalStorage__Path", "")
    return FilesystemObjectStorage(Path(path) if path else data_directory / "objects", fsync=durable)
