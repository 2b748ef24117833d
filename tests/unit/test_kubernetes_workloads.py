"""ArmoniK's workloads as the Kubernetes target renders them (the quick-deploy parameters and a variant, fixtures
in conftest): scaling on queued tasks, the agent's and the worker's channels, users, resources and placement,
images, the control plane's and the compute gateway's ports."""

from __future__ import annotations

import yaml

from armonik_core.gateway.auth import agent_credential
from armonik_deploy.kubernetes import Rendered
from tests.unit.kubernetes_render_support import (
    ARMONIK_WORKLOADS,
    container_env,
    containers,
    names,
    object_data,
    pod_spec,
    workloads,
)


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
