"""The plan of a local deployment: every process to run, with its command line and environment.

`build_plan` turns typed parameters into a `Plan` (pure: nothing is started); the supervisor runs a plan and,
on SIGHUP, applies a new one by starting and stopping only what changed. Settings reach processes as ArmoniK's
`Section__Key` environment variables, in upstream's order of precedence (later wins):

- control plane:     local.env, logging, configurations.{log,core,control}, control_plane.env, then the
                     deployment's own keys (listen address, data directory, partitions);
- polling agent:     local.env, logging, configurations.{log,core,compute,polling}, polling_agent.env,
                     then the pair's keys (channels, partition, agent id, the compute gateway's socket and
                     the partition's agent credential file, data directory);
- worker:            local.env, logging, configurations.{log,compute,worker}, worker.env, then the same
                     pair's keys;
- metrics exporter:  local.env, logging, configurations.{log,core,metrics}, extra_conf, metrics_exporter.env,
                     then its port and the data directory;
- ingress:           local.env, logging, configurations.log, then its keys (armonik_deploy.ingress): HTTP
                     port (HTTPS with `ingress.tls`, client certificates with `mtls`), control plane
                     endpoint (with its own client certificate under mTLS), static files, Admin GUI
                     build, logs folder, metrics exporter URL;
- init job:          local.env, logging, configurations.{log,core,jobs}, then the data directory and
                     partitions.

The init job (upstream's `init` Job) writes the partitions into the state database; it runs before the other
processes and again at every redeploy, which is how a new partition reaches a running control plane: the
control plane's partition variables are "live" (a change does not restart it).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from armonik_deploy.gateway_secret import credential_file, secret_file
from armonik_deploy.ingress import admin_gui_image, http_port, ingress_env, ingress_urls
from armonik_deploy.memory import memory_root
from armonik_deploy.parameters import (
    ComputePartition,
    Parameters,
    ParametersError,
    Versions,
    env_strings,
    fragment_env,
)
from armonik_deploy.storage import storage_env
from armonik_deploy.tls import TlsPlan, tls_plan

PLAN_VERSION = 1
PARTITIONS_PREFIX = "InitServices__Partitioning__Partitions__"
#: sun_path is 108 bytes on Linux and 104 on macOS, terminating NUL included.
MAX_SOCKET_PATH = 103


class PlanError(ValueError):
    """The parameters are valid but cannot be deployed here (message says why and what to change)."""


@dataclass(slots=True)
class ProcessSpec:
    name: str
    role: str  # control-plane | polling-agent | worker | metrics-exporter | ingress
    args: list[str]
    env: dict[str, str]
    cwd: str
    grace: float
    partition: str | None = None
    replica: int | None = None
    #: Environment keys whose change is applied without restarting the process.
    live_env: list[str] = field(default_factory=list)
    #: Folders to create before starting the process.
    folders: list[str] = field(default_factory=list)

    def fingerprint(self) -> str:
        """Changes only when the process must be restarted to apply the new spec."""
        env = {k: v for k, v in self.env.items() if k not in self.live_env}
        blob = json.dumps([self.args, env, self.cwd], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()


@dataclass(slots=True)
class JobSpec:
    """A one-shot process run (to success, with retries) before the services at every apply."""

    name: str
    args: list[str]
    env: dict[str, str]
    cwd: str
    timeout: float = 60.0
    attempts: int = 5


@dataclass(slots=True)
class Plan:
    plan_id: str
    generated: str
    parameters_file: str
    #: Where clients reach the control plane (`host:port`).
    endpoint: str
    data_directory: str
    partitions: list[dict[str, Any]]
    jobs: list[JobSpec]
    processes: list[ProcessSpec]
    restart_delay: float
    max_restart_delay: float
    health_timeout: float
    metrics_url: str | None = None
    #: The ingress's pages (armonik_deploy.ingress): outputs' admin_app_url, grafana_url, seq_web_url.
    ingress_urls: dict[str, str | None] = field(default_factory=dict)
    #: Upstream's GUI image whose build `deploy` takes for `/admin/` (armonik_deploy.admin_gui), if any.
    admin_gui_image: str | None = None
    warnings: list[str] = field(default_factory=list)
    version: int = PLAN_VERSION
    #: Size-based rotation of the processes' log files (armonik_deploy.logrotate).
    log_max_bytes: int = 50 * 1024 * 1024
    log_files_kept: int = 3
    #: TLS of the client endpoint (`ingress.tls`); None: plain HTTP/2.
    tls: TlsPlan | None = None
    #: The deployment's folder on a memory file system (armonik_deploy.memory), when some data is kept there.
    memory_root: str | None = None

    @property
    def control_plane_url(self) -> str:
        """The endpoint as a URL, as `armonik-output.json` gives it: https:// with TLS."""
        return f"{'https' if self.tls else 'http'}://{self.endpoint}"

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @staticmethod
    def from_json(text: str) -> Plan:
        data = json.loads(text)
        if data.get("version") != PLAN_VERSION:
            raise ValueError(f"plan version {data.get('version')!r}, expected {PLAN_VERSION}")
        data["jobs"] = [JobSpec(**j) for j in data["jobs"]]
        data["processes"] = [ProcessSpec(**p) for p in data["processes"]]
        data["tls"] = TlsPlan(**data["tls"]) if data.get("tls") else None
        return Plan(**data)

    def pairs(self) -> dict[str, int]:
        """Partition -> number of polling agent + worker pairs."""
        counts = {p["PartitionId"]: 0 for p in self.partitions}
        for spec in self.processes:
            if spec.role == "polling-agent" and spec.partition is not None:
                counts[spec.partition] = counts.get(spec.partition, 0) + 1
        return counts

    def process(self, name: str) -> ProcessSpec:
        for spec in self.processes:
            if spec.name == name:
                return spec
        raise KeyError(name)


