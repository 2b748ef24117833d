"""Settings read from ArmoniK-style `Section__Key` environment variables.

The same variables drive a local process and a Kubernetes pod (where ConfigMaps set them), as upstream
ArmoniK's .NET configuration does. Keys are matched case-insensitively; unknown values are reported with
the variable's name so a typo never silently falls back to a default.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from armonik_core.domain.records import Partition
from armonik_core.settings import components
from armonik_core.settings.environment import ConfigurationError as ConfigurationError
from armonik_core.settings.environment import Environment as Environment
from armonik_core.tls import ServerTlsSettings

if TYPE_CHECKING:  # imported where used: the gateway package's __init__ is not needed to read settings
    from armonik_core.gateway.settings import GatewaySettings

DEFAULT_PARTITIONS = ("default", "pymonik")


def parse_partition(raw: str, variable: str) -> Partition:
    """A partition in upstream's init JSON: `{"PartitionId": ..., "PodMax": ..., ...}`."""
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"{variable}: not valid JSON ({exc})") from None
    if not isinstance(data, dict) or not data.get("PartitionId"):
        raise ConfigurationError(f"{variable}: expected an object with a non-empty PartitionId")
    return Partition(
        partition_id=str(data["PartitionId"]),
        parent_partition_ids=list(data.get("ParentPartitionIds", [])),
        pod_reserved=int(data.get("PodReserved", 1)),
        pod_max=int(data.get("PodMax", 100)),
        preemption_percentage=int(data.get("PreemptionPercentage", 0)),
        priority=int(data.get("Priority", 1)),
        pod_configuration={str(k): str(v) for k, v in (data.get("PodConfiguration") or {}).items()},
    )


@dataclass(slots=True)
class ControlPlaneSettings:
    host: str = "127.0.0.1"
    port: int = 5001
    data_directory: Path = Path("generated/data")
    default_partition: str = "default"
    partitions: list[Partition] = field(default_factory=list)
    chunk_size: int = 1 << 20
    log_level: str = "INFO"
    #: FULL survives power loss; NORMAL survives a crash of the process (the usual need) and is faster.
    sqlite_synchronous: str = "NORMAL"
    #: How long an agent keeps a task without a heartbeat before the task is presumed lost with it.
    lease_seconds: float = 15.0
    #: `memory`: the queue is an index over the SUBMITTED tasks, rebuilt at start-up (no I/O per task);
    #: `embedded`: a SQLite file queue other processes may open too.
    queue_storage: str = "memory"
    #: `sqlite` or `mongodb` (Components__TableStorage), `filesystem`, `redis` or `s3` (Components__ObjectStorage).
    table_storage: str = "sqlite"
    object_storage: str = "filesystem"
    #: The variables the process was started with: each backend reads its own section from them.
    environment: Environment = field(default_factory=lambda: Environment({}))
    #: TLS (and mTLS) of the gRPC port, from `ControlPlane__Tls__*` (see armonik_core.tls); None: plain HTTP/2.
    tls: ServerTlsSettings | None = None
    #: The compute gateway's own listener and secret (`ComputeGateway__*`); None: the defaults under the data
    #: directory (see armonik_core.gateway.settings).
    gateway: GatewaySettings | None = None

    @staticmethod
    def from_env(environ: Mapping[str, str] | None = None) -> ControlPlaneSettings:
        env = Environment(environ)
        variables = env.indexed("InitServices__Partitioning__Partitions")
        partitions = [
            parse_partition(raw, f"InitServices__Partitioning__Partitions__{i}")
            for i, raw in enumerate(variables)
        ]
        if not partitions:
            partitions = [Partition(partition_id=name) for name in DEFAULT_PARTITIONS]
        chunk = env.get_int("Submitter__PreferredMessageSize", 1 << 20)
        if chunk <= 0:
            raise ConfigurationError("Submitter__PreferredMessageSize must be positive")
        synchronous = env.get("Embedded__SqliteSynchronous", "NORMAL").upper()
        if synchronous not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ConfigurationError("Embedded__SqliteSynchronous must be one of OFF, NORMAL, FULL, EXTRA")
        lease = env.get_float("ComputeGateway__LeaseSeconds", 15.0)
        if lease <= 0:
            raise ConfigurationError("ComputeGateway__LeaseSeconds must be positive")
        queue_storage = components.queue_storage(env)
        table_storage = components.table_storage(env)
        object_storage = components.object_storage(env)
        if queue_storage == "memory" and table_storage != "sqlite":
            # The in-memory queue is an index kept by the one process writing the state; with a shared
            # database it would be one copy among several.
            raise ConfigurationError(
                f"Components__QueueStorage=memory needs Components__TableStorage=sqlite (it is {table_storage}): "
                "choose rabbitmq, activemq or embedded"
            )
        from armonik_core.gateway.settings import GatewaySettings

        data_directory = Path(env.get("Embedded__DataDirectory", "generated/data"))
        return ControlPlaneSettings(
            host=env.get("ControlPlane__Host", "127.0.0.1"),
            port=env.get_int("ControlPlane__Port", 5001),
            data_directory=data_directory,
            default_partition=env.get("Submitter__DefaultPartition", "default"),
            partitions=partitions,
            chunk_size=chunk,
            log_level=env.log_level(),
            sqlite_synchronous=synchronous,
            lease_seconds=lease,
            queue_storage=queue_storage,
            table_storage=table_storage,
            object_storage=object_storage,
            environment=env,
            tls=_server_tls(env),
            gateway=GatewaySettings.from_env(env, data_directory),
        )


def _server_tls(env: Environment) -> ServerTlsSettings | None:
    return ServerTlsSettings.from_env(env)
