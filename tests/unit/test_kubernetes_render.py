"""The Kubernetes target, rendered and checked without a cluster.

Two deployments are rendered: the shipped quick-deploy parameters (embedded backends) and a variant with
RabbitMQ, Redis, MongoDB, TLS + mTLS and a TCP-socket partition. Every manifest of a built-in kind is validated
against Kubernetes 1.32's OpenAPI schemas (kubernetes-validate, strict: unknown fields fail); the KEDA
ScaledObject and the PerconaServerMongoDB resource against the JSON schemas kept in infrastructure/schemas/.
Then what a schema cannot see: every ConfigMap, Secret, claim and Service target a pod refers to exists, every
image has a tag, each ScaledObject scales its partition's Deployment on its queued-tasks metric served by the
Prometheus that is rendered, the agent and the worker agree on their channels, ArmoniK's pods run as user
5000, and the environment a container would get is accepted by the process's own settings parser.
"""

from __future__ import annotations

import base64
import json
import socket
import ssl
import threading
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from typer.testing import CliRunner

from armonik_core.adapters.state.mongodb import MongoSettings
from armonik_core.config import ControlPlaneSettings, Environment
from armonik_core.gateway.auth import agent_credential
from armonik_core.metrics.settings import MetricsExporterSettings
from armonik_core.polling_agent.settings import AgentSettings
from armonik_deploy.cli import app
from armonik_deploy.kubernetes import Credentials, Rendered, RenderError, render, render_folder, to_yaml
from armonik_deploy.kubernetes.render import images
from armonik_deploy.kubernetes.settings import MONGODB_CA_SECRET, MONGODB_TLS_SECRET
from armonik_deploy.parameters import Parameters, load_parameters, load_versions
from tests.support import render_file
from tests.unit.quick_deploy import PYMONIK_PROCESSOR, in_process_parameters

ROOT = Path(__file__).resolve().parents[2]
QUICK_DEPLOY = ROOT / "infrastructure" / "quick-deploy" / "localhost"
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


@pytest.fixture(scope="module")
def versions() -> Any:
    return load_versions(QUICK_DEPLOY / "versions.tfvars.json")


