"""The Terraform of the Kubernetes target, checked offline.

`terraform validate` needs the kubernetes, helm and kubectl providers, which `terraform init` downloads: not
possible offline, so it is not run here. What is checked: formatting (`terraform fmt -check`, when terraform
is on PATH), every .tf file parses (python-hcl2), every variable of parameters.tfvars and versions.tfvars.json
(and those `armonik-deploy deploy` adds) is declared, every module source exists and receives its required
variables (also the calls modules make to the shared `workload` module), every module folder is used, the
ConfigMaps and credential Secrets Terraform creates are the renderer's, and the TLS settings reach the control
plane and the polling agents.

What Terraform computes, evaluated without a cluster, is compared with the renderer's objects in
`test_terraform_storage_tls` and `test_terraform_mongodb_keda`.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from armonik_deploy.certificates import ServerIdentity, ensure_certificates
from armonik_deploy.kubernetes import helm
from armonik_deploy.kubernetes.apply import QUICK_DEPLOY as APPLY_WORKING_DIR
from armonik_deploy.kubernetes.apply import terraform_variables
from armonik_deploy.kubernetes.chart_releases import CHART_USERS, INSTALL_CHARTS_VARIABLE, declares_variable
from armonik_deploy.kubernetes.settings import CONTROL, POLLING
from armonik_deploy.parameters import Versions, load_parameters, read_variables
from tests.support import render_file
from tests.unit.quick_deploy import QUICK_DEPLOY
from tests.unit.terraform_support import (
    COMMON_PARAMETERS,
    INFRA,
    STORAGE_SETS,
    needs_terraform,
    parse,
    render_as_deployed,
    unquote,
)

TF_FILES = sorted(INFRA.rglob("*.tf"))


def blocks(folder: Path, kind: str) -> dict[str, dict[str, Any]]:
    """The `kind` blocks (variable, module) of a folder's .tf files, by their unquoted label."""
    out: dict[str, dict[str, Any]] = {}
    for path in folder.glob("*.tf"):
        for entry in parse(path).get(kind, []):
            out.update({unquote(k): v for k, v in entry.items()})
    return out


def declared_variables(folder: Path) -> dict[str, dict[str, Any]]:
    return blocks(folder, "variable")


def module_calls(folder: Path) -> dict[str, dict[str, Any]]:
    return blocks(folder, "module")


def all_module_calls(folder: Path) -> list[tuple[str, Path, dict[str, Any]]]:
    """Every module call from `folder` and, in turn, from the modules it calls: (name, called folder, call)."""
    out: list[tuple[str, Path, dict[str, Any]]] = []
    pending, seen = [folder.resolve()], set()
    while pending:
        caller = pending.pop()
        if caller in seen:
            continue
        seen.add(caller)
        for name, call in module_calls(caller).items():
            called = (caller / unquote(call["source"])).resolve()
            out.append((f"{caller.relative_to(INFRA)}: {name}", called, call))
            pending.append(called)
    return out


