"""`armonik-deploy deploy --target kubernetes`: certificates, Terraform, readiness, and the client's outputs.

The steps, each failing with a `DeployError` that names it:

1. Certificates (`armonik_deploy.certificates`, kept across deployments while valid) under
   `generated/certificates/`: an authority, a server certificate per in-cluster service the parameters enable
   (the control plane, MongoDB, the queue, the object store), named by the Service's DNS names
   `<svc>.<namespace>.svc.cluster.local`, `<svc>.<namespace>.svc` and `<svc>` (the control plane also by
   `<svc>.<namespace>`, `localhost` and 127.0.0.1, for `kubectl port-forward`, as the renderer certifies it;
   MongoDB's is the renderer's too: the replica set's Service and each of its members, usable as a client
   certificate between members), and a client certificate with `ingress.mtls`.
2. Terraform variables in `generated/kubernetes/terraform.tfvars.json` (the parameters and versions as
   written, plus `certificates`: the files of step 1), then `terraform init` and
   `terraform apply -auto-approve` in `infrastructure/quick-deploy/localhost`, through python-terraform. The
   state (`-state`) and Terraform's data folder (`TF_DATA_DIR`: modules, providers) live in
   `generated/kubernetes/`, so the source tree stays clean and each generated folder is its own deployment.
3. Readiness, with the `kubernetes` client: the control plane Deployment and every compute Deployment
   (`compute-plane-<partition>`) must have observed their latest spec and have as many updated and
   available replicas as they want (`deployment_status`), before `timeout`.
4. The endpoint clients use, read from the control plane's Service (`control_plane_endpoint`), written to
   `generated/armonik-output.json` and `generated/armonik-cli.yaml` with the authority and, with mTLS, the
   client certificate and key. Upstream writes the in-cluster URL and no client certificate: neither lets a
   client outside the cluster connect.

The third-party charts (KEDA, the Percona operator: `helm.required_charts`) are installed by Terraform's
`helm_release` by default (`charts="terraform"`). With `charts="helm"` (`--charts helm`) they are installed
through pyhelm3 instead (`chart_releases`), after `terraform init`: Terraform is told to skip its own releases (variable
`install_helm_charts = false` in the tfvars, which the quick-deploy must declare: checked before anything
runs), creates the deployment's namespace first (`-target`) when a chart goes into it, then helm installs the
charts (and waits for them), then `terraform apply` creates the rest, whose ScaledObjects and
PerconaServerMongoDB need the charts' CRDs. A missing helm fails before terraform runs.

Which way the charts went is recorded in `generated/kubernetes/charts.json` (with the releases helm
installed), so that `destroy` undoes the same: after a `charts="helm"` deployment it destroys first what
needs the charts' controllers to be deleted (the ScaledObjects, whose finalizer KEDA removes; the
PerconaServerMongoDB, which the operator tears down), then helm uninstalls the releases, then Terraform
destroys the rest (the namespace last). A later deploy must keep the recorded way, until a destroy.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from armonik_deploy.certificates import (
    CertificateError,
    Certificates,
    KeyPair,
    ServerIdentity,
    ensure_certificates,
)
from armonik_deploy.kubernetes import helm
from armonik_deploy.kubernetes.chart_releases import (
    CHARTS,
    INSTALL_CHARTS_VARIABLE,
    ChartsRecord,
    check_same_charts_way,
    connect_helm,
    install_charts,
    plan_chart_install,
    read_charts_record,
    uninstall_charts,
    write_charts_record,
)
from armonik_deploy.kubernetes.context import Context, Credentials, RenderError
from armonik_deploy.kubernetes.layout import DeployError, KubernetesLayout, environment, last_lines
from armonik_deploy.kubernetes.operators import operator_urls
from armonik_deploy.kubernetes.settings import control_plane_identity, mongodb_identity
from armonik_deploy.outputs import write_outputs
from armonik_deploy.parameters import Parameters, Versions, load_parameters, load_versions, read_variables
from armonik_deploy.tls import CliCredentials, IngressTls, read_ingress_tls

QUICK_DEPLOY = Path(__file__).resolve().parents[2] / "infrastructure" / "quick-deploy" / "localhost"
DEFAULT_TIMEOUT = 600.0
POLL_INTERVAL = 5.0
#: How many lines of terraform's stderr an error quotes.
STDERR_TAIL_LINES = 15
#: What terraform init says when it cannot reach the registry or fetch a provider.
_PROVIDER_FAILURES = (
    "Failed to query available provider packages",
    "Failed to install provider",
    "could not connect to registry",
    "Failed to download",
)

#: The deployment's namespace in the quick-deploy, created alone first when a chart is installed into it.
NAMESPACE_RESOURCE = "kubernetes_namespace.armonik"

Dict = Mapping[str, Any]


# -- 1. certificates ----------------------------------------------------------------------------------------
def service_hosts(service: str, namespace: str) -> list[str]:
    """The names a pod uses to reach a Service: fully qualified, short, and bare in the same namespace."""
    return [f"{service}.{namespace}.svc.cluster.local", f"{service}.{namespace}.svc", service]


def service_identities(params: Parameters) -> list[ServerIdentity]:
    """A server identity per in-cluster service the parameters enable (file name -> the Service it names);
    the control plane's and MongoDB's are the renderer's (`settings.control_plane_identity`,
    `settings.mongodb_identity`: the replica set and each of its members), so that both certify the same."""
    ns = params.namespace
    out = [control_plane_identity(params.control_plane.name, ns)]
    if params.mongodb is not None:
        out.append(mongodb_identity(ns))
    for name in ("rabbitmq", "activemq", "redis", "minio"):
        if getattr(params, name) is not None:
            out.append(ServerIdentity(name, service_hosts(name, ns)))
    return out


def make_certificates(params: Parameters, tls: IngressTls, folder: Path) -> Certificates:
    try:
        return ensure_certificates(
            folder,
            service_identities(params),
            ["client"] if tls.mtls else [],
            validity_days=tls.certificate_validity_days,
            key_size=tls.certificate_key_size,
        )
    except CertificateError as exc:
        raise DeployError(f"certificates: {exc}") from None


# -- 2. terraform -------------------------------------------------------------------------------------------
def terraform_variables(
    parameters: Mapping[str, Any], versions: Mapping[str, Any], certificates: Certificates
) -> dict[str, Any]:
    """The parameters and versions as written (Terraform's variables have their names), and `certificates`:
    the absolute paths of the authority, of each service's and each client's certificate and key."""

    def pair(kp: KeyPair) -> dict[str, str]:
        return {"certificate": str(kp.certificate.resolve()), "key": str(kp.key.resolve())}

    return {
        **parameters,
        **versions,
        "certificates": {
            "folder": str(certificates.folder.resolve()),
            "ca": pair(certificates.ca),
            "servers": {name: pair(kp) for name, kp in certificates.servers.items()},
            "clients": {name: pair(kp) for name, kp in certificates.clients.items()},
        },
    }


def write_tfvars(path: Path, variables: Mapping[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(variables, indent=2, sort_keys=True) + "\n")
    return path


def stderr_tail(stderr: str, lines: int = STDERR_TAIL_LINES) -> str:
    return "\n".join(last_lines(stderr, lines))


def terraform_error(step: str, working_dir: Path, code: int, stderr: str) -> DeployError:
    """The error of a failed terraform step; `init` failing to fetch providers says so (offline, proxy...)."""
    flat = " ".join(stderr.split())
    head = f"terraform {step} failed (exit {code}, in {working_dir})"
    if step == "init" and any(marker in flat for marker in _PROVIDER_FAILURES):
        providers = sorted(set(re.findall(r"provider (\S+/[^\s:]+):", flat)))
        which = f" ({', '.join(providers)})" if providers else ""
        head += (
            f": the providers could not be installed{which}; terraform needs registry.terraform.io "
            "(or a mirror: provider_installation in ~/.terraformrc) to download them"
        )
    return DeployError(f"{head}\n{stderr_tail(stderr)}")


@dataclass(slots=True)
class TerraformRunner:
    """`terraform init/apply/destroy` in `working_dir`, the state and data folder in the layout."""

    layout: KubernetesLayout
    working_dir: Path = QUICK_DEPLOY

    def _run(self, step: str, call: Callable[[Any], tuple[int, str, str]]) -> str:
        from python_terraform import Terraform

        tf = Terraform(working_dir=str(self.working_dir))
        self.layout.folder.mkdir(parents=True, exist_ok=True)
        env = {"TF_DATA_DIR": str(self.layout.data_dir), "TF_IN_AUTOMATION": "1"}
        try:
            with environment(env):
                code, out, err = call(tf)
        except FileNotFoundError:
            raise DeployError(
                f"terraform {step}: terraform is not on PATH (install Terraform >= 1.5)"
            ) from None
        if code != 0:
            raise terraform_error(step, self.working_dir, code, err or out or "")
        return out

    def init(self) -> str:
        return self._run("init", lambda tf: tf.init(capture_output=True))

    def apply(self, var_file: Path, targets: Sequence[str] = ()) -> str:
        """`terraform apply`; with `targets`, of those resources only (`-target`)."""
        # skip_plan=True is python-terraform's -auto-approve; a list option is repeated (-target=a -target=b)
        return self._run(
            "apply",
            lambda tf: tf.apply(
                skip_plan=True,
                var_file=str(var_file),
                state=str(self.layout.state),
                target=list(targets) or None,
                capture_output=True,
            ),
        )

    def destroy(self, var_file: Path, targets: Sequence[str] = ()) -> str:
        """`terraform destroy`; with `targets`, of those resources (and what depends on them) only."""
        # python-terraform adds -force by default, which Terraform >= 0.15 rejects: -auto-approve instead
        from python_terraform import IsFlagged, IsNotFlagged

        return self._run(
            "destroy",
            lambda tf: tf.destroy(
                force=IsNotFlagged,
                auto_approve=IsFlagged,
                var_file=str(var_file),
                state=str(self.layout.state),
                target=list(targets) or None,
                capture_output=True,
            ),
        )


# -- 3. readiness -------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class DeploymentStatus:
    ready: bool
    detail: str
    #: The rollout cannot finish by waiting (progress deadline exceeded).
    failed: bool = False


def deployment_status(deployment: Dict | None) -> DeploymentStatus:
    """Whether a Deployment (the client's `to_dict()`) is rolled out: its controller observed the latest
    spec, and it has as many updated and available replicas as it wants (0 wanted, e.g. scaled to zero by
    KEDA, is ready)."""
    if deployment is None:
        return DeploymentStatus(False, "not found")
    meta, spec, status = (deployment.get(k) or {} for k in ("metadata", "spec", "status"))
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Progressing" and condition.get("reason") == "ProgressDeadlineExceeded":
            return DeploymentStatus(False, f"progress deadline exceeded: {condition.get('message')}", True)
    observed, generation = status.get("observed_generation"), meta.get("generation")
    if observed is None or (generation is not None and observed < generation):
        return DeploymentStatus(False, "its latest spec is not observed yet")
    wanted = 1 if spec.get("replicas") is None else int(spec["replicas"])
    updated = int(status.get("updated_replicas") or 0)
    available = int(status.get("available_replicas") or 0)
    if updated < wanted:
        return DeploymentStatus(False, f"{updated}/{wanted} replicas updated")
    if available < wanted:
        return DeploymentStatus(False, f"{available}/{wanted} replicas available")
    return DeploymentStatus(True, f"{available}/{wanted} replicas available")


def deployment_names(params: Parameters) -> list[str]:
    """The Deployments a deployment waits for: the control plane's, then one per partition."""
    return [params.control_plane.name, *(f"compute-plane-{p}" for p in params.compute_plane)]


def wait_ready(
    read: Callable[[str], Dict | None],
    names: Sequence[str],
    timeout: float,
    *,
    poll: float = POLL_INTERVAL,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Poll `read(name)` (a Deployment dict, None when absent) until every one is ready, else DeployError
    naming each one still waited for and why."""
    deadline = clock() + timeout
    while True:
        statuses = {name: deployment_status(read(name)) for name in names}
        failed = {n: s for n, s in statuses.items() if s.failed}
        pending = {n: s for n, s in statuses.items() if not s.ready}
        if failed or (pending and clock() >= deadline):
            why = "failed" if failed else f"not ready after {timeout:g}s"
            listing = "; ".join(f"{n}: {s.detail}" for n, s in (failed or pending).items())
            raise DeployError(f"waiting for the Deployments: {why}: {listing}")
        if not pending:
            return
        sleep(max(0.0, min(poll, deadline - clock())))


# -- 4. endpoint ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str
    port: int
    #: How it was found (printed to the user).
    how: str
    #: A command to run first (ClusterIP: `kubectl port-forward`), or None.
    needs: str | None = None

    def url(self, tls: bool) -> str:
        host = f"[{self.host}]" if _is_ipv6(self.host) else self.host
        return f"{'https' if tls else 'http'}://{host}:{self.port}"


def _is_ipv6(host: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(host), ipaddress.IPv6Address)
    except ValueError:
        return False


_ADDRESS_PREFERENCE = ("ExternalIP", "InternalIP", "Hostname")


def node_address(nodes: Sequence[Dict]) -> tuple[str, str, str] | None:
    """(node, address type, address) of the first Ready node by name, preferring ExternalIP (reachable from
    outside), then InternalIP (same network, e.g. kind, minikube, k3s), then its host name."""

    def ready(node: Dict) -> bool:
        conditions = (node.get("status") or {}).get("conditions") or []
        return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)

    for node in sorted(filter(ready, nodes), key=lambda n: str((n.get("metadata") or {}).get("name"))):
        addresses = (node.get("status") or {}).get("addresses") or []
        by_type = {a.get("type"): a.get("address") for a in reversed(addresses) if a.get("address")}
        for kind in _ADDRESS_PREFERENCE:
            if by_type.get(kind):
                return str((node.get("metadata") or {}).get("name")), kind, str(by_type[kind])
    return None


def control_plane_endpoint(service: Dict, nodes: Sequence[Dict]) -> Endpoint:
    """Where a client outside the cluster reaches the control plane's Service (the client's `to_dict()`):

    - LoadBalancer with an ingress: its IP, else its host name, on the Service port;
    - NodePort, or LoadBalancer still pending (no cloud controller, e.g. kind): the node port on a Ready
      node's address (`node_address`);
    - ClusterIP: not reachable from outside; localhost on the Service port, after
      `kubectl port-forward` (the control plane's certificate names localhost and 127.0.0.1 for this).
    """
    meta, spec = service.get("metadata") or {}, service.get("spec") or {}
    name, ns = meta.get("name", "control-plane"), meta.get("namespace", "armonik")
    kind = spec.get("type") or "ClusterIP"
    ports = spec.get("ports") or []
    if not ports:
        raise DeployError(f"Service {ns}/{name} has no port")
    port = next((p for p in ports if p.get("name") == "grpc"), ports[0])
    if kind == "LoadBalancer":
        for entry in ((service.get("status") or {}).get("load_balancer") or {}).get("ingress") or []:
            host = entry.get("ip") or entry.get("hostname")
            if host:
                return Endpoint(str(host), int(port["port"]), f"LoadBalancer {ns}/{name} ingress")
    if kind in ("LoadBalancer", "NodePort") and port.get("node_port"):
        found = node_address(nodes)
        if found is None:
            raise DeployError(
                f"Service {ns}/{name} is {kind}: no Ready node with an address for its node port"
            )
        node, address_type, address = found
        pending = " (load balancer pending)" if kind == "LoadBalancer" else ""
        return Endpoint(
            address,
            int(port["node_port"]),
            f"NodePort of {ns}/{name}{pending} on node {node} ({address_type})",
        )
    if kind == "ClusterIP":
        forward = f"kubectl -n {ns} port-forward svc/{name} {port['port']}:{port['port']}"
        return Endpoint("localhost", int(port["port"]), f"ClusterIP {ns}/{name}, forwarded", needs=forward)
    raise DeployError(f"Service {ns}/{name}: type {kind} has no endpoint for clients outside the cluster")


# -- 4'. outputs ---------------------------------------------------------------------------------------------
def write_kubernetes_outputs(
    generated: Path,
    endpoint: Endpoint,
    tls: IngressTls,
    certificates: Certificates,
    urls: Mapping[str, str | None] | None = None,
) -> tuple[Path, Path]:
    """armonik-output.json and armonik-cli.yaml for the endpoint: https with the authority under TLS, and the
    client certificate and key under mTLS (unless `generate_client_cert = false`: the user brings theirs)."""
    named = CliCredentials()
    if tls.tls:
        named["certificate_authority"] = certificates.ca.certificate
    if tls.mtls and tls.generate_client_cert and "client" in certificates.clients:
        named["client_certificate"] = certificates.clients["client"].certificate
        named["client_key"] = certificates.clients["client"].key
    return write_outputs(generated, endpoint.url(tls.tls), **named, **(urls or {}))  # type: ignore[arg-type]


def uncovered_host(endpoint: Endpoint, certificates: Certificates) -> str | None:
    """A warning when TLS clients would reject the endpoint: the control plane's certificate does not name
    it (a load balancer or node address is known only after apply)."""
    if endpoint.host.lower() in _control_plane_names(certificates):
        return None
    return (
        f"the control plane's certificate does not name {endpoint.host}: TLS clients will reject it unless "
        "they override the server name (e.g. control-plane.<namespace>.svc), or use a port-forward to localhost"
    )


def _control_plane_names(certificates: Certificates) -> set[str]:
    from cryptography import x509

    pair = certificates.servers.get("control-plane")
    if pair is None:
        return set()
    cert = x509.load_pem_x509_certificate(pair.certificate.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {n.lower() for n in san.get_values_for_type(x509.DNSName)} | {
        str(ip) for ip in san.get_values_for_type(x509.IPAddress)
    }


# -- the commands -------------------------------------------------------------------------------------------
@dataclass(slots=True)
class Prepared:
    params: Parameters
    tls: IngressTls
    certificates: Certificates
    tfvars: Path
    versions: Versions


#: Terraform's variable holding the operators' stack (infrastructure/quick-deploy/localhost/variables.tf).
OPERATORS_VARIABLE = "operators_manifests"


def operators_variable(
    params: Parameters, versions: Versions, parameters_file: Path, layout: KubernetesLayout
) -> dict[str, str]:
    """The operators' stack (ingress, GUI, Grafana, Seq, fluent-bit) as rendered, for Terraform to apply."""
    from armonik_deploy.kubernetes.render import operators_manifests, render

    try:
        rendered = render(params, versions, parameters_file, certificates=layout.certificates)
    except RenderError as exc:
        raise DeployError(str(exc)) from None
    return operators_manifests(rendered)


def prepare(
    parameters_file: Path, versions_file: Path, layout: KubernetesLayout, charts: str = "terraform"
) -> Prepared:
    """Steps 1 and 2 before terraform: typed checks of both files, certificates, the tfvars file (telling
    Terraform not to install the charts when helm does). Raises ParametersError on a bad file."""
    params = load_parameters(parameters_file)
    versions = load_versions(versions_file)
    tls = read_ingress_tls(params, parameters_file)
    certificates = make_certificates(params, tls, layout.certificates)
    variables = terraform_variables(
        read_variables(parameters_file), read_variables(versions_file), certificates
    )
    if charts == "helm":
        variables[INSTALL_CHARTS_VARIABLE] = False
    variables[OPERATORS_VARIABLE] = operators_variable(params, versions, parameters_file, layout)
    return Prepared(params, tls, certificates, write_tfvars(layout.tfvars, variables), versions)


@dataclass(slots=True)
class DeployResult:
    endpoint: Endpoint
    url: str
    output: Path
    cli: Path
    warnings: list[str] = field(default_factory=list)
    #: The releases helm installed (`charts="helm"`), one line each.
    releases: list[str] = field(default_factory=list)


def _kubernetes_clients(params: Parameters) -> Any:
    from kubernetes import config
    from kubernetes.config.config_exception import ConfigException

    path = os.path.expanduser(params.k8s_config_path)
    try:
        return config.new_client_from_config(config_file=path, context=params.k8s_config_context)
    except (ConfigException, OSError) as exc:
        raise DeployError(
            f"kubernetes client: cannot load context {params.k8s_config_context!r} of {path}: {exc}"
        ) from None


def _reader(api_client: Any, namespace: str) -> Callable[[str], Dict | None]:
    from kubernetes.client import AppsV1Api
    from kubernetes.client.exceptions import ApiException

    apps = AppsV1Api(api_client)

    def read(name: str) -> Dict | None:
        try:
            return apps.read_namespaced_deployment(name, namespace).to_dict()  # type: ignore[no-any-return]
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise DeployError(f"reading Deployment {namespace}/{name}: {exc.status} {exc.reason}") from None

    return read


def _find_endpoint(api_client: Any, params: Parameters, service: str | None = None) -> Endpoint:
    """Where clients reach the Service `service` (default: the control plane's)."""
    from kubernetes.client import CoreV1Api
    from kubernetes.client.exceptions import ApiException

    core = CoreV1Api(api_client)
    name, ns = service or params.control_plane.name, params.namespace
    try:
        found = core.read_namespaced_service(name, ns).to_dict()
        nodes = core.list_node().to_dict().get("items") or []
    except ApiException as exc:
        raise DeployError(f"reading Service {ns}/{name} and the nodes: {exc.status} {exc.reason}") from None
    return control_plane_endpoint(found, nodes)


def deploy(
    parameters_file: Path,
    versions_file: Path,
    generated: Path,
    timeout: float | None = None,
    runner: TerraformRunner | None = None,
    *,
    charts: str = "terraform",
    helm_executable: str = helm.EXECUTABLE,
) -> DeployResult:
    """The four steps of the module docstring, the charts installed by Terraform or by helm (`charts`)."""
    if charts not in CHARTS:
        raise DeployError(f"--charts {charts}: expected {' or '.join(CHARTS)}")
    layout = KubernetesLayout(generated.resolve())
    check_same_charts_way(layout, charts)
    ready = prepare(parameters_file, versions_file, layout, charts)
    terraform = runner or TerraformRunner(layout)
    by_helm = (
        plan_chart_install(
            ready.params, ready.versions, parameters_file, terraform.working_dir, helm_executable
        )
        if charts == "helm"
        else None
    )
    # recorded before anything is installed, so that destroy undoes a deploy that stopped half-way too
    write_charts_record(layout, ChartsRecord(charts, tuple(by_helm.charts) if by_helm else ()))
    terraform.init()
    releases: list[str] = []
    if by_helm is not None:
        if by_helm.needs_namespace:
            terraform.apply(ready.tfvars, targets=[NAMESPACE_RESOURCE])
        releases = install_charts(by_helm)
    terraform.apply(ready.tfvars)
    api_client = _kubernetes_clients(ready.params)
    wait_ready(
        _reader(api_client, ready.params.namespace),
        deployment_names(ready.params),
        DEFAULT_TIMEOUT if timeout is None else timeout,
    )
    endpoint = _find_endpoint(api_client, ready.params)
    urls = None
    if ready.params.ingress is not None:
        ingress = _find_endpoint(api_client, ready.params, str(ready.params.ingress.get("name", "ingress")))
        ctx = Context(ready.params, ready.versions, parameters_file, Credentials(), layout.certificates)
        urls = operator_urls(ctx, ingress.url(False))
    output, cli = write_kubernetes_outputs(layout.generated, endpoint, ready.tls, ready.certificates, urls)
    warnings = [w for w in [uncovered_host(endpoint, ready.certificates)] if w and ready.tls.tls]
    return DeployResult(endpoint, endpoint.url(ready.tls.tls), output, cli, warnings, releases)


def destroy(
    parameters_file: Path,
    versions_file: Path,
    generated: Path,
    runner: TerraformRunner | None = None,
    *,
    helm_executable: str = helm.EXECUTABLE,
) -> list[str]:
    """`terraform destroy -auto-approve` with the same variables (Terraform needs them to evaluate the
    configuration) and, after a `charts="helm"` deploy, helm's uninstall of its releases (see the module
    docstring for the order); helm is checked before terraform runs. Certificates and outputs stay under the
    generated folder; the charts' record goes. Returns a line per release uninstalled."""
    layout = KubernetesLayout(generated.resolve())
    record = read_charts_record(layout)
    ready = prepare(parameters_file, versions_file, layout, record.installed_by)
    terraform = runner or TerraformRunner(layout)
    client = None
    if record.installed_by == "helm" and record.charts:
        why = (
            f"; this deployment's charts were installed with helm ({layout.charts_record}), "
            "and destroy uninstalls them with it"
        )
        client = connect_helm(ready.params, helm_executable, why)
    terraform.init()
    uninstalled: list[str] = []
    if client is not None:
        if users := record.users():  # never an empty target list: that would destroy everything first
            terraform.destroy(ready.tfvars, targets=users)
        uninstalled = uninstall_charts(client, record.charts)
    terraform.destroy(ready.tfvars)
    layout.charts_record.unlink(missing_ok=True)
    return uninstalled
