"""`armonik-deploy deploy --target kubernetes`: certificates, Terraform, readiness, and the client's outputs.

The steps, each failing with a `DeployError` that names it (1 and 2 in `kubernetes.terraform`, 3 in
`kubernetes.readiness`, 4 in `kubernetes.endpoint`; this module runs them, and keeps their names importable):

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

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from armonik_deploy.certificates import Certificates
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
from armonik_deploy.kubernetes.endpoint import (
    Endpoint,
    control_plane_endpoint,
    uncovered_host,
    write_kubernetes_outputs,
)
from armonik_deploy.kubernetes.layout import DeployError, KubernetesLayout
from armonik_deploy.kubernetes.operators import operator_urls
from armonik_deploy.kubernetes.readiness import deployment_names, deployment_status, wait_ready
from armonik_deploy.kubernetes.settings import running_services
from armonik_deploy.kubernetes.terraform import (
    QUICK_DEPLOY,
    TerraformRunner,
    gateway_variables,
    make_certificates,
    terraform_error,
    terraform_variables,
    write_tfvars,
)
from armonik_deploy.parameters import (
    Parameters,
    ParametersError,
    Versions,
    load_parameters,
    load_versions,
    read_variables,
)
from armonik_deploy.tls import IngressTls, read_ingress_tls

#: What the steps' modules define, importable from here as before.
__all__ = [
    "QUICK_DEPLOY",
    "DeployError",
    "Endpoint",
    "KubernetesLayout",
    "TerraformRunner",
    "control_plane_endpoint",
    "deploy",
    "deployment_status",
    "destroy",
    "make_certificates",
    "prepare",
    "terraform_error",
    "terraform_variables",
    "uncovered_host",
    "wait_ready",
    "write_kubernetes_outputs",
]

DEFAULT_TIMEOUT = 600.0

#: The deployment's namespace in the quick-deploy, created alone first when a chart is installed into it.
NAMESPACE_RESOURCE = "kubernetes_namespace.armonik"

Dict = Mapping[str, Any]


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
    running = sorted(running_services(params))
    if running:
        # The quick-deploy's storage modules deploy a service for every block; the renderer (`render`, the
        # podman target) is what connects to one that runs already.
        raise ParametersError(
            parameters_file,
            running[0],
            "gives the address of a running service, which the Kubernetes deployment does not use: it deploys "
            "the storage services itself (leave out host, endpoint_url and connection_string here; the podman "
            "target and `render` take them)",
        )
    tls = read_ingress_tls(params, parameters_file)
    certificates = make_certificates(params, tls, layout.certificates, parameters_file)
    variables = terraform_variables(
        read_variables(parameters_file), read_variables(versions_file), certificates
    )
    variables["compute_gateway"] = gateway_variables(layout.generated, list(params.compute_plane))
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
        urls = operator_urls(ctx, ingress.url(ready.tls.tls))  # nginx serves HTTPS with ingress.tls
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
