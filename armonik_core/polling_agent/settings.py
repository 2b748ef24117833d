"""Settings of the polling agent, read from the `Section__Key` variables ArmoniK.Core's agent reads.

Durations accept plain seconds (`2`, `0.5`) or the .NET TimeSpan spelling the upstream deployment uses
(`00:00:15`, `1.02:03:04.5`), so an upstream ConfigMap works unchanged.

Variables (case-insensitive names; defaults in brackets):

- `Pollster__PartitionId` [default]: the partition whose tasks this agent takes.
- `Pollster__SharedCacheFolder` [/cache/shared]: per-task data folders are `<folder>/<communication token>`.
- `Pollster__AgentId` [`<hostname>-<pid>`]: the owner recorded on the tasks this agent runs.
- `Pollster__GraceDelay` [5 s]: on SIGTERM, how long the current task may go on before it is released.
- `Pollster__HeartbeatSeconds` [2]: period of the lease renewals (which also bring cancellations).
- `Pollster__PrefetchBelowSeconds` [0.5 s]: take tasks ahead of the current one, as many as fit in this
  much work at the pace of the last task.
- `ComputePlane__MessageBatchSize` [16]: how many tasks an agent takes at once and holds when tasks are short
  (upstream's default is 1).
- `Components__ObjectStorage` [filesystem]: `redis` or `s3` (with their `Redis__*`, `S3__*` settings).
- `Pollster__ReportDelay` [0.01 s]: how long an outcome may wait to be reported with the next ones, while the
  agent has more tasks queued (with none queued it is reported at once).
- `Pollster__AcquireWait` [2 s]: how long one acquisition waits for a task (a stop cancels that wait: an idle
  agent stops at once).
- `Pollster__StagingParallelism` [8]: input files copied into a data folder at the same time.
- `ComputePlane__WorkerChannel__Address` [/cache/armonik_worker.sock], `…__SocketType`
  [UnixDomainSocket | Tcp]: where the worker listens; a tcp address is `host:port` (an `http://` prefix, as
  upstream's deployment writes it, is accepted and dropped).
- `ComputePlane__AgentChannel__Address` [/cache/armonik_agent.sock], `…__SocketType`: where this agent
  serves the Agent API to its worker.
- `InitWorker__WorkerCheckRetries` [10], `InitWorker__WorkerCheckDelay` [0.5 s; upstream uses 2 s],
  `InitWorker__WorkerCheckTimeout` [5 s]: worker health checks (the n-th retry waits n × delay).
- `InitWorker__WorkerCheckValidity` [1 s]: the health check before a task starts as soon as the previous
  task's Process call is over; it counts for the next task if that task comes within this delay, else the
  agent checks again (0: always check again, right before the task, as upstream does).
- `ComputeGateway__Endpoint` [`ControlPlane__Endpoint`, else 127.0.0.1:5001]: the control plane's compute
  gateway (its own listener, not the clients' port): `unix:///path/compute-gateway.sock` or `host:port`; an
  `https://host:port` URL connects with TLS, trusting `ControlPlane__Tls__CaFile` and presenting, for mTLS,
  `ControlPlane__Tls__ClientCertificateFile` and `…__ClientKeyFile` (see armonik_core.tls).
- `Worker__Module` [unset]: `package.module:processor`, a worker-SDK processor the agent imports and runs
  itself instead of calling a separate worker (see `armonik_core.polling_agent.inprocess`); the worker
  channels are then unused.
- `ComputeGateway__Credential` or `ComputeGateway__CredentialFile` (a file holding it): the agent credential
  of this partition, which the deployment derives from its secret (see armonik_core.gateway.auth).
- `Embedded__DataDirectory` [generated/data]: object storage lives in `<dir>/objects`.
- `Submitter__PreferredMessageSize` [1 MiB]: `Configuration.data_chunk_max_size` given to the worker.
- `Serilog__MinimumLevel` [Information]: log level.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from armonik_core.config import ConfigurationError, Environment
from armonik_core.settings import components
from armonik_core.tls import ClientTlsSettings

_TIMESPAN = re.compile(r"(?:(\d+)\.)?(\d+):(\d+)(?::(\d+(?:\.\d+)?))?")


def parse_duration(key: str, raw: str) -> float:
    """Seconds from `raw`: a number of seconds or a TimeSpan `[d.]hh:mm[:ss[.fffffff]]`."""
    text = raw.strip()
    try:
        seconds = float(text)
    except ValueError:
        match = _TIMESPAN.fullmatch(text)
        if match is None:
            raise ConfigurationError(
                f"{key}={raw!r}: expected a number of seconds or a duration such as 00:00:05"
            ) from None
        days, hours, minutes, secs = match.groups()
        seconds = int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + float(secs or 0)
    if seconds < 0 or seconds != seconds:  # negative or NaN
        raise ConfigurationError(f"{key}={raw!r}: a duration cannot be negative")
    return seconds


class SocketType(str, Enum):
    UNIX = "unixdomainsocket"
    TCP = "tcp"


@dataclass(frozen=True, slots=True)
class ChannelSettings:
    """One end of the worker <-> agent link: a unix socket path or a tcp `host:port`."""

    address: str
    socket_type: SocketType = SocketType.UNIX

    @property
    def socket_path(self) -> Path | None:
        """The socket file, for a unix domain socket."""
        return Path(self.address).absolute() if self.socket_type is SocketType.UNIX else None

    @property
    def target(self) -> str:
        """The address in gRPC's naming syntax, for a channel as for a server port."""
        path = self.socket_path
        if path is not None:
            return f"unix://{path}"
        address = self.address
        for scheme in ("http://", "https://", "dns:///"):
            if address.lower().startswith(scheme):
                address = address[len(scheme) :]
        return address.rstrip("/")

    @staticmethod
    def from_env(env: Environment, prefix: str, default_address: str) -> ChannelSettings:
        address = env.get(f"{prefix}__Address", default_address).strip()
        raw_type = env.get(f"{prefix}__SocketType", "UnixDomainSocket").strip()
        try:
            socket_type = SocketType(raw_type.lower())
        except ValueError:
            raise ConfigurationError(
                f"{prefix}__SocketType={raw_type!r}: expected UnixDomainSocket or Tcp"
            ) from None
        if not address:
            raise ConfigurationError(f"{prefix}__Address must not be empty")
        channel = ChannelSettings(address, socket_type)
        if socket_type is SocketType.TCP and ":" not in channel.target:
            raise ConfigurationError(f"{prefix}__Address={address!r}: a tcp address is host:port")
        return channel


