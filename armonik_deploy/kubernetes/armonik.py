"""ArmoniK's own workloads: init Job, control plane, one compute-plane Deployment per partition (with its
KEDA ScaledObject), metrics exporter; the shapes follow upstream's Infra `armonik/` module (see the package
docstring for the differences)."""

from __future__ import annotations

from typing import Any

from armonik_core.metrics.collector import metric_name
from armonik_deploy.kubernetes import gateway, objects
from armonik_deploy.kubernetes.context import Context
from armonik_deploy.kubernetes.settings import (
    CACHE_PATH,
    CERTIFICATES_PATH,
    CLIENT_TLS_SECRET,
    CONTROL,
    CONTROL_PLANE_PORT,
    CORE,
    DATA_CLAIM,
    DATA_PATH,
    INIT,
    LOG,
    METRICS,
    METRICS_PORT,
    MONGODB_CA_PATH,
    MONGODB_CA_SECRET,
    POLLING,
    SERVER_TLS_SECRET,
    WORKER,
    Settings,
)
from armonik_deploy.parameters import ComputePartition, Worker

Manifest = objects.Manifest
#: Upstream's TCP channel ports (`socket_type = "tcp"`): the worker's and the agent's.
WORKER_TCP_PORT, AGENT_TCP_PORT = 10667, 10666
PROMETHEUS_PORT = 9090
#: The polling agent's console script, on the PATH of every image of this project.
AGENT_COMMAND = "armonik-polling-agent"


def _data_volume(settings: Settings) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The embedded backends' claim as (volumes, mounts) for a core pod; nothing with external storage."""
    if not settings.embedded:
        return [], []
    return (
        [{"name": "data", "persistentVolumeClaim": {"claimName": DATA_CLAIM}}],
        [{"name": "data", "mountPath": DATA_PATH}],
    )