@pytest.fixture(scope="module")
def default(versions: Any, tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    file = QUICK_DEPLOY / "parameters.tfvars"
    return render(load_parameters(file), versions, file, certificates=tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def variant(versions: Any, tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    folder = tmp_path_factory.mktemp("variant")
    file = folder / "parameters.tfvars"
    file.write_text(VARIANT)
    return render(load_parameters(file), versions, file, certificates=folder / "certs")


@pytest.fixture(scope="module", params=["default", "variant"])
def rendered(request: pytest.FixtureRequest) -> Rendered:
    return request.getfixturevalue(request.param)  # type: ignore[no-any-return]


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


# -- schemas ---------------------------------------------------------------------------------------------
def test_every_builtin_manifest_is_valid_for_kubernetes_1_32(rendered: Rendered) -> None:
    checked = 0
    for manifest in rendered.manifests:
        if manifest["kind"] in CUSTOM_SCHEMAS:
            continue
        kubernetes_validate.validate(manifest, "1.32", strict=True)
        checked += 1
    assert checked >= 15


def test_custom_resources_match_their_crd_schemas(variant: Rendered, default: Rendered) -> None:
    checked = set()
    for rendered in (default, variant):
        for manifest in rendered.manifests:
            if manifest["kind"] in CUSTOM_SCHEMAS:
                schema = json.loads(CUSTOM_SCHEMAS[manifest["kind"]].read_text())
                jsonschema.Draft202012Validator(schema).validate(manifest)
                checked.add(manifest["kind"])
    assert checked == set(CUSTOM_SCHEMAS)


def test_crd_schemas_reject_a_misspelt_field(default: Rendered) -> None:
    scaled = json.loads(json.dumps(default.of_kind("ScaledObject")[0]))
    scaled["spec"]["maxReplicas"] = 3
    schema = json.loads(CUSTOM_SCHEMAS["ScaledObject"].read_text())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(scaled, schema)


def test_the_validator_rejects_a_misspelt_field(default: Rendered) -> None:
    broken = json.loads(json.dumps(default.get("Deployment", "control-plane")))
    broken["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, "1.32", strict=True)


def test_yaml_round_trips(rendered: Rendered) -> None:
    for manifest in rendered.manifests:
        text = to_yaml(manifest)
        assert "&id" not in text and "*id" not in text
        assert yaml.safe_load(text) == manifest


# -- references ------------------------------------------------------------------------------------------
def test_every_referenced_configmap_secret_and_claim_exists(rendered: Rendered) -> None:
    config_maps, secrets = names(rendered, "ConfigMap"), names(rendered, "Secret")
    claims = names(rendered, "PersistentVolumeClaim")
    seen = 0
    for workload in workloads(rendered):
        pod = pod_spec(workload)
        for container in pod["containers"]:
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in config_maps
                else:
                    assert source["secretRef"]["name"] in secrets
                seen += 1
            for item in container.get("env", []):
                ref = item.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["key"] in object_data(rendered, "Secret", ref["name"])
                    seen += 1
            volumes = {v["name"] for v in pod.get("volumes", [])}
            claimed = {c["metadata"]["name"] for c in workload["spec"].get("volumeClaimTemplates", [])}
            for mount in container.get("volumeMounts", []):
                assert mount["name"] in volumes | claimed
        for volume in pod.get("volumes", []):
            if "configMap" in volume:
                assert volume["configMap"]["name"] in config_maps
            if "secret" in volume:
                assert volume["secret"]["secretName"] in secrets
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in claims
    assert seen > 10


def test_every_service_selects_pods_and_targets_a_named_port(rendered: Rendered) -> None:
    for svc in rendered.of_kind("Service"):
        selector = svc["spec"]["selector"]
        targets = [
            w
            for w in workloads(rendered)
            if selector.items() <= w["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert targets, f"Service {svc['metadata']['name']} selects no pod"
        ports = {p["name"] for w in targets for c in containers(w) for p in c.get("ports", [])}
        for port in svc["spec"]["ports"]:
            assert port["targetPort"] in ports


def test_every_image_has_a_tag(rendered: Rendered) -> None:
    found = [image for manifest in rendered.manifests for image in images(manifest)]
    assert found
    for image in found:
        name, _, tag = image.rpartition(":")
        assert name and tag and "/" not in tag, image


def test_every_object_is_in_the_namespace(rendered: Rendered) -> None:
    namespace = rendered.of_kind("Namespace")[0]["metadata"]["name"]
    for manifest in rendered.manifests[1:]:
        if manifest["kind"] not in CLUSTER_KINDS:
            assert manifest["metadata"]["namespace"] == namespace


def test_credentials_are_in_secrets_never_in_configmaps(variant: Rendered) -> None:
    for config_map in variant.of_kind("ConfigMap"):
        for key in config_map["data"]:
            assert not key.endswith(("__Password", "__User", "__Login", "__ConnectionString")), key
    assert "Amqp__Password" in object_data(variant, "Secret", "rabbitmq-credentials")
    assert "Redis__Password" in object_data(variant, "Secret", "redis-credentials")
    assert "MongoDB__Password" in object_data(variant, "Secret", "mongodb-credentials")


# -- ArmoniK's workloads ---------------------------------------------------------------------------------
def test_scaled_objects_target_their_partition_on_queued_tasks(variant: Rendered) -> None:
    scaled = {m["metadata"]["name"]: m for m in variant.of_kind("ScaledObject")}
    assert set(scaled) == {"default-compute-plane", "htc-mock-compute-plane"}
    prometheus = variant.get("Service", "prometheus")
    address = f"http://prometheus.armonik-test.svc:{prometheus['spec']['ports'][0]['port']}"
    for partition, metric in (
        ("default", "armonik_default_tasks_queued"),
        ("htc-mock", "armonik_htc_mock_tasks_queued"),
    ):
        spec = scaled[f"{partition}-compute-plane"]["spec"]
        target = spec["scaleTargetRef"]
        assert target["kind"] == "Deployment" and target["name"] == f"compute-plane-{partition}"
        assert target["envSourceContainerName"] in {
            c["name"] for c in containers(variant.get("Deployment", target["name"]))
        }
        trigger = spec["triggers"][0]
        assert trigger["type"] == "prometheus"
        assert trigger["metadata"]["serverAddress"] == address
        assert trigger["metadata"]["query"] == metric + '{job="metrics-exporter"}'
    default = scaled["default-compute-plane"]["spec"]
    assert (default["pollingInterval"], default["minReplicaCount"], default["maxReplicaCount"]) == (10, 1, 7)
    assert default["triggers"][0]["metadata"]["threshold"] == "5"
    assert default["triggers"][1] == {"type": "cpu", "metricType": "Utilization", "metadata": {"value": "70"}}
    assert scaled["htc-mock-compute-plane"]["spec"]["triggers"][0]["metadata"]["threshold"] == "2"
    scrape = yaml.safe_load(object_data(variant, "ConfigMap", "prometheus-configmap")["prometheus.yml"])
    job = scrape["scrape_configs"][0]
    exporter = variant.get("Service", "metrics-exporter")["spec"]["ports"][0]["port"]
    assert job["job_name"] == "metrics-exporter"
    assert job["static_configs"][0]["targets"] == [f"metrics-exporter.armonik-test.svc:{exporter}"]


def test_default_parameters_scale_only_partitions_with_hpa(default: Rendered) -> None:
    assert names(default, "ScaledObject") == {"default-compute-plane"}
    assert names(default, "Deployment") >= {"compute-plane-default", "compute-plane-pymonik"}


def test_agent_and_workers_agree_on_their_channels(rendered: Rendered) -> None:
    keys = [
        "ComputePlane__WorkerChannel__Address",
        "ComputePlane__WorkerChannel__SocketType",
        "ComputePlane__AgentChannel__Address",
        "ComputePlane__AgentChannel__SocketType",
        "Pollster__PartitionId",
    ]
    for deployment in rendered.of_kind("Deployment"):
        if not deployment["metadata"]["name"].startswith("compute-plane-"):
            continue
        agent, *workers = containers(deployment)
        assert agent["name"] == "polling-agent" and workers
        agent_env = container_env(rendered, agent)
        assert agent_env["Pollster__PartitionId"] == deployment["metadata"]["labels"]["partition"]
        for worker in workers:
            worker_env = container_env(rendered, worker)
            assert [worker_env[k] for k in keys] == [agent_env[k] for k in keys]
            assert {"name": "cache-volume", "mountPath": "/cache"} in worker["volumeMounts"]
        assert {"name": "cache-volume", "mountPath": "/cache"} in agent["volumeMounts"]
        if agent_env["ComputePlane__AgentChannel__SocketType"] == "unixdomainsocket":
            assert agent_env["ComputePlane__AgentChannel__Address"].startswith("/cache/")
            assert (
                agent["startupProbe"]["exec"]["command"][-1]
                == agent_env["ComputePlane__AgentChannel__Address"]
            )
            assert (
                workers[0]["startupProbe"]["exec"]["command"][-1]
                == agent_env["ComputePlane__WorkerChannel__Address"]
            )
        else:
            assert agent_env["ComputePlane__WorkerChannel__Address"] == "http://localhost:10667"


def test_armonik_pods_run_as_user_5000(rendered: Rendered) -> None:
    own = [
        w
        for w in workloads(rendered)
        if w["metadata"]["name"] in ARMONIK_WORKLOADS or w["metadata"]["name"].startswith("compute-plane-")
    ]
    assert len(own) >= 4
    for workload in own:
        security = pod_spec(workload)["securityContext"]
        assert security["runAsUser"] == 5000 and security["fsGroup"] == 5000 and security["runAsNonRoot"]
        for container in containers(workload):
            assert container["securityContext"]["allowPrivilegeEscalation"] is False


def test_compute_plane_takes_resources_grace_and_placement_from_parameters(variant: Rendered) -> None:
    deployment = variant.get("Deployment", "compute-plane-default")
    pod = pod_spec(deployment)
    assert deployment["spec"]["replicas"] == 0
    assert pod["terminationGracePeriodSeconds"] == 30
    assert pod["nodeSelector"] == {"service": "workers"}
    assert pod["tolerations"][0]["key"] == "service"
    assert containers(deployment)[0]["resources"]["limits"] == {"cpu": "2000m", "memory": "2048Mi"}
    assert {"name": "cache-volume", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}} in pod["volumes"]
    two = containers(variant.get("Deployment", "compute-plane-htc-mock"))
    assert [c["name"] for c in two] == ["polling-agent", "worker-0", "sidecar-1"]


def test_images_follow_versions_and_a_user_tag_wins(default: Rendered, variant: Rendered) -> None:
    assert containers(default.get("Deployment", "control-plane"))[0]["image"] == "armonik-control-plane:0.1.0"
    assert (
        containers(variant.get("Deployment", "control-plane"))[0]["image"] == "armonik-control-plane:custom"
    )
    agent, worker = containers(default.get("Deployment", "compute-plane-pymonik"))
    assert agent["image"] == "armonik-polling-agent:0.1.0"
    assert worker["image"] == "armonik-pymonik-worker:0.1.0"
    exporter = containers(default.get("Deployment", "metrics-exporter"))[0]
    assert exporter["image"] == "armonik-metrics-exporter:0.1.0"
    init = containers(default.get("Job", "init"))[0]
    assert init["command"] == ["python", "-m", "armonik_deploy.init_job"]
    assert init["image"] == "armonik-control-plane:0.1.0"
    assert pod_spec(default.get("Job", "init"))["restartPolicy"] == "OnFailure"


def test_control_plane_service_maps_the_parameters_port_to_the_container(default: Rendered) -> None:
    service = default.get("Service", "control-plane")
    assert service["spec"]["ports"][0]["port"] == 5001
    container = containers(default.get("Deployment", "control-plane"))[0]
    assert container["ports"] == [
        {"name": "grpc", "containerPort": 1080, "protocol": "TCP"},
        {"name": "gateway", "containerPort": 1081, "protocol": "TCP"},
    ]
    assert default.get("Service", "metrics-exporter")["spec"]["ports"][0]["port"] == 9419


def test_the_compute_gateway_has_its_own_port_service_secrets_and_policy(default: Rendered) -> None:
    gateway = default.get("Service", "compute-gateway")
    assert gateway["spec"]["type"] == "ClusterIP"
    assert [(p["port"], p["targetPort"]) for p in gateway["spec"]["ports"]] == [(1081, "gateway")]
    assert all(p["port"] != 1081 for p in default.get("Service", "control-plane")["spec"]["ports"])
    secret = object_data(default, "Secret", "compute-gateway-secret")["secret"]
    for partition in ("default", "pymonik"):
        credential = object_data(default, "Secret", f"compute-gateway-agent-{partition}")["credential"]
        assert credential == agent_credential(secret.encode(), partition)
        agent = containers(default.get("Deployment", f"compute-plane-{partition}"))[0]
        refs = {
            e["name"]: e["valueFrom"]["secretKeyRef"]["name"]
            for e in agent["env"]
            if "secretKeyRef" in e.get("valueFrom", {})
        }
        assert refs.get("ComputeGateway__Credential") == f"compute-gateway-agent-{partition}"
        worker = containers(default.get("Deployment", f"compute-plane-{partition}"))[1]
        assert not any(e["name"].startswith("ComputeGateway__") for e in worker.get("env", []))
    control = containers(default.get("Deployment", "control-plane"))[0]
    assert control["env"] == [
        {
            "name": "ComputeGateway__Secret",
            "valueFrom": {"secretKeyRef": {"name": "compute-gateway-secret", "key": "secret"}},
        }
    ]
    policy = default.get("NetworkPolicy", "control-plane")["spec"]
    gateway_rule = next(r for r in policy["ingress"] if r["ports"][0]["port"] == "gateway")
    assert gateway_rule["from"] == [
        {"podSelector": {"matchLabels": {"app": "armonik", "service": "compute-plane"}}}
    ]


# -- the settings the processes would read ---------------------------------------------------------------
def test_default_settings_parse_with_the_embedded_backends(default: Rendered) -> None:
    cp_env = container_env(default, containers(default.get("Deployment", "control-plane"))[0])
    settings = ControlPlaneSettings.from_env(cp_env)
    assert (settings.host, settings.port) == ("0.0.0.0", 1080)
    assert (settings.table_storage, settings.queue_storage, settings.object_storage) == (
        "sqlite",
        "memory",
        "filesystem",
    )
    assert str(settings.data_directory) == "/armonik/data"
    assert [p.partition_id for p in settings.partitions] == ["default", "pymonik"]
    assert settings.tls is None
    mounts = containers(default.get("Deployment", "control-plane"))[0]["volumeMounts"]
    assert {"name": "data", "mountPath": "/armonik/data"} in mounts
    agent = containers(default.get("Deployment", "compute-plane-default"))[0]
    agent_settings = AgentSettings.from_env(container_env(default, agent))
    # the agents reach the compute gateway's own Service, with their partition's credential
    assert agent_settings.control_plane_endpoint == "http://compute-gateway.armonik.svc:1081"
    assert settings.gateway is not None and settings.gateway.port == 1081 and settings.gateway.socket is None
    assert settings.gateway.secret is not None
    assert agent_settings.gateway_credential == agent_credential(settings.gateway.secret, "default")
    assert agent_settings.partition_id == "default"
    exporter = MetricsExporterSettings.from_env(
        container_env(default, containers(default.get("Deployment", "metrics-exporter"))[0])
    )
    assert (exporter.host, exporter.port) == ("0.0.0.0", 1080)


def test_variant_settings_reach_the_cluster_services(variant: Rendered, tmp_path: Path) -> None:
    deployment = variant.get("Deployment", "control-plane")
    cp_env = mounted_env(variant, deployment, containers(deployment)[0], tmp_path)
    settings = ControlPlaneSettings.from_env(cp_env)
    assert (settings.table_storage, settings.queue_storage, settings.object_storage) == (
        "mongodb",
        "rabbitmq",
        "redis",
    )
    assert cp_env["MongoDB__Host"] == "mongodb-db-ps-rs0.armonik-test.svc"
    assert cp_env["MongoDB__ReplicaSet"] == "rs0" and cp_env["MongoDB__DatabaseName"] == "armonik"
    assert cp_env["Amqp__Host"] == "rabbitmq.armonik-test.svc" and cp_env["Amqp__MaxPriority"] == "10"
    assert cp_env["Redis__EndpointUrl"] == "redis.armonik-test.svc:6379"
    assert cp_env["Serilog__MinimumLevel"] == "Debug"
    assert "Embedded__DataDirectory" not in cp_env
    assert "PersistentVolumeClaim" not in {m["kind"] for m in variant.manifests}
    assert settings.tls is not None
    # the services' own pods read the very passwords the core processes use
    rabbit = containers(variant.get("StatefulSet", "rabbitmq"))[0]
    ref = next(e for e in rabbit["env"] if e["name"] == "RABBITMQ_PASSWORD")["valueFrom"]["secretKeyRef"]
    assert object_data(variant, "Secret", ref["name"])[ref["key"]] == cp_env["Amqp__Password"]
    app_user = object_data(variant, "Secret", "application-user-password")["password"]
    assert app_user == cp_env["MongoDB__Password"]
    percona = variant.get("PerconaServerMongoDB", "mongodb-db-ps")["spec"]
    assert percona["users"][0]["name"] == cp_env["MongoDB__User"]
    assert percona["users"][0]["db"] == cp_env["MongoDB__AuthSource"] == "armonik"
    assert (
        percona["replsets"][0]["volumeSpec"]["persistentVolumeClaim"]["resources"]["requests"]["storage"]
        == "8Gi"
    )
    assert percona["image"] == "percona/percona-server-mongodb:8.0.19-7"


def test_variant_tls_files_are_in_the_mounted_secrets(variant: Rendered, tmp_path: Path) -> None:
    for deployment, secret_name, keys in (
        (
            "control-plane",
            "control-plane-tls",
            (
                "ControlPlane__Tls__CertificateFile",
                "ControlPlane__Tls__KeyFile",
                "ControlPlane__Tls__ClientCaFile",
            ),
        ),
        (
            "compute-plane-default",
            "polling-agent-tls",
            (
                "ControlPlane__Tls__CaFile",
                "ControlPlane__Tls__ClientCertificateFile",
                "ControlPlane__Tls__ClientKeyFile",
            ),
        ),
    ):
        container = containers(variant.get("Deployment", deployment))[0]
        env = container_env(variant, container)
        mount = next(m for m in container["volumeMounts"] if m["name"] == "certificates")
        files = object_data(variant, "Secret", secret_name)
        for key in keys:
            folder, _, name = env[key].rpartition("/")
            assert folder == mount["mountPath"] and name in files, key
    compute = variant.get("Deployment", "compute-plane-default")
    agent = AgentSettings.from_env(mounted_env(variant, compute, containers(compute)[0], tmp_path / "agent"))
    control = variant.get("Deployment", "control-plane")
    server = ControlPlaneSettings.from_env(
        mounted_env(variant, control, containers(control)[0], tmp_path / "cp")
    )
    assert server.tls is not None and agent.control_plane_tls is not None
    assert agent.control_plane_endpoint == "https://compute-gateway.armonik-test.svc:1081"  # TLS there too
    assert agent.control_plane_tls is not None


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


def core_containers(rendered: Rendered) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(workload, container) of every process that reads core-configmap."""
    return [
        (workload, container)
        for workload in workloads(rendered)
        for container in containers(workload)
        if {"configMapRef": {"name": "core-configmap"}} in container.get("envFrom", [])
    ]


def test_mongodb_serves_tls_only_with_the_deployment_s_certificate(variant: Rendered) -> None:
    spec = variant.get("PerconaServerMongoDB", "mongodb-db-ps")["spec"]
    assert spec["tls"] == {"mode": "requireTLS", "allowInvalidCertificates": True}
    assert "tls" not in spec["unsafeFlags"]
    assert spec["secrets"]["ssl"] == spec["secrets"]["sslInternal"] == MONGODB_TLS_SECRET
    server = variant.get("Secret", MONGODB_TLS_SECRET)
    assert server["type"] == "kubernetes.io/tls" and set(server["data"]) == {"ca.crt", "tls.crt", "tls.key"}
    authority = variant.get("Secret", MONGODB_CA_SECRET)
    assert authority["data"] == {"ca.crt": server["data"]["ca.crt"]}  # the authority, without any key
    names = [m["kind"] + "/" + m["metadata"]["name"] for m in variant.manifests]
    assert names.index(f"Secret/{MONGODB_TLS_SECRET}") < names.index("PerconaServerMongoDB/mongodb-db-ps")


def test_every_core_process_connects_to_mongodb_with_tls_trusting_its_authority(
    variant: Rendered, tmp_path: Path
) -> None:
    """The control plane, each polling agent, the init job and the metrics exporter read MongoDB__Tls and a
    MongoDB__CAFile in their mount of the authority's Secret; with it, a client accepts the replica set's
    certificate for the host the settings name and for each member's name (where the driver goes once it
    reads the replica set's configuration). Workers neither read the settings nor mount the authority."""
    core = core_containers(variant)
    assert {c["name"] for _, c in core} == {"control-plane", "polling-agent", "init", "metrics-exporter"}
    assert len(core) == 5  # two partitions
    server = secret_files(variant, MONGODB_TLS_SECRET, tmp_path / "server")
    for index, (workload, container) in enumerate(core):
        env = mounted_env(variant, workload, container, tmp_path / str(index))
        settings = MongoSettings.from_env(Environment(env))
        assert settings.tls and settings.client_options()["tlsCAFile"] == settings.ca_file
        assert Path(settings.ca_file).read_bytes() == server["ca.crt"].read_bytes()
        settings.connect().close()  # pymongo loads the authority (it connects lazily)
    host = MongoSettings.from_env(Environment(container_env(variant, core[0][1]))).host
    member = "mongodb-db-ps-rs0-0.mongodb-db-ps-rs0.armonik-test.svc.cluster.local"
    for name in (host, member, f"{host}.cluster.local"):
        tls_handshake(server, server["ca.crt"], name)
    with pytest.raises(ssl.SSLCertVerificationError):
        tls_handshake(server, server["ca.crt"], "mongodb-db-ps-rs0.other-namespace.svc")
    workers = [
        container
        for workload in variant.of_kind("Deployment")
        if workload["metadata"]["name"].startswith("compute-plane-")
        for container in containers(workload)[1:]
    ]
    assert len(workers) == 3
    for worker in workers:
        assert MONGODB_CA_SECRET not in {m["name"] for m in worker["volumeMounts"]}
        assert "MongoDB__Tls" not in container_env(variant, worker)


def test_replica_set_members_authenticate_each_other_with_the_certificate(
    variant: Rendered, tmp_path: Path
) -> None:
    """sslInternal: a member connects to another presenting the same certificate, which the other
    requires and checks (x509 membership): the certificate serves and authenticates as a client."""
    files = secret_files(variant, MONGODB_TLS_SECRET, tmp_path)
    member = "mongodb-db-ps-rs0-1.mongodb-db-ps-rs0.armonik-test.svc.cluster.local"
    tls_handshake(files, files["ca.crt"], member, client=files)


def test_without_mongodb_nothing_mounts_its_authority(default: Rendered) -> None:
    assert MONGODB_CA_SECRET not in names(default, "Secret")
    for _, container in core_containers(default):
        assert "MongoDB__Tls" not in container_env(default, container)
        assert MONGODB_CA_SECRET not in {m["name"] for m in container.get("volumeMounts", [])}


def test_variant_warns_about_nothing_it_renders(variant: Rendered, default: Rendered) -> None:
    assert variant.warnings == [] and default.warnings == []


# -- errors, the command and re-rendering ----------------------------------------------------------------
def test_a_worker_without_image_is_a_named_error(versions: Any, tmp_path: Path) -> None:
    file = tmp_path / "p.tfvars"
    file.write_text(
        'compute_plane = { a = { worker = [{ command = ["x"] }] } }\ncontrol_plane = { default_partition = "a" }\n'
    )
    with pytest.raises(RenderError, match=r"compute_plane\.a\.worker\[0\]\.image: required"):
        render(load_parameters(file), versions, file, certificates=tmp_path)


def test_an_image_without_a_known_tag_is_a_named_error(versions: Any, tmp_path: Path) -> None:
    file = tmp_path / "p.tfvars"
    file.write_text('compute_plane = { a = { worker = [{ image = "mine", command = ["x"] }] } }\n')
    with pytest.raises(RenderError, match=r"compute_plane\.a\.worker\[0\]\.tag: no tag for image mine"):
        render(load_parameters(file), versions, file, certificates=tmp_path)


def test_render_folder_keeps_passwords_and_drops_stale_files(versions: Any, tmp_path: Path) -> None:
    file = tmp_path / "parameters.tfvars"
    file.write_text(VARIANT)
    out = tmp_path / "out"
    first, paths = render_folder(load_parameters(file), versions, file, out)
    assert len(paths) == len(first.manifests)
    assert (out / "credentials.json").stat().st_mode & 0o777 == 0o600
    stale = out / "099-deployment-gone.yaml"
    stale.write_text("{}")
    second, _ = render_folder(load_parameters(file), versions, file, out)
    assert not stale.exists()
    assert to_yaml(first.get("Secret", "rabbitmq-credentials")) == to_yaml(
        second.get("Secret", "rabbitmq-credentials")
    )
    for kept in ("control-plane-tls", MONGODB_TLS_SECRET, MONGODB_CA_SECRET):  # the certificates are kept
        assert to_yaml(first.get("Secret", kept)) == to_yaml(second.get("Secret", kept))
    loaded = [yaml.safe_load(p.read_text()) for p in sorted(out.glob("*.yaml"))]
    assert loaded == second.manifests
    assert loaded[0]["kind"] == "Namespace"


def test_credentials_given_in_parameters_win() -> None:
    credentials = Credentials()
    assert credentials.get("redis", "given") == "given"
    generated = credentials.get("redis")
    assert len(generated) >= 20 and credentials.get("redis") == generated


def test_cli_render_and_kubernetes_plan(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["render", str(tmp_path / "k8s")])
    assert result.exit_code == 0, result.output
    assert "manifests written" in result.output
    files = sorted(p.name for p in (tmp_path / "k8s").glob("*.yaml"))
    assert files[0] == "000-namespace-armonik.yaml"
    assert any(name.endswith("-scaledobject-default-compute-plane.yaml") for name in files)
    plan = runner.invoke(app, ["plan", "--target", "kubernetes"])
    assert plan.exit_code == 0, plan.output
    assert "ScaledObject" in plan.output and "default-compute-plane" in plan.output
    assert "Deployment" in plan.output and "compute-plane-pymonik" in plan.output
    bad = runner.invoke(
        app, ["render", str(tmp_path / "x"), "--parameters", str(tmp_path / "missing.tfvars")]
    )
    assert bad.exit_code == 1 and "cannot read the file" in bad.output


def test_cli_render_without_helm_writes_ours_and_names_each_chart_left_out(tmp_path: Path) -> None:
    """This machine has no helm: the charts (KEDA for the ScaledObjects, the Percona operator for MongoDB) are
    each named in a warning, and every manifest of the deployment is still written (the charts' objects, with
    helm, are checked in test_kubernetes_helm)."""
    file = tmp_path / "parameters.tfvars"
    file.write_text(VARIANT)
    env = {"PATH": str(tmp_path / "no-helm-here"), "COLUMNS": "400"}
    result = CliRunner().invoke(app, ["render", str(tmp_path / "k8s"), "--parameters", str(file)], env=env)
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("warning:")]
    pinned = json.loads((QUICK_DEPLOY / "versions.tfvars.json").read_text())["helm_charts"]
    assert [w.split(" from ")[0] for w in warnings] == [
        f"warning: Helm chart keda {pinned['keda']['version']}",
        f"warning: Helm chart psmdb-operator {pinned['mongodb']['version']}",
    ]
    assert all("helm is not on PATH" in w and "https://helm.sh/docs/intro/install/" in w for w in warnings)
    expected = render_file(file, tmp_path / "c")
    assert len(list((tmp_path / "k8s").glob("*.yaml"))) == len(expected.manifests)


def test_variant_authentication_reaches_the_control_plane_and_the_init_job(
    variant: Rendered, tmp_path: Path
) -> None:
    from armonik_core.control_plane.auth.init import DATA, tables_of
    from armonik_core.control_plane.auth.setup import auth_settings

    deployment = variant.get("Deployment", "control-plane")
    cp_env = mounted_env(variant, deployment, containers(deployment)[0], tmp_path)
    auth = auth_settings(ControlPlaneSettings.from_env(cp_env))
    assert auth.require_authentication and auth.authorization
    # the parameters' proxy, and the deployment's ingress, which passes on the browsers' certificates
    assert auth.trusted_common_names == {"ingress", "armonik-ingress"}
    init = container_env(variant, containers(variant.get("Job", "init"))[0])
    tables = tables_of(init[DATA], DATA)
    assert tables.users["admin"] == ["Admin"] and tables.users["deployment"] == ["Deployment"]
    assert {c.cn for c in tables.certificates} == {
        "client",
        "user-admin",
        "user-submitter",
        "user-monitoring",
    }


def test_an_in_process_partition_has_no_worker_container(versions: Any, tmp_path: Path) -> None:
    file = in_process_parameters(tmp_path)
    rendered = render(load_parameters(file), versions, file, certificates=tmp_path / "certs")
    [agent] = containers(rendered.get("Deployment", "compute-plane-pymonik"))
    env = container_env(rendered, agent)
    assert env["Worker__Module"] == PYMONIK_PROCESSOR
    assert env["Pollster__SharedCacheFolder"] == "/cache/shared"
    assert agent["image"].split(":")[0].endswith("armonik-pymonik-worker")
    # The worker's image starts the worker: the agent container names the agent image's entrypoint instead.
    assert agent["command"] == image_entrypoint("polling-agent")
    assert agent["command"] != image_entrypoint("pymonik-worker")
    assert "livenessProbe" not in agent
    # The separate-worker partition is unchanged: its agent runs its own image's entrypoint.
    default = containers(rendered.get("Deployment", "compute-plane-default"))
    assert len(default) == 2 and "command" not in default[0]


def image_entrypoint(stage: str) -> list[str]:
    """The ENTRYPOINT of a stage of the project's images Dockerfile."""
    lines = (ROOT / "infrastructure" / "images" / "Dockerfile").read_text().splitlines()
    start = lines.index(f"FROM runtime AS {stage}")
    entry = next(line for line in lines[start:] if line.startswith("ENTRYPOINT "))
    return list(json.loads(entry.removeprefix("ENTRYPOINT ")))
