"""What the tests of the rendered Kubernetes objects share: a variant of the quick-deploy parameters with
RabbitMQ, Redis, MongoDB, TLS + mTLS and a TCP-socket partition (the `variant` fixture of conftest renders it),
and readers of the rendered objects: pod specs, containers, the data of a ConfigMap or Secret, and the
environment a container would get."""

from __future__ import annotations

import base64
import socket
import ssl
import threading
from pathlib import Path
from typing import Any

from armonik_deploy.kubernetes import Rendered
from armonik_deploy.parameters import Parameters, load_parameters
from tests.unit.quick_deploy import QUICK_DEPLOY, ROOT

SCHEMAS = ROOT / "infrastructure" / "schemas"

CUSTOM_SCHEMAS = {
    "ScaledObject": SCHEMAS / "scaledobject.keda.sh_v1alpha1.json",
    "PerconaServerMongoDB": SCHEMAS / "perconaservermongodb.psmdb.percona.com_v1.json",
}

WORKLOADS = ("Deployment", "StatefulSet", "Job", "DaemonSet")

#: Kinds that belong to no namespace (fluent-bit's cluster role reads the pods' metadata).
CLUSTER_KINDS = ("ClusterRole", "ClusterRoleBinding")

ARMONIK_WORKLOADS = ("control-plane", "metrics-exporter", "init")

VARIANT = """
logging_level = "Debug"
namespace = "armonik-test"
control_plane = { default_partition = "default", replicas = 2, tag = "custom" }
compute_plane = {
  default = {
    replicas = 0
    polling_agent = { limits = { cpu = "2000m", memory = "2048Mi" } }
    worker = [{ image = "armonik-samples-worker", command = ["x"] }]
    cache_config = { memory = true, size_limit = "1Gi" }
    node_selector = { service = "workers" }
    hpa = {
      polling_interval = 10
      min_replica_count = 1
      max_replica_count = 7
      triggers = [{ type = "prometheus", threshold = 5 }, { type = "cpu", value = "70" }]
    }
  }
  "htc-mock" = {
    socket_type = "tcp"
    worker = [{ image = "armonik-pymonik-worker", command = ["x"] }, { name = "sidecar", image = "busybox", tag = "1.36", command = ["x"] }]
    hpa = { triggers = [{ type = "prometheus" }] }
  }
}
rabbitmq = { max_priority = 10 }
redis = { max_memory = "2gb" }
mongodb = { cluster = { replicas = 1, database_name = "armonik" }, persistence = {} }
ingress = { tls = true, mtls = true, certificate_key_size = 2048, http_port = 8443, cors_allowed_host = "https://gui" }
admin_gui = {}
grafana = {}
seq = {}
fluent_bit = {}
environment_description = { name = "test", version = "1", description = "variant", color = "red" }
authentication = { require_authentication = true, require_authorization = true, trusted_common_names = ["ingress"] }
configurations = {
  core = { env = { Amqp__MaxPriority = "10" } }
  polling = { env = { ComputePlane__MessageBatchSize = 1 } }
  worker = { env = { target_zip_path = "/tmp" } }
}
"""


def quick_deploy_parameters() -> Parameters:
    return load_parameters(QUICK_DEPLOY / "parameters.tfvars")


# -- helpers ---------------------------------------------------------------------------------------------
def pod_spec(manifest: dict[str, Any]) -> dict[str, Any]:
    return manifest["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def containers(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    return pod_spec(manifest)["containers"]  # type: ignore[no-any-return]


def workloads(rendered: Rendered) -> list[dict[str, Any]]:
    return [m for m in rendered.manifests if m["kind"] in WORKLOADS]


def names(rendered: Rendered, kind: str) -> set[str]:
    return {m["metadata"]["name"] for m in rendered.of_kind(kind)}


def object_data(rendered: Rendered, kind: str, name: str) -> dict[str, str]:
    manifest = rendered.get(kind, name)
    data = dict(manifest.get("stringData", {}))
    if kind == "ConfigMap":
        data |= manifest.get("data", {})
    else:
        data |= {k: "<binary>" for k in manifest.get("data", {})}
    return data


def container_env(rendered: Rendered, container: dict[str, Any]) -> dict[str, str]:
    """The environment Kubernetes would give the container: envFrom in order, then env (fieldRefs as a pod
    name)."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env |= object_data(rendered, "ConfigMap", source["configMapRef"]["name"])
        else:
            env |= object_data(rendered, "Secret", source["secretRef"]["name"])
    for item in container.get("env", []):
        ref = item.get("valueFrom", {}).get("secretKeyRef")
        if ref is not None:
            env[item["name"]] = object_data(rendered, "Secret", ref["name"])[ref["key"]]
        else:
            env[item["name"]] = item.get("value", "pod-name-0")
    return env


def mounted_env(
    rendered: Rendered, workload: dict[str, Any], container: dict[str, Any], root: Path
) -> dict[str, str]:
    """The container's environment with its mounted Secrets written under `root` and paths pointing there,
    as the pod would see them (the settings parsers read the certificate files)."""
    env = container_env(rendered, container)
    volumes = {v["name"]: v for v in pod_spec(workload).get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        source = volumes.get(mount["name"], {}).get("secret")
        if not source:
            continue
        folder = root / mount["mountPath"].strip("/")
        folder.mkdir(parents=True, exist_ok=True)
        secret = rendered.get("Secret", source["secretName"])
        for key, value in secret.get("data", {}).items():
            (folder / key).write_bytes(base64.b64decode(value))
        env = {
            k: v.replace(mount["mountPath"], str(folder), 1) if v.startswith(mount["mountPath"] + "/") else v
            for k, v in env.items()
        }
    return env


# -- MongoDB's TLS -----------------------------------------------------------------------------------------
def secret_files(rendered: Rendered, name: str, folder: Path) -> dict[str, Path]:
    """The files of a rendered Secret, written under `folder` as a pod would see them."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for key, value in rendered.get("Secret", name)["data"].items():
        out[key] = folder / key
        out[key].write_bytes(base64.b64decode(value))
    return out


def tls_handshake(
    server: dict[str, Path], ca_file: Path, server_name: str, client: dict[str, Path] | None = None
) -> None:
    """A TLS handshake over loopback with OpenSSL (what pymongo and mongod use): the server presents
    `server`'s certificate; the client checks it against `ca_file` for `server_name` and, when `client` is
    given, presents that certificate, which the server then requires and checks against the same authority
    (as replica-set members do). Raises ssl.SSLError when either side refuses."""
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(server["tls.crt"], server["tls.key"])
    if client is not None:
        server_context.verify_mode = ssl.CERT_REQUIRED
        server_context.load_verify_locations(ca_file)
    client_context = ssl.create_default_context(cafile=str(ca_file))
    if client is not None:
        client_context.load_cert_chain(client["tls.crt"], client["tls.key"])
    failures: list[BaseException] = []
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(10)

        def serve() -> None:
            try:
                connection, _ = listener.accept()
                with server_context.wrap_socket(connection, server_side=True) as tls:
                    tls.sendall(tls.recv(1))
            except (OSError, ssl.SSLError) as exc:
                failures.append(exc)

        thread = threading.Thread(target=serve)
        thread.start()
        try:
            with socket.create_connection(listener.getsockname(), timeout=10) as raw:
                with client_context.wrap_socket(raw, server_hostname=server_name) as tls:
                    tls.sendall(b"x")
                    assert tls.recv(1) == b"x"
        finally:
            thread.join(10)
    if failures:
        raise failures[0]
