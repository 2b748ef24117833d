"""Small builders of Kubernetes objects as plain dicts (what `kubectl apply` reads once dumped to YAML).

Every object the renderer makes goes through these, so that labels, the security context of ArmoniK's pods and
the way settings reach containers (`envFrom` a ConfigMap or a Secret) are written once.
"""

from __future__ import annotations

import base64
from typing import Any

Manifest = dict[str, Any]

#: Labels of every object of the deployment, as upstream's `app = armonik` plus the component (`service`).
APP = "armonik"
#: Upstream's images and pods run as this user (Infra's `security.user`).
ARMONIK_USER = 5000


def labels(service: str, **extra: str) -> dict[str, str]:
    return {"app": APP, "service": service, **extra}


def metadata(name: str, namespace: str | None, service: str, **extra: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    meta["labels"] = labels(service, **extra)
    return meta


def namespace(name: str) -> Manifest:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": {"app": APP}}}


def config_map(name: str, ns: str, service: str, data: dict[str, str]) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(name, ns, service),
        "data": dict(sorted(data.items())),
    }


def secret(
    name: str,
    ns: str,
    service: str,
    data: dict[str, str] | None = None,
    binary: dict[str, bytes] | None = None,
    kind: str = "Opaque",
) -> Manifest:
    """A Secret: `data` as stringData (readable in the rendered files), `binary` base64-encoded."""
    manifest: Manifest = {"apiVersion": "v1", "kind": "Secret", "metadata": metadata(name, ns, service)}
    manifest["type"] = kind
    if data:
        manifest["stringData"] = dict(sorted(data.items()))
    if binary:
        manifest["data"] = {k: base64.b64encode(v).decode() for k, v in sorted(binary.items())}
    return manifest


def service(
    name: str,
    ns: str,
    selector: dict[str, str],
    ports: list[tuple[str, int, int | str]],
    service_type: str = "ClusterIP",
    headless: bool = False,
) -> Manifest:
    """A Service; `ports` are (name, port, targetPort)."""
    spec: dict[str, Any] = {
        "type": service_type,
        "selector": selector,
        "ports": [
            {"name": n, "port": port, "targetPort": target, "protocol": "TCP"} for n, port, target in ports
        ],
    }
    if headless:
        spec["clusterIP"] = "None"
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(name, ns, selector.get("service", name)),
        "spec": spec,
    }


def container_ports(**ports: int) -> list[dict[str, Any]]:
    """A container's TCP ports by name: Services and probes target them by these names."""
    return [{"name": name, "containerPort": port, "protocol": "TCP"} for name, port in ports.items()]


def env_from(config_maps: list[str], secrets: list[str]) -> list[dict[str, Any]]:
    """Every key of the ConfigMaps, then of the Secrets, as environment variables (later wins)."""
    return [{"configMapRef": {"name": n}} for n in config_maps] + [
        {"secretRef": {"name": n}} for n in secrets
    ]


def env_list(env: dict[str, str]) -> list[dict[str, Any]]:
    return [{"name": k, "value": v} for k, v in env.items()]


def resources(limits: dict[str, Any], requests: dict[str, Any]) -> dict[str, Any]:
    """Terraform's `limits`/`requests` maps (cpu, memory, ...) as a container's resources."""
    out: dict[str, Any] = {}
    if limits:
        out["limits"] = {k: str(v) for k, v in limits.items()}
    if requests:
        out["requests"] = {k: str(v) for k, v in requests.items()}
    return out


def pod_security(user: int = ARMONIK_USER) -> dict[str, Any]:
    """The pod security context of ArmoniK's own pods: user 5000 (as upstream), whose group owns volumes.
    A negative user (upstream's `security.user = -1`) keeps the image's user."""
    if user < 0:
        return {"fsGroup": ARMONIK_USER}
    return {"runAsUser": user, "runAsGroup": user, "fsGroup": user, "runAsNonRoot": user != 0}


def container_security() -> dict[str, Any]:
    return {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def tolerations(node_selector: dict[str, Any]) -> list[dict[str, Any]]:
    """Upstream's pods tolerate the NoSchedule taints named like their node selector."""
    return [
        {"key": k, "operator": "Equal", "value": str(v), "effect": "NoSchedule"}
        for k, v in node_selector.items()
    ]


def deployment(
    name: str,
    ns: str,
    pod_labels: dict[str, str],
    pod_spec: dict[str, Any],
    replicas: int = 1,
    annotations: dict[str, Any] | None = None,
) -> Manifest:
    meta = metadata(
        name, ns, pod_labels["service"], **{k: v for k, v in pod_labels.items() if k != "service"}
    )
    template_meta: dict[str, Any] = {"labels": pod_labels}
    if annotations:
        template_meta["annotations"] = {k: str(v) for k, v in annotations.items()}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": pod_labels},
            "template": {"metadata": template_meta, "spec": pod_spec},
        },
    }


def stateful_set(
    name: str,
    ns: str,
    service_name: str,
    pod_labels: dict[str, str],
    pod_spec: dict[str, Any],
    claims: list[dict[str, Any]],
    replicas: int = 1,
) -> Manifest:
    spec: dict[str, Any] = {
        "serviceName": service_name,
        "replicas": replicas,
        "selector": {"matchLabels": pod_labels},
        "template": {"metadata": {"labels": pod_labels}, "spec": pod_spec},
    }
    if claims:
        spec["volumeClaimTemplates"] = claims
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": metadata(name, ns, pod_labels["service"]),
        "spec": spec,
    }


def claim(name: str, size: str, storage_class: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}
    if storage_class:
        spec["storageClassName"] = storage_class
    return {"metadata": {"name": name}, "spec": spec}


def persistent_volume_claim(name: str, ns: str, service: str, size: str) -> Manifest:
    body = claim(name, size)
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": metadata(name, ns, service),
        "spec": body["spec"],
    }


def _probe(action: dict[str, Any], period: int, failures: int, delay: int = 0) -> dict[str, Any]:
    """A probe doing `action` (exec, tcpSocket, httpGet); the initial delay only where one is asked for."""
    probe: dict[str, Any] = {**action, "periodSeconds": period, "failureThreshold": failures}
    if delay:
        probe["initialDelaySeconds"] = delay
    return probe


def exec_probe(command: list[str], period: int, failures: int, delay: int = 0) -> dict[str, Any]:
    return _probe({"exec": {"command": command}}, period, failures, delay)


def tcp_probe(port: int | str, period: int, failures: int, delay: int = 0) -> dict[str, Any]:
    return _probe({"tcpSocket": {"port": port}}, period, failures, delay)


def http_probe(path: str, port: int | str, period: int, failures: int) -> dict[str, Any]:
    return _probe({"httpGet": {"path": path, "port": port}}, period, failures)