def _secret_volume(
    volume: str, secret_name: str, path: str, enabled: bool
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A Secret as read-only files (0440: the pod's group, which its user is in, reads them)."""
    if not enabled:
        return [], []
    return (
        [{"name": volume, "secret": {"secretName": secret_name, "defaultMode": 0o440}}],
        [{"name": volume, "mountPath": path, "readOnly": True}],
    )


def _tls_volume(secret_name: str, enabled: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The control plane's TLS Secret (its certificate, or the agents' trust) where the settings name it."""
    return _secret_volume("certificates", secret_name, CERTIFICATES_PATH, enabled)


def _mongodb_ca_volume(settings: Settings) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The authority MongoDB's certificate is checked against (MongoDB__CAFile), mounted by every core process
    (control plane, polling agent, init job, metrics exporter) when MongoDB is the state store."""
    return _secret_volume(MONGODB_CA_SECRET, MONGODB_CA_SECRET, MONGODB_CA_PATH, settings.mongodb_tls)


def _pod_spec(
    containers: list[dict[str, Any]], volumes: list[dict[str, Any]], **extra: Any
) -> dict[str, Any]:
    spec: dict[str, Any] = {"securityContext": objects.pod_security(), "containers": containers, **extra}
    if volumes:
        spec["volumes"] = volumes
    return spec


def _placement(
    node_selector: dict[str, Any], service_account: str = "", pull_secret: str = ""
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if node_selector:
        out["nodeSelector"] = {k: str(v) for k, v in node_selector.items()}
        out["tolerations"] = objects.tolerations(node_selector)
    if service_account:
        out["serviceAccountName"] = service_account
    if pull_secret:
        out["imagePullSecrets"] = [{"name": pull_secret}]
    return out


def init_job(ctx: Context, settings: Settings) -> Manifest:
    """Upstream's `init` Job: the control plane's image writes the partitions into the state, then exits."""
    cp = ctx.params.control_plane
    data_volumes, data_mounts = _data_volume(settings)
    ca_volumes, ca_mounts = _mongodb_ca_volume(settings)
    volumes, mounts = data_volumes + ca_volumes, data_mounts + ca_mounts
    container = {
        "name": "init",
        "image": ctx.image(cp.image, cp.tag, "control_plane"),
        "imagePullPolicy": cp.image_pull_policy,
        "command": ["python", "-m", "armonik_deploy.init_job"],
        "envFrom": objects.env_from([LOG, CORE, INIT], settings.credential_secrets),
        "securityContext": objects.container_security(),
    }
    if mounts:
        container["volumeMounts"] = mounts
    pod = _pod_spec([container], volumes, restartPolicy="OnFailure", **_placement(cp.node_selector))
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": objects.metadata("init", ctx.ns, "init"),
        "spec": {
            "backoffLimit": 5,
            "template": {"metadata": {"labels": objects.labels("init")}, "spec": pod},
        },
    }


def control_plane(ctx: Context, settings: Settings) -> list[Manifest]:
    cp = ctx.params.control_plane
    if settings.embedded and cp.replicas > 1:
        ctx.warnings.append(
            f"control_plane.replicas = {cp.replicas} with an embedded backend (SQLite state, in-memory queue or "
            "files): one control plane only holds them; set mongodb, a queue and an object storage to scale"
        )
    data_volumes, data_mounts = _data_volume(settings)
    tls_volumes, tls_mounts = _tls_volume(SERVER_TLS_SECRET, settings.tls)
    ca_volumes, ca_mounts = _mongodb_ca_volume(settings)
    container: dict[str, Any] = {
        "name": "control-plane",
        "image": ctx.image(cp.image, cp.tag, "control_plane"),
        "imagePullPolicy": cp.image_pull_policy,
        "ports": objects.container_ports(grpc=CONTROL_PLANE_PORT, gateway=gateway.GATEWAY_PORT),
        "envFrom": objects.env_from([LOG, CORE, CONTROL], settings.credential_secrets),
        "env": gateway.control_plane_env(),
        "startupProbe": objects.tcp_probe("grpc", period=3, failures=20),
        "livenessProbe": objects.tcp_probe("grpc", period=5, failures=3),
        "securityContext": objects.container_security(),
    }
    if res := objects.resources(cp.limits, cp.requests):
        container["resources"] = res
    if mounts := data_mounts + tls_mounts + ca_mounts:
        container["volumeMounts"] = mounts
    pod_labels = objects.labels("control-plane")
    pod = _pod_spec(
        [container],
        data_volumes + tls_volumes + ca_volumes,
        **_placement(cp.node_selector, cp.service_account_name, cp.image_pull_secrets),
    )
    return [
        objects.deployment(cp.name, ctx.ns, pod_labels, pod, cp.replicas, cp.annotations),
        objects.service(cp.name, ctx.ns, pod_labels, [("grpc", cp.port, "grpc")], cp.service_type),
    ]


def channels(partition: ComputePartition) -> dict[str, str]:
    """The agent's and worker's channels: unix sockets in the shared `/cache` volume, or upstream's TCP ports."""
    if partition.socket_type == "tcp":
        worker, agent, kind = (
            f"http://localhost:{WORKER_TCP_PORT}",
            f"http://localhost:{AGENT_TCP_PORT}",
            "Tcp",
        )
    else:
        worker, agent = f"{CACHE_PATH}/armonik_worker.sock", f"{CACHE_PATH}/armonik_agent.sock"
        # Lower case: .NET reads the value case-insensitively, but the Python worker SDK (PymoniK's worker)
        # compares it with "unixdomainsocket" as is, and took "UnixDomainSocket" for TCP.
        kind = "unixdomainsocket"
    return {
        "ComputePlane__WorkerChannel__Address": worker,
        "ComputePlane__WorkerChannel__SocketType": kind,
        "ComputePlane__AgentChannel__Address": agent,
        "ComputePlane__AgentChannel__SocketType": kind,
    }


def _channel_probes(partition: ComputePartition, own: str) -> dict[str, Any]:
    """Startup and liveness probes: the container's channel is listening (its socket file, or its TCP port)."""
    if partition.socket_type == "tcp":
        port = WORKER_TCP_PORT if own == "worker" else AGENT_TCP_PORT
        return {
            "startupProbe": objects.tcp_probe(port, period=3, failures=20),
            "livenessProbe": objects.tcp_probe(port, period=10, failures=3, delay=15),
        }
    command = ["test", "-S", f"{CACHE_PATH}/armonik_{own}.sock"]
    return {
        "startupProbe": objects.exec_probe(command, period=3, failures=20),
        "livenessProbe": objects.exec_probe(command, period=10, failures=3, delay=15),
    }


def _partition_env(name: str, partition: ComputePartition) -> list[dict[str, Any]]:
    return [
        {"name": "Pollster__PartitionId", "value": name},
        {"name": "Pollster__AgentId", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        *objects.env_list(channels(partition)),
    ]


def _worker_container(
    ctx: Context, name: str, partition: ComputePartition, index: int, worker: Worker, shared: dict[str, Any]
) -> dict[str, Any]:
    where = f"compute_plane.{name}.worker[{index}]"
    container: dict[str, Any] = {
        "name": worker.name if len(partition.worker) == 1 else f"{worker.name}-{index}",
        "image": ctx.image(worker.image, worker.tag, where),
        "imagePullPolicy": worker.image_pull_policy,
        "envFrom": objects.env_from([LOG, WORKER], []),
        "env": _partition_env(name, partition),
        "volumeMounts": [shared],
        "securityContext": objects.container_security(),
        # The worker leaves after its agent (which finishes the task at hand first): upstream's preStop.
        "lifecycle": {
            "preStop": {
                "exec": {
                    "command": [
                        "/bin/sh",
                        "-c",
                        f"while test -e {CACHE_PATH}/armonik_agent.sock; do sleep 1; done",
                    ]
                }
            }
        },
        **_channel_probes(partition, "worker"),
    }
    if res := objects.resources(worker.limits, worker.requests):
        container["resources"] = res
    return container


def _run_in_process(ctx: Context, name: str, worker: Worker, agent: dict[str, Any]) -> None:
    """An in-process worker (`module`): no worker container; the agent imports the processor, with the
    worker's settings, from the worker's image when one is given (it must hold the agent too), and has no
    socket to probe. That image's entrypoint starts the worker, not the agent: the agent's command is named."""
    assert worker.module is not None
    agent["envFrom"] = [*agent["envFrom"], *objects.env_from([WORKER], [])]
    agent["env"] = [
        *agent["env"],
        *objects.env_list({k: str(v) for k, v in worker.env.items()}),
        {"name": "Worker__Module", "value": worker.module},
    ]
    if worker.image:
        agent["image"] = ctx.image(worker.image, worker.tag, f"compute_plane.{name}.worker[0]")
        agent["command"] = [AGENT_COMMAND]
    agent.pop("startupProbe", None)
    agent.pop("livenessProbe", None)


def compute_plane(ctx: Context, settings: Settings, name: str, partition: ComputePartition) -> list[Manifest]:
    """Deployment `compute-plane-<p>`: a polling agent and its workers sharing the `/cache` emptyDir."""
    agent = partition.polling_agent
    data_volumes, data_mounts = _data_volume(settings)
    tls_volumes, tls_mounts = _tls_volume(CLIENT_TLS_SECRET, settings.tls)
    ca_volumes, ca_mounts = _mongodb_ca_volume(settings)
    shared = {"name": "cache-volume", "mountPath": CACHE_PATH}
    cache: dict[str, Any] = {}
    if partition.cache_config is not None:
        if partition.cache_config.memory:
            cache["medium"] = "Memory"
        if partition.cache_config.size_limit is not None:
            cache["sizeLimit"] = str(partition.cache_config.size_limit)
    agent_container: dict[str, Any] = {
        "name": "polling-agent",
        "image": ctx.image(agent.image, agent.tag, f"compute_plane.{name}.polling_agent"),
        "imagePullPolicy": agent.image_pull_policy,
        "envFrom": objects.env_from([LOG, CORE, POLLING], settings.credential_secrets),
        "env": [*_partition_env(name, partition), *gateway.agent_env(name)],
        "volumeMounts": [shared, *data_mounts, *tls_mounts, *ca_mounts],
        "securityContext": objects.container_security(),
        **_channel_probes(partition, "agent"),
    }
    if res := objects.resources(agent.limits, agent.requests):
        agent_container["resources"] = res
    if partition.worker[0].module is not None:
        _run_in_process(ctx, name, partition.worker[0], agent_container)
        workers = []
    else:
        workers = [
            _worker_container(ctx, name, partition, i, w, shared) for i, w in enumerate(partition.worker)
        ]
    user = partition.security.user if partition.security else objects.ARMONIK_USER
    pod = _pod_spec(
        [agent_container, *workers],
        [{"name": "cache-volume", "emptyDir": cache}, *data_volumes, *tls_volumes, *ca_volumes],
        terminationGracePeriodSeconds=partition.termination_grace_period_seconds,
        **_placement(partition.node_selector, partition.service_account_name),
    )
    pod["securityContext"] = objects.pod_security(user)
    pod_labels = objects.labels("compute-plane", partition=name)
    deployment = objects.deployment(
        f"compute-plane-{name}", ctx.ns, pod_labels, pod, partition.replicas, partition.annotations
    )
    scaled = scaled_object(ctx, name, partition)
    return [deployment, *([scaled] if scaled else [])]


def _trigger(ctx: Context, name: str, trigger: dict[str, Any]) -> dict[str, Any] | None:
    """Upstream's trigger mapping: prometheus on the partition's queued tasks, cpu/memory utilization; other
    types are dropped (as upstream's locals.tf does)."""
    kind = str(trigger.get("type", ""))
    if kind == "prometheus":
        metric = metric_name(name, "tasks_queued")
        return {
            "type": "prometheus",
            "metadata": {
                "serverAddress": f"http://{ctx.host('prometheus')}:{PROMETHEUS_PORT}",
                "metricName": metric,
                "threshold": str(trigger.get("threshold", 2)),
                "query": f'{metric}{{job="metrics-exporter"}}',
            },
        }
    if kind in ("cpu", "memory"):
        return {
            "type": kind,
            "metricType": str(trigger.get("metric_type", "Utilization")),
            "metadata": {"value": str(trigger.get("value", "80"))},
        }
    ctx.warnings.append(
        f"compute_plane.{name}.hpa.triggers: type {kind!r} is not rendered (prometheus, cpu, memory)"
    )
    return None


def scaled_object(ctx: Context, name: str, partition: ComputePartition) -> Manifest | None:
    """KEDA's ScaledObject `<p>-compute-plane` scaling `compute-plane-<p>`; none without triggers."""
    hpa = partition.hpa
    if hpa is None:
        return None
    triggers = [t for t in (_trigger(ctx, name, raw) for raw in hpa.triggers) if t is not None]
    if not triggers:
        return None
    behavior = hpa.behavior
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": objects.metadata(f"{name}-compute-plane", ctx.ns, "compute-plane", partition=name),
        "spec": {
            "scaleTargetRef": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": f"compute-plane-{name}",
                "envSourceContainerName": "polling-agent",
            },
            "pollingInterval": hpa.polling_interval,
            "cooldownPeriod": hpa.cooldown_period,
            "minReplicaCount": hpa.min_replica_count,
            "maxReplicaCount": hpa.max_replica_count,
            "advanced": {
                "restoreToOriginalReplicaCount": behavior.restore_to_original_replica_count,
                "horizontalPodAutoscalerConfig": {
                    "behavior": {
                        "scaleDown": {
                            "stabilizationWindowSeconds": behavior.stabilization_window_seconds,
                            "policies": [
                                {
                                    "type": behavior.type,
                                    "value": behavior.value,
                                    "periodSeconds": behavior.period_seconds,
                                }
                            ],
                        }
                    }
                },
            },
            "triggers": triggers,
        },
    }


def metrics_exporter(ctx: Context, settings: Settings) -> list[Manifest]:
    exporter = ctx.params.metrics_exporter
    if exporter is None:
        return []
    data_volumes, data_mounts = _data_volume(settings)
    ca_volumes, ca_mounts = _mongodb_ca_volume(settings)
    container: dict[str, Any] = {
        "name": "metrics-exporter",
        "image": ctx.image(exporter.image_name, exporter.image_tag, "metrics_exporter"),
        "imagePullPolicy": "IfNotPresent",
        "ports": objects.container_ports(metrics=METRICS_PORT),
        "envFrom": objects.env_from([LOG, CORE, METRICS], settings.credential_secrets),
        "startupProbe": objects.http_probe("/startup", "metrics", period=3, failures=20),
        "livenessProbe": objects.http_probe("/liveness", "metrics", period=10, failures=3),
        "securityContext": objects.container_security(),
    }
    if mounts := data_mounts + ca_mounts:
        container["volumeMounts"] = mounts
    pod_labels = objects.labels("metrics-exporter")
    pod = _pod_spec(
        [container],
        data_volumes + ca_volumes,
        **_placement(exporter.node_selector, pull_secret=exporter.image_pull_secrets),
    )
    return [
        objects.deployment("metrics-exporter", ctx.ns, pod_labels, pod),
        objects.service(
            "metrics-exporter",
            ctx.ns,
            pod_labels,
            [("metrics", exporter.port, "metrics")],
            exporter.service_type,
        ),
    ]
