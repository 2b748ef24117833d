"""The podman target's translation of the rendered Kubernetes objects (`armonik_deploy.podman.translate`).

The objects are the renderer's own, for the quick-deploy parameters and for them with TLS and mTLS on and three
replicas; the podman arguments made of them are checked for what running them needs: one pod per replica with
agent and worker sharing the pod's cache volume, the data claim as one named volume, every ConfigMap value in
the environment, the Secrets as read-only files, the Services' names resolving to the network's gateway and
their ports published on it and on the host, a pod's containers in one network namespace (TCP channels between
an agent and its worker), and the images we cannot run named in a warning."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from armonik_deploy.kubernetes import Rendered, render
from armonik_deploy.parameters import load_parameters, load_versions
from armonik_deploy.podman.translate import (
    Network,
    Translation,
    TranslationError,
    local_image,
    repository,
    translate,
)
from tests.unit.quick_deploy import PYMONIK_PROCESSOR, in_process_parameters

ROOT = Path(__file__).resolve().parents[2]
QUICK_DEPLOY = ROOT / "infrastructure" / "quick-deploy" / "localhost"
NETWORK = Network("net-x", "10.89.3.1", "127.0.0.1")


def ours(image: str) -> bool:
    return image.startswith("armonik-")


def rendered_for(
    tmp_path: Path, extra: str = "", replicas: int = 1, replace: tuple[str, str] = ("", "")
) -> Rendered:
    file = tmp_path / "parameters.tfvars"
    text = (QUICK_DEPLOY / "parameters.tfvars").read_text()
    if replace[0]:
        assert replace[0] in text
        text = text.replace(*replace)
    text = text.replace("replicas                         = 1", f"replicas = {replicas}", 1)
    file.write_text(text + extra)
    versions = load_versions(QUICK_DEPLOY / "versions.tfvars.json")
    return render(load_parameters(file), versions, file, certificates=tmp_path / "certs")


def option_values(args: list[str], option: str) -> list[str]:
    return [args[i + 1] for i, a in enumerate(args) if a == option]


def env_of(args: list[str]) -> dict[str, str]:
    return dict(v.split("=", 1) for v in option_values(args, "--env"))


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> tuple[Rendered, Translation]:
    rendered = rendered_for(tmp_path_factory.mktemp("plain"))
    return rendered, translate(rendered.manifests, "ak", NETWORK, ours)


def test_one_pod_per_deployment_replica_and_the_init_job(plain: tuple[Rendered, Translation]) -> None:
    rendered, translation = plain
    assert [job.name for job in translation.jobs] == ["ak-job-init"]
    names = [pod.name for pod in translation.pods]
    assert names == [
        "ak-control-plane-0",
        "ak-compute-plane-default-0",
        "ak-compute-plane-pymonik-0",
        "ak-metrics-exporter-0",
    ]
    assert "Deployment/prometheus" in translation.skipped
    assert any("prom/prometheus" in w for w in translation.warnings)
    assert "ScaledObject/default-compute-plane" in translation.skipped


def test_agent_and_worker_share_their_pods_cache_and_agent_id(plain: tuple[Rendered, Translation]) -> None:
    _, translation = plain
    pod = next(p for p in translation.pods if p.name == "ak-compute-plane-default-0")
    agent, worker = pod.containers
    assert agent.image == "localhost/armonik-polling-agent:0.1.0"
    assert worker.image == "localhost/armonik-samples-worker:0.1.0"
    cache = "ak-compute-plane-default-0-cache-volume:/cache:U"
    assert cache in option_values(agent.args, "--volume") and cache in option_values(worker.args, "--volume")
    assert pod.volumes == ["ak-compute-plane-default-0-cache-volume"]
    assert env_of(agent.args)["Pollster__AgentId"] == pod.name
    assert env_of(agent.args)["Pollster__PartitionId"] == "default"
    assert "ak-armonik-data:/armonik/data:U" in option_values(agent.args, "--volume")
    assert translation.volumes == ["ak-armonik-data"]
    # One network namespace for the pod's containers, as in Kubernetes: the pod's, on the deployment network.
    assert option_values(pod.options, "--network") == ["net-x"]
    for container in pod.containers:
        assert "--network" not in container.args and "--publish" not in container.args
        assert option_values(container.args, "--user") == ["5000:5000"]
        assert option_values(container.args, "--restart") == ["always"]
        assert option_values(container.args, "--cap-drop") == ["ALL"]
        assert option_values(container.args, "--stop-timeout") == ["30"]


def test_services_resolve_to_the_gateway_and_are_published(plain: tuple[Rendered, Translation]) -> None:
    rendered, translation = plain
    port = rendered.get("Service", "control-plane")["spec"]["ports"][0]["port"]
    published = option_values(translation.pods[0].options, "--publish")
    # The clients' port on the host and the network; the agents' compute gateway, which the NetworkPolicy
    # opens to the compute-plane pods only, on the deployment network only.
    gateway = rendered.get("Service", "compute-gateway")["spec"]["ports"][0]["port"]
    assert published == ["10.89.3.1:1081:1081", f"127.0.0.1:{port}:1080", f"10.89.3.1:{port}:1080"]
    assert gateway == 1081 and translation.services["compute-gateway"] == [gateway]
    assert "control-plane.armonik.svc:10.89.3.1" in option_values(translation.pods[1].options, "--add-host")
    agent = translation.pods[1].containers[0]
    endpoint = env_of(agent.args)["ControlPlane__Endpoint"]
    assert endpoint == f"http://control-plane.armonik.svc:{port}"
    assert translation.services["control-plane"] == [port]
    assert translation.services["metrics-exporter"]


def test_the_init_job_runs_once_with_the_control_planes_settings(plain: tuple[Rendered, Translation]) -> None:
    _, translation = plain
    (job,) = translation.jobs
    (init,) = job.containers
    assert option_values(init.args, "--restart") == ["no"]
    assert option_values(init.args, "--network") == ["net-x"] and job.options == []
    assert "control-plane.armonik.svc:10.89.3.1" in option_values(init.args, "--add-host")
    assert option_values(init.args, "--entrypoint") == ['["python", "-m", "armonik_deploy.init_job"]']
    assert "InitServices__Partitioning__Partitions__0" in env_of(init.args)


def test_tls_secrets_become_read_only_files_and_replicas_more_pods(tmp_path: Path) -> None:
    extra = "\ningress = { tls = true, mtls = true, certificate_key_size = 2048 }\n"
    rendered = rendered_for(tmp_path, extra, replicas=3)
    translation = translate(rendered.manifests, "ak", NETWORK, ours)
    assert [p.name for p in translation.pods].count("ak-compute-plane-default-2") == 1
    secrets = [f for f in translation.files if f.name.startswith("secret-")]
    assert secrets, "the TLS Secrets are mounted as files"
    for fileset in secrets:
        assert fileset.owner == (5000, 5000) and fileset.mode == 0o440
        assert all(data for data in fileset.files.values())
    control_plane = translation.pods[0].containers[0]
    mounts = option_values(control_plane.args, "--volume")
    assert any(m.startswith("@files/secret-") and m.endswith(":ro") for m in mounts)


def test_a_reference_to_an_object_not_rendered_is_an_error() -> None:
    manifests: list[dict[str, Any]] = [
        {
            "kind": "Deployment",
            "metadata": {"name": "d"},
            "spec": {
                "template": {
                    "metadata": {},
                    "spec": {
                        "containers": [
                            {
                                "name": "c",
                                "image": "armonik-x:1",
                                "envFrom": [{"configMapRef": {"name": "gone"}}],
                            }
                        ]
                    },
                }
            },
        }
    ]
    with pytest.raises(TranslationError, match="gone"):
        translate(manifests, "ak", NETWORK, ours)


def test_local_images_are_named_as_podman_names_them() -> None:
    assert local_image("armonik-control-plane:0.1.0") == "localhost/armonik-control-plane:0.1.0"
    assert local_image("registry.example:5000/a/b:1") == "registry.example:5000/a/b:1"
    assert local_image("localhost/a:1") == "localhost/a:1"
    assert local_image("prom/prometheus:v3") == "localhost/prom/prometheus:v3"


def test_an_in_process_agent_runs_the_agent_in_the_workers_image(tmp_path: Path) -> None:
    """`worker = [{ module, image }]`: one container, of the worker's image, whose entrypoint is the agent's
    (the image's own would start its worker, and nothing would take the partition's tasks)."""
    file = in_process_parameters(tmp_path)
    versions = load_versions(QUICK_DEPLOY / "versions.tfvars.json")
    rendered = render(load_parameters(file), versions, file, certificates=tmp_path / "certs")
    translation = translate(rendered.manifests, "ak", NETWORK, ours)
    pod = next(p for p in translation.pods if p.name == "ak-compute-plane-pymonik-0")
    (agent,) = pod.containers
    assert agent.image == "localhost/armonik-pymonik-worker:0.1.0"
    assert option_values(agent.args, "--entrypoint") == ['["armonik-polling-agent"]']
    assert env_of(agent.args)["Worker__Module"] == PYMONIK_PROCESSOR


def test_a_tcp_partition_s_agent_and_worker_meet_on_the_pod_s_localhost(tmp_path: Path) -> None:
    """Upstream's TCP channels name localhost: the agent and the worker must share the pod's network."""
    tcp = 'default = {\n    socket_type = "tcp"\n    replicas                         = 1'
    rendered = rendered_for(tmp_path, replace=("default = {\n    replicas                         = 1", tcp))
    translation = translate(rendered.manifests, "ak", NETWORK, ours)
    pod = next(p for p in translation.pods if p.name == "ak-compute-plane-default-0")
    agent, worker = pod.containers
    assert env_of(agent.args)["ComputePlane__WorkerChannel__Address"].startswith("http://localhost:")
    assert env_of(worker.args)["ComputePlane__AgentChannel__Address"].startswith("http://localhost:")
    assert option_values(pod.options, "--network") == ["net-x"]
    assert "--network" not in agent.args + worker.args


def test_the_ingress_runs_when_its_nginx_image_is_here(tmp_path: Path) -> None:
    """Nothing pulls upstream's nginx image here: the ingress pod is skipped, with a warning, unless an nginx
    image is present; then it runs as rendered, nginx with its certificate Secret and the gRPC-Web container,
    its Service's port published on the host."""
    extra = "\ningress = { tls = true, mtls = true, certificate_key_size = 2048, http_port = 5443 }\n"
    rendered = rendered_for(tmp_path, extra)
    skipped = translate(rendered.manifests, "ak", NETWORK, ours)
    assert "Deployment/ingress" in skipped.skipped and "ingress" not in skipped.services
    assert any("nginxinc/nginx-unprivileged" in w for w in skipped.warnings)

    translation = translate(rendered.manifests, "ak", NETWORK, lambda image: ours(image) or "nginx" in image)
    pod = next(p for p in translation.pods if p.name == "ak-ingress-0")
    nginx, grpc_web = pod.containers
    assert option_values(pod.options, "--publish")[0] == "127.0.0.1:5443:8080"
    assert translation.services["ingress"] == [5443]
    assert any(m.endswith(":/etc/nginx/certificates:ro") for m in option_values(nginx.args, "--volume"))
    env = env_of(grpc_web.args)
    assert env["Ingress__TrustProxyIdentityHeaders"] == "true" and env["Ingress__Host"] == "127.0.0.1"
    assert any(m.endswith(":/certificates:ro") for m in option_values(grpc_web.args, "--volume"))