def default_agent_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(slots=True)
class AgentSettings:
    partition_id: str = "default"
    shared_cache_folder: Path = Path("/cache/shared")
    agent_id: str = field(default_factory=default_agent_id)
    hostname: str = field(default_factory=socket.gethostname)
    grace_delay: float = 5.0
    heartbeat_seconds: float = 2.0
    acquire_wait: float = 2.0
    #: Take tasks ahead of the current one, as many as fit in this many seconds of work at the pace of the
    #: last task (0 disables): short tasks then follow each other without a round trip in between; a task
    #: this long or longer holds no other that another agent could be running (`tasks_to_hold`).
    prefetch_below: float = 0.5
    #: Tasks an agent takes at once and holds when tasks are short (`ComputePlane__MessageBatchSize`;
    #: upstream's default is 1, ours 16: one round trip to the backend then serves several tasks; how much
    #: work that holds is bounded by `prefetch_below`).
    message_batch_size: int = 16
    #: How long an outcome may wait to share its report with the next ones while more tasks are queued.
    report_delay: float = 0.01
    staging_parallelism: int = 8
    worker_channel: ChannelSettings = ChannelSettings("/cache/armonik_worker.sock")
    agent_channel: ChannelSettings = ChannelSettings("/cache/armonik_agent.sock")
    worker_check_retries: int = 10
    worker_check_delay: float = 0.5
    worker_check_timeout: float = 5.0
    worker_check_validity: float = 1.0
    control_plane_endpoint: str = "127.0.0.1:5001"
    #: `package.module:processor` run in the agent's process (`Worker__Module`), or "" for a separate worker.
    worker_module: str = ""
    data_directory: Path = Path("generated/data")
    data_chunk_max_size: int = 1 << 20
    log_level: str = "INFO"
    #: fsync every stored output (Embedded__SqliteSynchronous=FULL): survives a power loss, costs an fsync
    #: per task; by default outputs survive any process crash, like the rest of the embedded storage.
    durable_objects: bool = False
    #: `filesystem`, `redis` or `s3` (Components__ObjectStorage): where the agent reads inputs and writes outputs.
    object_storage: str = "filesystem"
    #: The variables the agent was started with: the object storage reads its own section from them.
    environment: Environment = field(default_factory=lambda: Environment({}))
    #: TLS of the channel to the control plane (None: plain HTTP/2), from an https:// endpoint.
    control_plane_tls: ClientTlsSettings | None = None
    #: The agent credential of `partition_id`, sent with every call to the compute gateway.
    gateway_credential: str = field(default="", repr=False)  # never in a log line

    @property
    def objects_directory(self) -> Path:
        return self.data_directory / "objects"

    @staticmethod
    def from_env(environ: Mapping[str, str] | None = None) -> AgentSettings:
        env = Environment(environ)

        def duration(key: str, default: float) -> float:
            return parse_duration(key, env.get(key, str(default)))

        def positive(key: str, value: float) -> float:
            if value <= 0:
                raise ConfigurationError(f"{key} must be positive")
            return value

        partition = env.get("Pollster__PartitionId", "default").strip()
        if not partition:
            raise ConfigurationError("Pollster__PartitionId must not be empty")
        agent_id = env.get("Pollster__AgentId", "").strip() or default_agent_id()
        endpoint = (
            env.get("ComputeGateway__Endpoint", "").strip()
            or env.get("ControlPlane__Endpoint", "127.0.0.1:5001").strip()
        )
        return AgentSettings(
            partition_id=partition,
            shared_cache_folder=Path(env.get("Pollster__SharedCacheFolder", "/cache/shared")).absolute(),
            agent_id=agent_id,
            grace_delay=duration("Pollster__GraceDelay", 5.0),
            heartbeat_seconds=positive(
                "Pollster__HeartbeatSeconds", duration("Pollster__HeartbeatSeconds", 2.0)
            ),
            acquire_wait=duration("Pollster__AcquireWait", 2.0),
            prefetch_below=duration("Pollster__PrefetchBelowSeconds", 0.5),
            message_batch_size=int(
                positive("ComputePlane__MessageBatchSize", env.get_int("ComputePlane__MessageBatchSize", 16))
            ),
            report_delay=duration("Pollster__ReportDelay", 0.01),
            staging_parallelism=int(
                positive("Pollster__StagingParallelism", env.get_int("Pollster__StagingParallelism", 8))
            ),
            worker_channel=ChannelSettings.from_env(
                env, "ComputePlane__WorkerChannel", "/cache/armonik_worker.sock"
            ),
            agent_channel=ChannelSettings.from_env(
                env, "ComputePlane__AgentChannel", "/cache/armonik_agent.sock"
            ),
            worker_check_retries=int(
                positive("InitWorker__WorkerCheckRetries", env.get_int("InitWorker__WorkerCheckRetries", 10))
            ),
            worker_check_delay=duration("InitWorker__WorkerCheckDelay", 0.5),
            worker_check_timeout=positive(
                "InitWorker__WorkerCheckTimeout", duration("InitWorker__WorkerCheckTimeout", 5.0)
            ),
            worker_check_validity=duration("InitWorker__WorkerCheckValidity", 1.0),
            control_plane_endpoint=endpoint,
            worker_module=env.get("Worker__Module", "").strip(),
            data_directory=Path(env.get("Embedded__DataDirectory", "generated/data")),
            data_chunk_max_size=int(
                positive(
                    "Submitter__PreferredMessageSize", env.get_int("Submitter__PreferredMessageSize", 1 << 20)
                )
            ),
            log_level=env.log_level(),
            durable_objects=env.get("Embedded__SqliteSynchronous", "NORMAL").upper() in ("FULL", "EXTRA"),
            object_storage=components.object_storage(env),
            environment=env,
            control_plane_tls=ClientTlsSettings.from_env(env, endpoint),
            gateway_credential=_credential(env),
        )


def _credential(env: Environment) -> str:
    """`ComputeGateway__Credential`, or the content of `ComputeGateway__CredentialFile` ("" if neither)."""
    text = env.get("ComputeGateway__Credential", "").strip()
    path = env.get("ComputeGateway__CredentialFile", "").strip()
    if text and path:
        raise ConfigurationError("ComputeGateway__Credential and ComputeGateway__CredentialFile are both set")
    if not path:
        return text
    try:
        return Path(path).read_text().strip()
    except OSError as exc:
        raise ConfigurationError(
            f"ComputeGateway__CredentialFile={path!r}: cannot read the file ({exc.strerror or exc})"
        ) from None
