"""Which backends a process uses, chosen by configuration alone (`Components__*`, as upstream).

- `Components__TableStorage`: `sqlite` (embedded, the default) or `mongodb`; upstream's class name
  `ArmoniK.Adapters.MongoDB.TableStorage` is understood too.
- `Components__QueueStorage`: `memory` (the default: an index over the SUBMITTED tasks, rebuilt at start-up),
  `embedded` (a SQLite file queue), `rabbitmq` or `activemq`. Without it, upstream's
  `Components__QueueAdaptorSettings__ClassName` decides (`...RabbitMQ...` or `...Amqp...`, ActiveMQ's).
- `Components__ObjectStorage`: `filesystem` (the default), `redis` or `s3` (MinIO); upstream's class names
  (`ArmoniK.Adapters.Redis.ObjectStorage`, `...S3...`, `...LocalStorage...`) and
  `Components__ObjectStorageAdaptorSettings__ClassName` are understood too.

A settings module: it reads the choices as names and imports no adapter, so that the settings of every
process can check them (and reject an impossible combination) without loading a client library;
`armonik_core.adapters.factory` opens what they name.
"""

from __future__ import annotations

from armonik_core.settings.environment import ConfigurationError, Environment

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