@needs_terraform
def test_terraform_fmt_check() -> None:
    result = subprocess.run(
        ["terraform", "fmt", "-check", "-recursive", str(INFRA)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", TF_FILES, ids=lambda p: str(p.relative_to(INFRA)))
def test_every_tf_file_parses(path: Path) -> None:
    assert parse(path)


def test_every_variable_of_the_variable_files_is_declared() -> None:
    declared = declared_variables(QUICK_DEPLOY)
    for name in ("parameters.tfvars", "versions.tfvars.json"):
        missing = set(read_variables(QUICK_DEPLOY / name)) - set(declared)
        assert not missing, f"{name}: not declared in variables.tf: {sorted(missing)}"


def test_the_variables_deploy_adds_are_declared(tmp_path: Path) -> None:
    certificates = ensure_certificates(
        tmp_path, [ServerIdentity("control-plane", ["localhost"])], key_size=2048
    )
    added = set(terraform_variables({}, {}, certificates))
    assert added and added <= set(declared_variables(QUICK_DEPLOY))


def test_module_sources_exist_and_get_their_required_variables() -> None:
    calls = module_calls(QUICK_DEPLOY)
    assert {
        "control_plane",
        "control_plane_tls",
        "compute_plane",
        "keda",
        "mongodb",
        "rabbitmq",
        "activemq",
        "redis",
        "minio",
        "prometheus",
    } <= set(calls)
    meta = {"source", "count", "for_each", "depends_on", "providers", "__is_block__"}
    for name, folder, call in all_module_calls(QUICK_DEPLOY):
        assert folder.is_dir() and list(folder.glob("*.tf")), f"module {name}: no module at {folder}"
        variables = declared_variables(folder)
        required = {v for v, body in variables.items() if "default" not in body}
        given = set(call) - meta
        assert required <= given, f"module {name}: missing {sorted(required - given)}"
        assert given <= set(variables), f"module {name}: unknown {sorted(given - set(variables))}"


def test_workloads_are_built_by_the_shared_module() -> None:
    """Every Deployment, StatefulSet and Service of the modules comes from `workload`: written once."""
    workload = (INFRA / "modules" / "workload").resolve()
    callers = {caller for caller, folder, _ in all_module_calls(QUICK_DEPLOY) if folder == workload}
    assert len(callers) >= 6, callers
    # the top-level `kind` of a yamlencode'd manifest (a ScaledObject's scaleTargetRef is nested deeper)
    own_kind = re.compile(r'^ {4}kind\s*=\s*"(Deployment|StatefulSet|Service)"', re.M)
    for path in (INFRA / "modules").rglob("*.tf"):
        if path.parent.resolve() != workload:
            assert not own_kind.search(path.read_text()), f"{path}: a workload or Service of its own"


def test_every_module_folder_is_used() -> None:
    used = {folder for _, folder, _ in all_module_calls(QUICK_DEPLOY)}
    folders = {p.parent.resolve() for p in (INFRA / "modules").rglob("main.tf")}
    assert folders == used


def test_terraform_config_maps_are_the_renderer_ones(tmp_path: Path) -> None:
    file = QUICK_DEPLOY / "parameters.tfvars"
    rendered = render_file(file, tmp_path)
    # The operators' stack (ingress, GUI, Grafana, Seq) is rendered only, not in the Terraform modules yet.
    operators = {"prometheus-configmap", "ingress-static", "ingress-nginx"}
    renderer = {m["metadata"]["name"] for m in rendered.of_kind("ConfigMap")} - operators
    text = (QUICK_DEPLOY / "main.tf").read_text()
    block = text[text.index("config_maps = {") :]
    block = block[: block.index("\n  }\n")]
    terraform = set(re.findall(r'^\s{4}"([a-z-]+)"\s*=', block, re.M))
    assert terraform == renderer
    compute_plane = "".join(p.read_text() for p in (INFRA / "modules" / "compute-plane").glob("*.tf"))
    for name in ("compute-plane-${var.partition}", "${var.partition}-compute-plane", "polling-agent"):
        assert name in compute_plane


def main_locals() -> dict[str, Any]:
    return {k: v for entry in parse(QUICK_DEPLOY / "main.tf")["locals"] for k, v in entry.items()}


def test_credential_secrets_are_the_renderer_ones(storage: Path, versions: Versions) -> None:
    """Each storage service's Secret holds the renderer's keys under the renderer's name: the core processes
    read them with envFrom, the service's own pod with secretKeyRef."""
    rendered, _ = render_as_deployed(storage, versions)
    renderer = {
        m["metadata"]["name"]: set(m["stringData"])
        for m in rendered.of_kind("Secret")
        if m["metadata"]["name"].endswith("-credentials")
    }
    expression = main_locals()["credentials"]
    terraform = {
        name: set(re.findall(r"(\w+__\w+) =", body))
        for name, body in re.findall(r'"([a-z0-9]+-credentials)" = \{([^}]*)\}', expression)
    }
    assert renderer and {name: terraform.get(name) for name in renderer} == renderer


def test_tls_reaches_the_control_plane_and_the_agents_in_main_tf() -> None:
    """The settings of the TLS module go to the ConfigMaps the renderer puts them in, its volumes to the
    control plane and the polling agents, and its scheme to the agents' endpoint and the output."""
    config_maps = main_locals()["config_maps"]
    control, polling = config_maps[f'"{CONTROL}"'], config_maps[f'"{POLLING}"']
    assert "module.control_plane_tls.server_env" in control and "client_env" not in control
    assert "module.control_plane_tls.client_env" in polling and "server_env" not in polling
    assert re.search(r"ControlPlane__Endpoint = \"\$\{module\.control_plane_tls\.scheme\}://", polling)
    calls = module_calls(QUICK_DEPLOY)
    assert "module.control_plane_tls.server_volumes" in calls["control_plane"]["secret_volumes"]
    assert "module.control_plane_tls.client_volumes" in calls["compute_plane"]["secret_volumes"]
    assert "module.control_plane_tls.scheme" in (QUICK_DEPLOY / "outputs.tf").read_text()
    assert calls["control_plane_tls"]["certificates"] == "${var.certificates}"


def main_tf_block(start: str) -> str:
    """The text of main.tf's top-level block that starts with `start` (e.g. `resource "kubernetes_job" ...`)."""
    text = (QUICK_DEPLOY / "main.tf").read_text()
    begin = text.index(start)
    return text[begin : text.index("\n}\n", begin) + 3]


def test_mongodb_tls_reaches_every_core_process_in_main_tf() -> None:
    """The authority of MongoDB's certificate is mounted by the processes reading core-configmap (where
    MongoDB__CAFile is): the control plane, the polling agents, the metrics exporter and the init job."""
    assert (
        main_locals()["mongodb_volumes"] == "${var.mongodb != null ? module.mongodb[0].client_volumes : []}"
    )
    calls = module_calls(QUICK_DEPLOY)
    for name in ("control_plane", "compute_plane", "metrics_exporter"):
        assert "local.mongodb_volumes" in calls[name]["secret_volumes"], name
    assert calls["mongodb"]["certificates"] == "${var.certificates}"
    init = main_tf_block('resource "kubernetes_job" "init" {')
    assert init.count("for_each = local.mongodb_volumes") == 2  # the volume, and its mount
    assert '"core-configmap"' in init


# -- the charts: Terraform's, or helm's with --charts helm ----------------------------------------------------
def test_install_helm_charts_is_declared_so_that_deploy_with_helm_charts_can_run() -> None:
    declared = declared_variables(QUICK_DEPLOY)[INSTALL_CHARTS_VARIABLE]
    assert (declared["type"], declared["default"]) == ("bool", True)
    # the check `armonik-deploy deploy --charts helm` makes before anything runs
    assert APPLY_WORKING_DIR == QUICK_DEPLOY and declares_variable(QUICK_DEPLOY, INSTALL_CHARTS_VARIABLE)


def test_every_helm_release_is_left_out_without_install_helm_charts() -> None:
    """Each module holding a helm_release is called only with install_helm_charts, or its release counts on
    a variable main.tf sets from it: with `--charts helm` (install_helm_charts = false) Terraform installs no
    chart."""
    releases = {
        path.parent.resolve(): body
        for path in (INFRA / "modules").rglob("*.tf")
        for resource in parse(path).get("resource", [])
        for body in resource.get('"helm_release"', {}).values()
    }
    assert len(releases) == 2
    calls = {folder: call for _, folder, call in all_module_calls(QUICK_DEPLOY)}
    for folder, release in releases.items():
        call = calls[folder]
        switch = re.fullmatch(r"\$\{var\.(\w+) \? 1 : 0\}", str(release.get("count", "")))
        if switch:
            assert call[switch.group(1)] == f"${{var.{INSTALL_CHARTS_VARIABLE}}}", folder
        else:
            assert call.get("count") == f"${{var.{INSTALL_CHARTS_VARIABLE} ? 1 : 0}}", folder


def test_the_modules_destroyed_before_helm_uninstalls_hold_what_needs_the_charts(
    versions: Versions, tmp_path: Path
) -> None:
    """`destroy` after `--charts helm` destroys CHART_USERS[kind] before uninstalling the charts (their
    controllers finish those deletions): every kind a chart is needed by has its module, which holds the
    resources of that kind."""
    file = tmp_path / "parameters.tfvars"
    file.write_text(COMMON_PARAMETERS + STORAGE_SETS["rabbitmq+redis+mongodb"])
    params = load_parameters(file)
    kinds = {kind for chart in helm.required_charts(params, versions, file) for kind in chart.needed_by}
    kinds |= set(helm.keda_chart(params, versions).needed_by)
    assert kinds == set(CHART_USERS)
    calls = {f"module.{name}": call for name, call in module_calls(QUICK_DEPLOY).items()}
    for kind, module in CHART_USERS.items():
        folder = (QUICK_DEPLOY / unquote(calls[module]["source"])).resolve()
        text = "".join(path.read_text() for path in folder.glob("*.tf"))
        assert re.search(rf'kind\s*=\s*"{kind}"', text), (kind, module)


def test_the_compute_gateway_has_its_port_service_and_secrets_as_the_renderer_gives_them(
    tmp_path: Path,
) -> None:
    main = (QUICK_DEPLOY / "main.tf").read_text()
    assert re.search(r'ComputeGateway__Port\s*=\s*"1081"', main)
    endpoint = r'ComputeGateway__Endpoint\s*=\s*"\$\{module\.control_plane_tls\.scheme\}://compute-gateway\.'
    assert re.search(endpoint, main)
    assert 'resource "kubernetes_secret" "agent_credential"' in main
    assert "kubernetes_secret.agent_credential[each.key]" in main  # each partition's agents, their own only
    assert 'resource "kubernetes_network_policy_v1" "control_plane"' in main
    control_plane = (QUICK_DEPLOY.parents[1] / "modules" / "control-plane" / "main.tf").read_text()
    assert "gateway = 1081" in control_plane and 'name = "compute-gateway"' in control_plane
    from armonik_core.gateway.auth import agent_credential
    from armonik_deploy.kubernetes.apply import gateway_variables

    first = gateway_variables(tmp_path, ["default", "gpu"])
    assert gateway_variables(tmp_path, ["default", "gpu"]) == first  # kept across deployments
    secret = first["secret"].encode()
    assert first["credentials"] == {p: agent_credential(secret, p) for p in ("default", "gpu")}
