"""Which backends a process uses, chosen by configuration alone (`Components__*`, as upstream).

- `Components__TableStorage`: `sqlite` (embedded, the default) or `mongodb`; upstream's class name
  `ArmoniK.Adapters.MongoDB.TableStorage` is understood too.
- `Components__QueueStorage`: `memory` (the default: an index over the SUBMITTED tasks, rebuilt at start-up),
  `embedded` (a SQLite file queue), `rabbitmq` or `activemq`. Without it, upstream's
  `Components__QueueAdaptorSettings__ClassName` decides (`...RabbitMQ...` or `...Amqp...`, ActiveMQ's).
- `Components__ObjectStorage`: `filesystem` (the default), `redis` or `s3` (MinIO); upstream's class names
  (`ArmoniK.Adapters.Redis.ObjectStorage`, `...S3...`, `...LocalStorage...`) and
  `Components__ObjectStorageAdaptorSettings__ClassName` are understood too.

Each backend reads its own section (`MongoDB__*`, `Amqp__*`, `Redis__*`, `S3__*`); its module is imported only
when it is chosen, so a process never loads a client library it does not use.
"""

from __future__ import annotations

from pathlib import Path

from armonik_core.adapters.objects.base import ObjectStorage
from armonik_core.adapters.queue.base import TaskQueue
from armonik_core.adapters.state.auth_base import AuthStore
from armonik_core.adapters.state.base import StateStore
from armonik_core.config import ConfigurationError, Environment

TABLE_STORAGES = ("sqlite", "mongodb")
QUEUE_STORAGES = ("memory", "embedded", "rabbitmq", "activemq")
OBJECT_STORAGES = ("filesystem", "redis", "s3")

#: Words of upstream's adapter class names, and the backend each names.
_TABLE_NAMES = {"mongodb": "mongodb", "sqlite": "sqlite", "embedded": "sqlite"}
_QUEUE_NAMES = {"rabbitmq": "rabbitmq", "amqp": "activemq", "activemq": "activemq"}
_OBJECT_NAMES = {"redis": "redis", "s3": "s3", "minio": "s3", "localstorage": "filesystem"}


def _named(value: str, key: str, choices: tuple[str, ...], words: dict[str, str]) -> str:
    text = value.strip().lower()
    if text in choices:
        return text
    for part in text.replace("-", ".").split("."):
        if part in words:
            return words[part]
    raise ConfigurationError(f"{key}={value!r}: expected one of {', '.join(choices)}")


def table_storage(env: Environment) -> str:
    return _named(
        env.get("Components__TableStorage", "sqlite"),
        "Components__TableStorage",
        TABLE_STORAGES,
        _TABLE_NAMES,
    )


def _chosen(
    env: Environment,
    key: str,
    upstream_key: str,
    default: str,
    choices: tuple[str, ...],
    words: dict[str, str],
) -> str:
    """Our variable when set, else upstream's adapter class name, else the default."""
    for variable in (key, upstream_key):
        value = env.get(variable, "")
        if value.strip():
            return _named(value, variable, choices, words)
    return default


def queue_storage(env: Environment) -> str:
    return _chosen(
        env,
        "Components__QueueStorage",
        "Components__QueueAdaptorSettings__ClassName",
        "memory",
        QUEUE_STORAGES,
        _QUEUE_NAMES,
    )


def object_storage(env: Environment) -> str:
    return _chosen(
        env,
        "Components__ObjectStorage",
        "Components__ObjectStorageAdaptorSettings__ClassName",
        "filesystem",
        OBJECT_STORAGES,
        _OBJECT_NAMES,
    )


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

    return FilesystemObjectStorage(data_directory / "objects", fsync=durable)
