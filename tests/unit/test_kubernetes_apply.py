"""`armonik-deploy deploy --target kubernetes`, everything short of a cluster: the certificates and their
names, the Terraform variables, the readiness rule, the endpoint rule (over dicts made by the kubernetes
client's own models, `to_dict()`), the outputs, and the real CLI failing at `terraform init` offline."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID
from kubernetes import client as k8s

from armonik_deploy.kubernetes import apply
from armonik_deploy.parameters import ParametersError
from armonik_deploy.tls import IngressTls
from tests.support import unavailable

ROOT = Path(__file__).resolve().parents[2]
VERSIONS = ROOT / "infrastructure" / "quick-deploy" / "localhost" / "versions.tfvars.json"

PARAMETERS: dict[str, Any] = {
    "namespace": "armonik",
    "control_plane": {"port": 5001},
    "compute_plane": {"default": {"replicas": 2, "worker": [{"image": "armonik-samples-worker"}]}},
    "mongodb": {"cluster": {"replicas": 1}},
    "rabbitmq": {},
    "redis": {"max_memory": "1gb"},
    "ingress": {"tls": True, "mtls": True, "certificate_key_size": 2048},
}


def write_parameters(folder: Path, data: dict[str, Any]) -> Path:
    path = folder / "parameters.tfvars.json"
    path.write_text(json.dumps(data))
    return path


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> tuple[apply.Prepared, apply.KubernetesLayout]:
    folder = tmp_path_factory.mktemp("k8s-apply")
    layout = apply.KubernetesLayout(folder / "generated")
    return apply.prepare(write_parameters(folder, PARAMETERS), VERSIONS, layout), layout


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def names(cert: x509.Certificate) -> set[str]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(san.get_values_for_type(x509.DNSName)) | {
        str(i) for i in san.get_values_for_type(x509.IPAddress)
    }


def issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    public = ca.public_key()
    assert isinstance(public, rsa.RSAPublicKey) and cert.signature_hash_algorithm is not None
    public.verify(
        cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), cert.signature_hash_algorithm
    )
    return cert.issuer == ca.subject


# -- certificates --------------------------------------------------------------------------------------------
def test_a_certificate_per_enabled_service_with_the_service_dns_names(prepared: Any) -> None:
    ready, layout = prepared
    certs = ready.certificates
    assert certs.folder == layout.certificates
    assert set(certs.servers) == {"control-plane", "mongodb", "rabbitmq", "redis"}
    assert set(certs.clients) == {"client"}
    ca = load(certs.ca.certificate)
    expected = {
        "control-plane": {
            "control-plane.armonik.svc.cluster.local",
            "control-plane.armonik.svc",
            "control-plane.armonik",
            "control-plane",
            # the agents reach the compute gateway's own Service over TLS with the same certificate
            "compute-gateway.armonik.svc.cluster.local",
            "compute-gateway.armonik.svc",
            "compute-gateway.armonik",
            "compute-gateway",
            "localhost",
            "127.0.0.1",
        },
        # the replica set's Service and, by wildcard, each member's name under it (Percona's list)
        "mongodb": {
            "mongodb-db-ps-rs0.armonik.svc.cluster.local",
            "mongodb-db-ps-rs0.armonik.svc",
            "mongodb-db-ps-rs0.armonik",
            "mongodb-db-ps-rs0",
            "*.mongodb-db-ps-rs0.armonik.svc.cluster.local",
            "*.mongodb-db-ps-rs0.armonik.svc",
            "*.mongodb-db-ps-rs0.armonik",
            "*.mongodb-db-ps-rs0",
            "localhost",
        },
        "rabbitmq": {"rabbitmq.armonik.svc.cluster.local", "rabbitmq.armonik.svc", "rabbitmq"},
        "redis": {"redis.armonik.svc.cluster.local", "redis.armonik.svc", "redis"},
    }
    for name, pair in certs.servers.items():
        cert = load(pair.certificate)
        assert names(cert) == expected[name], name
        assert issued_by(cert, ca)
        usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        # MongoDB's members present their certificate to each other (Percona's sslInternal)
        client = [ExtendedKeyUsageOID.CLIENT_AUTH] if name == "mongodb" else []
        assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH, *client]
        assert cert.public_key().key_size == 2048  # type: ignore[union-attr]
    client = load(certs.clients["client"].certificate)
    assert issued_by(client, ca)
    assert list(client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH
    ]


def test_without_storage_blocks_or_mtls_only_the_control_plane_is_certified(tmp_path: Path) -> None:
    data = {**PARAMETERS, "ingress": {"tls": True, "certificate_key_size": 2048}, "namespace": "hpc"}
    for block in ("mongodb", "rabbitmq", "redis"):
        data.pop(block)
    ready = apply.prepare(write_parameters(tmp_path, data), VERSIONS, apply.KubernetesLayout(tmp_path / "g"))
    assert set(ready.certificates.servers) == {"control-plane"}
    assert ready.certificates.clients == {}
    assert "control-plane.hpc.svc" in names(load(ready.certificates.servers["control-plane"].certificate))


def test_a_storage_block_naming_a_running_service_is_refused_before_anything_runs(tmp_path: Path) -> None:
    data = {**PARAMETERS, "rabbitmq": {"host": "broker.example", "port": 5672}}
    layout = apply.KubernetesLayout(tmp_path / "g")
    with pytest.raises(ParametersError, match=r"rabbitmq: gives the address of a running service"):
        apply.prepare(write_parameters(tmp_path, data), VERSIONS, layout)
    assert not layout.tfvars.exists()


# -- terraform variables ---------------------------------------------------------------------------------------
def test_tfvars_hold_the_parameters_the_versions_and_the_certificate_paths(prepared: Any) -> None:
    ready, layout = prepared
    assert ready.tfvars == layout.tfvars == layout.generated / "kubernetes" / "terraform.tfvars.json"
    tfvars = json.loads(ready.tfvars.read_text())
    for key, value in PARAMETERS.items():
        assert tfvars[key] == value, key
    versions = json.loads(VERSIONS.read_text())
    for key in ("armonik_versions", "armonik_images", "image_tags", "helm_charts"):
        assert tfvars[key] == versions[key]
    certs = tfvars["certificates"]
    assert certs["ca"] == {
        "certificate": str(layout.certificates / "ca.crt"),
        "key": str(layout.certificates / "ca.key"),
    }
    assert set(certs["servers"]) == {"control-plane", "mongodb", "rabbitmq", "redis"}
    assert certs["clients"]["client"]["key"] == str(layout.certificates / "client.key")
    for pair in [certs["ca"], *certs["servers"].values(), *certs["clients"].values()]:
        assert Path(pair["certificate"]).is_absolute() and Path(pair["certificate"]).is_file()
        assert Path(pair["key"]).is_file()


def test_a_failed_terraform_step_is_named_with_the_tail_of_its_stderr() -> None:
    stderr = "\n".join(f"line {i}" for i in range(40)) + "\nError: Kubernetes cluster unreachable\n"
    error = apply.terraform_error("apply", Path("/x"), 1, stderr)
    text = str(error)
    assert text.startswith("terraform apply failed (exit 1, in /x)")
    assert "Kubernetes cluster unreachable" in text and "line 39" in text and "line 20" not in text
    assert "providers could not be installed" not in text


# -- readiness -----------------------------------------------------------------------------------------------
def deployment(
    name: str, wanted: int | None, available: int | None, updated: int | None = None, observed: int = 2
) -> dict[str, Any]:
    return k8s.V1Deployment(  # type: ignore[no-any-return]
        metadata=k8s.V1ObjectMeta(name=name, generation=2),
        spec=k8s.V1DeploymentSpec(
            replicas=wanted, selector=k8s.V1LabelSelector(), template=k8s.V1PodTemplateSpec()
        ),
        status=k8s.V1DeploymentStatus(
            observed_generation=observed,
            available_replicas=available,
            updated_replicas=(1 if wanted is None else wanted) if updated is None else updated,
        ),
    ).to_dict()


def test_deployment_status_rule() -> None:
    assert apply.deployment_status(deployment("a", 2, 2)).ready
    assert apply.deployment_status(deployment("a", 0, None)).ready  # scaled to zero
    assert apply.deployment_status(deployment("a", None, 1)).ready  # spec.replicas defaults to 1
    assert apply.deployment_status(deployment("a", 2, 1)).detail == "1/2 replicas available"
    assert apply.deployment_status(deployment("a", 2, 2, updated=1)).detail == "1/2 replicas updated"
    assert (
        apply.deployment_status(deployment("a", 2, 2, observed=1)).detail
        == "its latest spec is not observed yet"
    )
    assert apply.deployment_status(None).detail == "not found"
    stuck = deployment("a", 1, 0)
    stuck["status"]["conditions"] = [
        k8s.V1DeploymentCondition(
            type="Progressing", status="False", reason="ProgressDeadlineExceeded", message="image pull"
        ).to_dict()
    ]
    status = apply.deployment_status(stuck)
    assert status.failed and not status.ready and "image pull" in status.detail


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_wait_ready_polls_until_every_deployment_is_available() -> None:
    clock = Clock()
    states: dict[str, list[dict[str, Any] | None]] = {
        "control-plane": [None, deployment("control-plane", 1, 0), deployment("control-plane", 1, 1)]
    }
    states["compute-plane-default"] = [deployment("c", 2, 1), deployment("c", 2, 1), deployment("c", 2, 1)]
    states["compute-plane-default"].append(deployment("c", 2, 2))
    reads: list[str] = []

    def read(name: str) -> dict[str, Any] | None:
        reads.append(name)
        queue = states[name]
        return queue.pop(0) if len(queue) > 1 else queue[0]

    apply.wait_ready(read, list(states), 60, poll=5, clock=clock, sleep=clock.sleep)
    assert clock.now == 15  # four rounds: the agent's deployment was the last one ready
    assert reads.count("control-plane") == 4


def test_wait_ready_times_out_naming_what_is_not_ready() -> None:
    clock = Clock()
    with pytest.raises(apply.DeployError) as error:
        apply.wait_ready(
            {"cp": deployment("cp", 1, 1), "compute-plane-x": deployment("x", 3, 1)}.get,
            ["cp", "compute-plane-x", "compute-plane-y"],
            30,
            poll=5,
            clock=clock,
            sleep=clock.sleep,
        )
    assert str(error.value) == (
        "waiting for the Deployments: not ready after 30s: "
        "compute-plane-x: 1/3 replicas available; compute-plane-y: not found"
    )
    assert clock.now == 30


# -- endpoint --------------------------------------------------------------------------------------------------
def service(
    kind: str, ingress: list[k8s.V1LoadBalancerIngress] | None = None, node_port: int | None = 31001
) -> Any:
    return k8s.V1Service(
        metadata=k8s.V1ObjectMeta(name="control-plane", namespace="armonik"),
        spec=k8s.V1ServiceSpec(
            type=kind,
            ports=[k8s.V1ServicePort(name="grpc", port=5001, target_port=1080, node_port=node_port)],
        ),
        status=k8s.V1ServiceStatus(load_balancer=k8s.V1LoadBalancerStatus(ingress=ingress)),
    ).to_dict()


def node(name: str, ready: bool, **addresses: str) -> Any:
    return k8s.V1Node(
        metadata=k8s.V1ObjectMeta(name=name),
        status=k8s.V1NodeStatus(
            addresses=[k8s.V1NodeAddress(type=t, address=a) for t, a in addresses.items()],
            conditions=[k8s.V1NodeCondition(type="Ready", status="True" if ready else "False")],
        ),
    ).to_dict()


NODES = [
    node("b", True, InternalIP="10.0.0.2", Hostname="b"),
    node("a", False, ExternalIP="203.0.113.1", InternalIP="10.0.0.1"),
    node("c", True, ExternalIP="203.0.113.3", InternalIP="10.0.0.3"),
]


def test_load_balancer_ingress_ip_then_hostname_on_the_service_port() -> None:
    ip = apply.control_plane_endpoint(
        service("LoadBalancer", [k8s.V1LoadBalancerIngress(ip="198.51.100.7")]), NODES
    )
    assert (ip.host, ip.port, ip.url(True)) == ("198.51.100.7", 5001, "https://198.51.100.7:5001")
    named = apply.control_plane_endpoint(
        service("LoadBalancer", [k8s.V1LoadBalancerIngress(hostname="lb.example")]), []
    )
    assert named.url(False) == "http://lb.example:5001" and named.needs is None


def test_node_port_on_the_first_ready_node_preferring_its_external_ip() -> None:
    endpoint = apply.control_plane_endpoint(service("NodePort"), NODES)
    # a is not Ready; b (first Ready by name) has no ExternalIP: its InternalIP
    assert (endpoint.host, endpoint.port) == ("10.0.0.2", 31001)
    assert "node b (InternalIP)" in endpoint.how
    only_c = apply.control_plane_endpoint(service("NodePort"), [NODES[2]])
    assert only_c.host == "203.0.113.3"
    pending = apply.control_plane_endpoint(service("LoadBalancer", []), NODES)
    assert pending.port == 31001 and "load balancer pending" in pending.how
    v6 = apply.control_plane_endpoint(service("NodePort"), [node("d", True, InternalIP="fd00::4")])
    assert v6.url(True) == "https://[fd00::4]:31001"
    with pytest.raises(apply.DeployError, match="no Ready node"):
        apply.control_plane_endpoint(service("NodePort"), [NODES[1]])


def test_cluster_ip_is_localhost_through_a_port_forward() -> None:
    endpoint = apply.control_plane_endpoint(service("ClusterIP", node_port=None), NODES)
    assert endpoint.url(True) == "https://localhost:5001"
    assert endpoint.needs == "kubectl -n armonik port-forward svc/control-plane 5001:5001"


# -- outputs ---------------------------------------------------------------------------------------------------
def test_outputs_name_the_real_endpoint_the_authority_and_the_client_certificate(
    prepared: Any, tmp_path: Path
) -> None:
    ready, _ = prepared
    endpoint = apply.Endpoint("203.0.113.3", 31001, "NodePort")
    output, cli = apply.write_kubernetes_outputs(tmp_path, endpoint, ready.tls, ready.certificates)
    assert json.loads(output.read_text())["armonik"]["control_plane_url"] == "https://203.0.113.3:31001"
    text = cli.read_text()
    certs = ready.certificates
    assert "endpoint: https://203.0.113.3:31001\n" in text
    assert f'certificate_authority: "{certs.ca.certificate}"' in text
    assert f'client_certificate: "{certs.clients["client"].certificate}"' in text
    assert f'client_key: "{certs.clients["client"].key}"' in text
    assert apply.uncovered_host(endpoint, certs) is not None
    assert apply.uncovered_host(apply.Endpoint("localhost", 5001, "forward"), certs) is None
    plain_output, plain_cli = apply.write_kubernetes_outputs(
        tmp_path / "plain", apply.Endpoint("10.0.0.2", 31001, "NodePort"), IngressTls(), certs
    )
    assert json.loads(plain_output.read_text())["armonik"]["control_plane_url"] == "http://10.0.0.2:31001"
    assert "certificate" not in plain_cli.read_text()


# -- the real CLI, offline -------------------------------------------------------------------------------------
def cli(*args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("terraform") is None:
        unavailable("terraform is not on PATH", "terraform is not on PATH; CI must have it")
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "armonik_deploy", *args], capture_output=True, text=True, env=env, timeout=120
    )


@pytest.mark.parametrize("command", ["deploy", "destroy"])
def test_cli_kubernetes_fails_at_terraform_init_offline(tmp_path: Path, command: str) -> None:
    parameters = write_parameters(tmp_path, {**PARAMETERS, "mongodb": None, "rabbitmq": None, "redis": None})
    generated = tmp_path / "generated"
    result = cli(
        command, "--target", "kubernetes", "--parameters", str(parameters), "--generated", str(generated)
    )
    assert result.returncode == 1, result.stdout + result.stderr
    error = " ".join(result.stderr.split())
    assert "terraform init failed" in error
    assert "the providers could not be installed" in error
    assert "hashicorp/kubernetes" in error
    # what comes before terraform was done, and terraform kept its data under the generated folder
    assert (generated / "kubernetes" / "terraform.tfvars.json").is_file()
    assert (generated / "certificates" / "control-plane.crt").is_file()
    assert (generated / "kubernetes" / ".terraform").is_dir()


def test_cli_rejects_an_unknown_target(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "armonik_deploy", "deploy", "--target", "aws", "--generated", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "--target aws: expected local, kubernetes or podman" in result.stderr


def test_with_authentication_the_cli_names_the_admins_certificate(tmp_path: Path) -> None:
    data = {**PARAMETERS, "authentication": {"require_authentication": True, "require_authorization": True}}
    layout = apply.KubernetesLayout(tmp_path / "generated")
    ready = apply.prepare(write_parameters(tmp_path, data), VERSIONS, layout)
    assert {"client", "user-admin", "user-submitter", "user-monitoring"} <= set(ready.certificates.clients)
    endpoint = apply.Endpoint("203.0.113.3", 31001, "NodePort")
    _, cli = apply.write_kubernetes_outputs(tmp_path, endpoint, ready.tls, ready.certificates)
    assert f'client_certificate: "{ready.certificates.clients["user-admin"].certificate}"' in cli.read_text()
