"""Which storage services the local deployment uses, from the blocks upstream's `parameters.tfvars` has.

On Kubernetes these blocks deploy the services; the local target starts no service of that kind, it uses one
that runs already, named by the block's connection keys. A block left out (or `null`) keeps the embedded
backend:

    mongodb  = { host = "127.0.0.1", port = 27017, database_name = "database" }   # or connection_string = "mongodb://..."
    rabbitmq = { host = "127.0.0.1", port = 5672, user = "guest", password = "guest" }
    activemq = { host = "127.0.0.1", port = 5673 }                                 # AMQP 1.0
    redis    = { host = "127.0.0.1", port = 6379 }
    minio    = { endpoint_url = "http://127.0.0.1:9000", login = "...", password = "...", default_bucket = "armonik" }

Every key has a default (the service's usual local port), so `rabbitmq = {}` means the broker on this machine.
The blocks' Kubernetes keys (image, node_selector, persistence, ...) are accepted and ignored here. The
Kubernetes and podman targets deploy the service of a block, unless the block names one that runs already by
its address (`names_running_service`: `host`, `endpoint_url` or `connection_string`), as the local target does. The result is
a set of `Section__Key` variables (`Components__*`, `MongoDB__*`, `Amqp__*`, `Redis__*`, `S3__*`) given to
every process, as upstream's storage modules export them into the `core` configuration; the deployment's
`configurations.core.env` still overrides them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from armonik_core.settings.environment import key_name
from armonik_deploy.parameters import Parameters, ParametersError

#: Local keys of each block: name -> (type, variable, default). A default of None sets nothing.
Keys = dict[str, tuple[type, str, Any]]

_TYPES: dict[str, type] = {"str": str, "int": int, "bool": bool}


def _keys(
    section: str, defaults: dict[str, Any] | None = None, renamed: dict[str, str] | None = None, **kinds: str
) -> Keys:
    """A block's keys by type (`str="user password"`, `int="port"`), each setting `{section}__{Key}`: the key
    in CamelCase, as the processes' settings read it, unless `renamed` says otherwise."""
    defaults, renamed = defaults or {}, renamed or {}
    return {
        name: (_TYPES[kind], f"{section}__{renamed.get(name) or key_name(name)}", defaults.get(name))
        for kind, names in kinds.items()
        for name in names.split()
    }


_MONGODB = _keys(
    "MongoDB",
    {"host": "127.0.0.1", "port": 27017, "database_name": "database"},
    {"ca_file": "CAFile"},
    str="connection_string host database_name user password replica_set ca_file auth_source",
    int="port",
    bool="tls allow_insecure_tls direct_connection",
)
_AMQP = {"str": "host user password scheme ca_file prefix", "int": "port max_priority"}
_RABBITMQ = _keys("Amqp", {"host": "127.0.0.1", "port": 5672}, {"ca_file": "CaPath"}, **_AMQP)
_ACTIVEMQ = _keys("Amqp", {"host": "127.0.0.1", "port": 5673}, {"ca_file": "CaPath"}, **_AMQP)
_REDIS = _keys("Redis", {}, {"ca_file": "CaPath"}, str="user password ca_file instance_name", bool="ssl")
_MINIO = _keys(
    "S3",
    {"endpoint_url": "http://127.0.0.1:9000"},
    {"ca_file": "CaPath", "default_bucket": "BucketName"},
    str="endpoint_url login password default_bucket region ca_file",
)


#: The keys by which a block names a service that runs already, rather than one to deploy.
ADDRESS_KEYS = {
    "mongodb": ("host", "connection_string"),
    "rabbitmq": ("host",),
    "activemq": ("host",),
    "redis": ("host", "endpoint_url"),
    "minio": ("endpoint_url",),
}


def names_running_service(name: str, block: Any) -> bool:
    """Whether storage block `name` gives the address of a service that runs already (the targets that
    deploy services then deploy none for it and connect to that address)."""
    return isinstance(block, dict) and any(key in block for key in ADDRESS_KEYS.get(name, ()))


def _text(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _block_env(file: Path, name: str, block: dict[str, Any], keys: Keys) -> dict[str, str]:
    env: dict[str, str] = {}
    for key, (kind, variable, default) in keys.items():
        value = block.get(key, default)
        if value is None:
            continue
        if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise ParametersError(file, f"{name}.{key}", f"expected a whole number, got {value!r}")
        if kind is bool and not isinstance(value, bool):
            raise ParametersError(file, f"{name}.{key}", f"expected true or false, got {value!r}")
        if kind is str and not isinstance(value, str):
            raise ParametersError(file, f"{name}.{key}", f"expected a string, got {value!r}")
        env[variable] = _text(value)
    return env


def _redis_env(file: Path, block: dict[str, Any]) -> dict[str, str]:
    env = _block_env(file, "redis", block, _REDIS)
    if "endpoint_url" in block:
        env["Redis__EndpointUrl"] = _text(block["endpoint_url"])
    else:
        host, port = block.get("host", "127.0.0.1"), block.get("port", 6379)
        if not isinstance(port, int) or isinstance(port, bool):
            raise ParametersError(file, "redis.port", f"expected a whole number, got {port!r}")
        env["Redis__EndpointUrl"] = f"{host}:{port}"
    return env


def _one_of(
    file: Path,
    params: Parameters,
    names: tuple[str, str],
    build: dict[str, Callable[[dict[str, Any]], dict[str, str]]],
) -> tuple[str | None, dict[str, str]]:
    chosen = [name for name in names if getattr(params, name) is not None]
    if len(chosen) > 1:
        raise ParametersError(
            file, chosen[1], f"{' and '.join(chosen)} are both set: the local target uses one"
        )
    if not chosen:
        return None, {}
    name = chosen[0]
    block = getattr(params, name)
    if not isinstance(block, dict):
        raise ParametersError(file, name, f"expected an object or null, got {block!r}")
    return name, build[name](block)


def storage_env(params: Parameters, file: Path) -> dict[str, str]:
    """The variables selecting and configuring the storage services the parameters name."""
    env: dict[str, str] = {}
    if params.mongodb is not None:
        if not isinstance(params.mongodb, dict):
            raise ParametersError(file, "mongodb", f"expected an object or null, got {params.mongodb!r}")
        env["Components__TableStorage"] = "mongodb"
        env.update(_block_env(file, "mongodb", params.mongodb, _MONGODB))
    queue, queue_env = _one_of(
        file,
        params,
        ("rabbitmq", "activemq"),
        {
            "rabbitmq": lambda block: _block_env(file, "rabbitmq", block, _RABBITMQ),
            "activemq": lambda block: _block_env(file, "activemq", block, _ACTIVEMQ),
        },
    )
    if queue is not None:
        env["Components__QueueStorage"] = queue
        env.update(queue_env)
    elif params.mongodb is not None:
        # The in-memory queue belongs with the embedded state; next to MongoDB, the embedded file queue.
        env["Components__QueueStorage"] = "embedded"
    objects, objects_env = _one_of(
        file,
        params,
        ("redis", "minio"),
        {
            "redis": lambda block: _redis_env(file, block),
            "minio": lambda block: _block_env(file, "minio", block, _MINIO),
        },
    )
    if objects is not None:
        env["Components__ObjectStorage"] = "redis" if objects == "redis" else "s3"
        env.update(objects_env)
    return env