def connect_host(host: str) -> str:
    """The address clients use for a listen address (a wildcard is reached through the loopback)."""
    return {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1", "[::]": "::1"}.get(host, host)


def partition_json(name: str, partition: ComputePartition) -> dict[str, Any]:
    """Upstream's `InitServices__Partitioning__Partitions__<i>` object for a partition."""
    data = partition.partition_data
    max_pods = data.max_pods if data and data.max_pods is not None else partition.replicas
    reserved = data.reserved_pods if data and data.reserved_pods is not None else min(1, max_pods)
    return {
        "PartitionId": name,
        "ParentPartitionIds": list(data.parent_partition_ids) if data else [],
        "PodReserved": reserved,
        "PodMax": max_pods,
        "PreemptionPercentage": data.preemption_percentage if data else 50,
        "Priority": data.priority if data else 1,
        "PodConfiguration": data.pod_configuration if data else None,
    }


def _expand(args: list[str], values: dict[str, str]) -> list[str]:
    out = []
    for arg in args:
        for key, value in values.items():
            arg = arg.replace("{" + key + "}", value)
        out.append(arg)
    return out


def _check_socket(path: Path, generated: Path) -> None:
    size = len(os.fsencode(str(path)))
    if size > MAX_SOCKET_PATH:
        raise PlanError(
            f"socket path too long for a unix socket ({size} bytes, at most {MAX_SOCKET_PATH}): {path}; "
            f"use a generated folder with a shorter path than {generated}"
        )


def _may_create(folder: Path) -> bool:
    """This user may write `folder`, or create it: its nearest existing ancestor is a writable folder (checked
    without creating anything, as a plan may only be shown)."""
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            return candidate.is_dir() and os.access(candidate, os.W_OK | os.X_OK)
    return False


def _usable_cache_folder(wanted: str, fallback: str, partition: str, warnings: list[str]) -> str:
    """`wanted` when this user may create and write it, else `fallback` and a warning: a folder such as
    `/cache/shared` (where PymoniK looks for resources) needs a user who may create `/cache`, and a deployment
    started by another user still runs, with PymoniK's resource lookups the one thing lost."""
    if wanted == fallback or _may_create(Path(wanted)):
        return wanted
    message = (
        f"compute_plane.{partition}: Pollster__SharedCacheFolder={wanted} cannot be created or written by this "
        f"user: the partition's data folders go to {fallback} instead (create {wanted} writable by this user "
        "for PymoniK's materialize and retrieve_object)"
    )
    if message not in warnings:  # once per partition, not per replica
        warnings.append(message)
    return fallback


def _check_workers(file: Path, name: str, partition: ComputePartition) -> None:
    """Every worker has a command (a process to start), or the partition's only worker is a `module` (run
    in the polling agent's process)."""
    for i, worker in enumerate(partition.worker):
        if worker.module is not None:
            if len(partition.worker) > 1:
                raise ParametersError(
                    file,
                    f"compute_plane.{name}.worker[{i}].module",
                    "an in-process worker is the partition's only worker",
                )
            if worker.command is not None:
                raise ParametersError(
                    file,
                    f"compute_plane.{name}.worker[{i}].command",
                    "set either module (run in the polling agent) or command (a worker process), not both",
                )
        elif worker.command is None:
            raise ParametersError(
                file,
                f"compute_plane.{name}.worker[{i}].command",
                "required by the local target: the worker process to start, "
                'e.g. ["{python}", "-m", "my_worker"], or a module run in the polling agent, '
                'e.g. module = "my_package.my_worker:processor"',
            )


def _object_storage_env(params: Parameters, file: Path, generated: Path, memory: Path) -> dict[str, str]:
    """`LocalStorage__Path` for `local.object_storage`: the embedded filesystem storage in memory or elsewhere."""
    chosen = params.local.object_storage
    if not chosen.memory and chosen.path is None:
        return {}
    where = "local.object_storage"
    if chosen.memory and chosen.path is not None:
        raise ParametersError(file, f"{where}.path", "set either memory = true or a path, not both")
    other = next((name for name in ("redis", "minio") if getattr(params, name) is not None), None)
    if other is not None:
        raise ParametersError(
            file, where, f"configures the embedded filesystem object storage, but {other} is the one chosen"
        )
    path = memory / "objects" if chosen.memory else generated / str(chosen.path)
    return {"LocalStorage__Path": str(path)}


def _in_process_env(partition: ComputePartition, worker_env: dict[str, str]) -> dict[str, str]:
    """An in-process worker's settings, for its polling agent: the module, and the environment the worker
    process would have had (configurations.worker, worker.env), since the user's code runs there."""
    [worker] = partition.worker
    assert worker.module is not None
    return {**worker_env, **env_strings(worker.env), "Worker__Module": worker.module}


def ingress_process(
    params: Parameters,
    file: Path,
    host: str,
    generated: Path,
    workdir: str,
    tls: TlsPlan | None,
    metrics_url: str | None,
    common: dict[str, str],
    log_env: dict[str, str],
    gui_image: str | None = None,
) -> ProcessSpec:
    endpoint = f"{connect_host(host)}:{params.control_plane.port}"
    env = ingress_env(
        params,
        file,
        host=host,
        control_plane_url=f"{'https' if tls else 'http'}://{endpoint}",
        generated=generated,
        metrics_url=metrics_url,
        gui_image=gui_image,
    )
    return ProcessSpec(
        name="ingress",
        role="ingress",
        args=[params.local.python or sys.executable, "-m", "armonik_core.ingress"],
        env={
            **common,
            **log_env,
            **env,
            **(tls.ingress_client_env() if tls else {}),
            **(tls.ingress_server_env() if tls else {}),
        },
        cwd=workdir,
        grace=params.local.stop_grace_period,
    )


def build_plan(
    params: Parameters,
    parameters_file: Path,
    generated: Path,
    *,
    cwd: Path | None = None,
    plan_id: str | None = None,
    versions: Versions | None = None,
) -> Plan:
    """Every process of the local deployment for `params`, with absolute paths under `generated`; `versions`
    gives the tag of upstream's GUI image (`admin_gui` without `dist`)."""
    file = parameters_file
    generated = generated.resolve()
    local = params.local
    cp = params.control_plane
    if cp.default_partition not in params.compute_plane:
        known = ", ".join(params.compute_plane) or "none"
        raise ParametersError(
            file,
            "control_plane.default_partition",
            f"'{cp.default_partition}' is not a partition of compute_plane (partitions: {known})",
        )
    for name, partition in params.compute_plane.items():
        _check_workers(file, name, partition)

    base = parameters_file.resolve().parent
    workdir = str(
        (base / local.working_directory).resolve()
        if local.working_directory
        else (cwd or Path.cwd()).resolve()
    )
    if local.working_directory and not Path(workdir).is_dir():
        raise ParametersError(file, "local.working_directory", f"not a folder: {workdir}")
    if local.python and not shutil.which(local.python):
        raise ParametersError(file, "local.python", f"no such program: {local.python}")
    data_dir = Path(local.data_directory)
    data = str(data_dir if data_dir.is_absolute() else generated / data_dir)
    cache = generated / "cache"
    shared = cache / "shared"
    memory = memory_root(generated)
    in_memory = params.local.object_storage.memory or any(
        p.cache_config is not None and p.cache_config.memory for p in params.compute_plane.values()
    )
    python = local.python or sys.executable
    host = local.host
    endpoint = f"{connect_host(host)}:{cp.port}"
    configs = params.configurations
    common = {**env_strings(local.env), "Serilog__MinimumLevel": params.logging_level}
    log_env = fragment_env(configs.log)
    # The storage services the parameters name reach every process as upstream's `core` configuration does.
    core_env = {
        **storage_env(params, file),
        **_object_storage_env(params, file, generated, memory),
        **fragment_env(configs.core),
    }
    placeholders = {"python": python, "generated": str(generated)}
    warnings: list[str] = []
    tls, tls_warnings = tls_plan(params, file, generated, connect_host(host))
    warnings += tls_warnings
    if cp.replicas != 1:
        warnings.append(f"control_plane.replicas = {cp.replicas}: the local target runs one control plane")

    # The agents' compute gateway: a unix socket of its own (0600) beside the data, never the clients' port;
    # the deployment secret and each partition's credential under generated/gateway/ (kept across redeploys,
    # written by `gateway_secret.prepare_gateway_files` when the plan is deployed).
    gateway_socket = Path(data) / "compute-gateway.sock"
    _check_socket(gateway_socket, generated)
    partitions = [partition_json(name, p) for name, p in params.compute_plane.items()]
    partition_env = {f"{PARTITIONS_PREFIX}{i}": json.dumps(p) for i, p in enumerate(partitions)}
    processes: list[ProcessSpec] = [
        ProcessSpec(
            name="control-plane",
            role="control-plane",
            args=_expand(cp.command, placeholders),
            env={
                **common,
                **log_env,
                **core_env,
                **fragment_env(configs.control),
                **env_strings(cp.env),
                "ControlPlane__Host": host,
                "ControlPlane__Port": str(cp.port),
                "Embedded__DataDirectory": data,
                "Submitter__DefaultPartition": cp.default_partition,
                **partition_env,
                **(tls.server_env() if tls else {}),
                **(tls.auth.control_plane_env() if tls and tls.auth else {}),
                "ComputeGateway__Socket": str(gateway_socket),
                "ComputeGateway__SecretFile": str(secret_file(generated)),
            },
            cwd=workdir,
            grace=local.stop_grace_period,
            live_env=sorted(partition_env),
            folders=[data],
        )
    ]

    compute_env = fragment_env(configs.compute)
    for name, partition in params.compute_plane.items():
        if partition.socket_type != "unixdomainsocket":
            warnings.append(
                f"compute_plane.{name}.socket_type = {partition.socket_type}: unix sockets are used locally"
            )
        if partition.replicas == 0:
            warnings.append(
                f"compute_plane.{name}.replicas = 0: no worker will run the tasks of partition {name}"
            )
        cache_config = partition.cache_config
        partition_shared = memory / "shared" if cache_config is not None and cache_config.memory else shared
        if cache_config is not None and cache_config.memory and cache_config.size_limit is not None:
            warnings.append(
                f"compute_plane.{name}.cache_config.size_limit: not enforced locally (the size of "
                f"{memory.parent} bounds the cache folder)"
            )
        for replica in range(partition.replicas):
            pair = f"{name}-{replica}"
            folder = cache / pair
            worker_socket, agent_socket = folder / "armonik_worker.sock", folder / "armonik_agent.sock"
            in_process = partition.worker[0].module is not None
            if not in_process:  # an in-process worker uses no socket
                _check_socket(worker_socket, generated)
            pair_env = {
                "ComputePlane__WorkerChannel__Address": str(worker_socket),
                "ComputePlane__WorkerChannel__SocketType": "unixdomainsocket",
                "ComputePlane__AgentChannel__Address": str(agent_socket),
                "ComputePlane__AgentChannel__SocketType": "unixdomainsocket",
                "Pollster__PartitionId": name,
                "Pollster__AgentId": pair,
                "Embedded__DataDirectory": data,
            }
            values = {**placeholders, "partition": name, "replica": str(replica)}
            agent = partition.polling_agent
            agent_env = {
                **common,
                **log_env,
                **core_env,
                **compute_env,
                # upstream's layout, `<SharedCacheFolder>/<communication token>`: a default that
                # configurations.polling and the partition's polling_agent.env may change
                "Pollster__SharedCacheFolder": str(partition_shared),
                **fragment_env(configs.polling),
                **env_strings(agent.env),
                **(_in_process_env(partition, fragment_env(configs.worker)) if in_process else {}),
                **pair_env,
                # The agent's alone: its worker gets no way into the gateway.
                "ComputeGateway__Endpoint": f"unix://{gateway_socket}",
                "ComputeGateway__CredentialFile": str(credential_file(generated, name)),
            }
            agent_env["Pollster__SharedCacheFolder"] = _usable_cache_folder(
                agent_env["Pollster__SharedCacheFolder"], str(shared), name, warnings
            )
            processes.append(
                ProcessSpec(
                    name=f"{pair}-polling-agent",
                    role="polling-agent",
                    args=_expand(agent.command, values),
                    env=agent_env,
                    cwd=workdir,
                    grace=partition.termination_grace_period_seconds,
                    partition=name,
                    replica=replica,
                    folders=[str(folder), agent_env["Pollster__SharedCacheFolder"]],
                )
            )
            for index, worker in enumerate([] if in_process else partition.worker):
                assert worker.command is not None
                suffix = worker.name if len(partition.worker) == 1 else f"{worker.name}-{index}"
                processes.append(
                    ProcessSpec(
                        name=f"{pair}-{suffix}",
                        role="worker",
                        args=_expand(worker.command, values),
                        env={
                            **common,
                            **log_env,
                            **compute_env,
                            **fragment_env(configs.worker),
                            **env_strings(worker.env),
                            **pair_env,
                            "Pollster__SharedCacheFolder": agent_env["Pollster__SharedCacheFolder"],
                        },
                        cwd=workdir,
                        grace=partition.termination_grace_period_seconds,
                        partition=name,
                        replica=replica,
                        folders=[str(folder), agent_env["Pollster__SharedCacheFolder"]],
                    )
                )

    metrics_url = None
    exporter = params.metrics_exporter
    if exporter is not None:
        metrics_url = f"http://{connect_host(host)}:{exporter.port}/metrics"
        processes.append(
            ProcessSpec(
                name="metrics-exporter",
                role="metrics-exporter",
                args=_expand(exporter.command, placeholders),
                env={
                    **common,
                    **log_env,
                    **core_env,
                    **fragment_env(configs.metrics),
                    **env_strings(exporter.extra_conf),
                    **env_strings(exporter.env),
                    "MetricsExporter__Port": str(exporter.port),
                    "Embedded__DataDirectory": data,
                },
                cwd=workdir,
                grace=local.stop_grace_period,
                folders=[data],
            )
        )

    urls = None
    gui_image = admin_gui_image(params, versions) if params.ingress is not None else None
    if params.ingress is not None:  # upstream: `ingress = null` deploys no ingress
        processes.append(
            ingress_process(
                params, file, host, generated, workdir, tls, metrics_url, common, log_env, gui_image
            )
        )
        port = http_port(params, file)
        scheme = "https" if tls else "http"
        urls = ingress_urls(f"{scheme}://{connect_host(host)}:{port}", metrics_url is not None)

    init = JobSpec(
        name="init",
        args=[sys.executable, "-m", "armonik_deploy.init_job"],
        env={
            **common,
            **log_env,
            **core_env,
            **fragment_env(configs.jobs),
            "Embedded__DataDirectory": data,
            **partition_env,
            **(tls.auth.init_env() if tls and tls.auth else {}),
        },
        cwd=workdir,
    )
    return Plan(
        plan_id=plan_id or uuid.uuid4().hex,
        generated=str(generated),
        parameters_file=str(parameters_file.resolve()),
        endpoint=endpoint,
        data_directory=data,
        partitions=partitions,
        jobs=[init],
        processes=processes,
        restart_delay=local.restart_delay,
        max_restart_delay=max(local.max_restart_delay, local.restart_delay),
        health_timeout=local.health_timeout,
        log_max_bytes=local.log_max_bytes,
        log_files_kept=local.log_files_kept,
        metrics_url=metrics_url,
        ingress_urls=asdict(urls) if urls else {},
        admin_gui_image=gui_image,
        warnings=warnings,
        tls=tls,
        memory_root=str(memory) if in_memory else None,
    )