def test_the_projects_nginx_stands_in_for_upstreams_when_that_is_absent(tmp_path: Path) -> None:
    """Upstream's nginx is not on the machine, the project's stand-in is: the ingress pod runs the stand-in,
    with the rendered mounts (the ConfigMap's server block on /etc/nginx/conf.d, /static), and says so."""
    rendered = rendered_for(tmp_path, "\ningress = { http_port = 5080 }\n")
    stand_in = "localhost/armonik-ingress-nginx:0.1.0"

    def here(image: str) -> bool:
        return ours(image) or image == stand_in

    translation = translate(
        rendered.manifests, "ak", NETWORK, here, {"nginxinc/nginx-unprivileged": stand_in}
    )
    assert "Deployment/ingress" not in translation.skipped
    pod = next(p for p in translation.pods if p.name == "ak-ingress-0")
    nginx, grpc_web = pod.containers
    assert nginx.image == stand_in and grpc_web.image == "localhost/armonik-control-plane:0.1.0"
    mounts = option_values(nginx.args, "--volume")
    assert "@files/configmap-ingress-nginx:/etc/nginx/conf.d:ro" in mounts
    assert "@files/configmap-ingress-static:/static:ro" in mounts
    assert option_values(nginx.args, "--user") == ["5000:5000"]
    assert option_values(nginx.args, "--cap-drop") == ["ALL"]
    assert option_values(nginx.args, "--security-opt") == ["no-new-privileges"]
    assert [w for w in translation.warnings if stand_in in w] == [
        f"Deployment/ingress: image nginxinc/nginx-unprivileged:1.29.5-alpine-slim is not here, "
        f"{stand_in} runs in its place"
    ]
    # absent too: skipped as before
    absent = translate(rendered.manifests, "ak", NETWORK, ours, {"nginxinc/nginx-unprivileged": stand_in})
    assert "Deployment/ingress" in absent.skipped


def test_an_images_repository_is_its_name_without_the_tag() -> None:
    assert repository("nginxinc/nginx-unprivileged:1.29") == "nginxinc/nginx-unprivileged"
    assert repository("registry:5000/nginx") == "registry:5000/nginx"
    assert repository("registry:5000/nginx:1") == "registry:5000/nginx"
    assert repository("nginx") == "nginx"
