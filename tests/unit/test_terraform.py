"""The Terraform of the Kubernetes target, checked offline.

`terraform validate` needs the kubernetes, helm and kubectl providers, which `terraform init` downloads: not
possible offline, so it is not run here. What is checked: formatting (`terraform fmt -check`, when terraform
is on PATH), every .tf file parses (python-hcl2), every variable of parameters.tfvars and versions.tfvars.json
(and those `armonik-deploy deploy` adds) is declared, every module source exists and receives its required
variables (also the calls modules make to the shared `workload` module), every module folder is used, the
ConfigMaps and credential Secrets Terraform creates are the renderer's, and the TLS settings reach the control
plane and the polling agents.

The modules keep their objects in resource-free files (locals, module calls, outputs), which Terraform
evaluates without any provider: with terraform on PATH, a copy of those files is applied in a scratch folder
and what it computes is compared with what the renderer makes from the same parameters (the ActiveMQ and
MinIO workloads and Services, the storage settings, the TLS Secrets' files, settings and mounts, MongoDB's TLS
Secrets, its PerconaServerMongoDB TLS and the mounts of its authority, and KEDA's chart values, which must be
helm.py's).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import hcl2
import kubernetes_validate
import pytest

import armonik_core.tls
from armonik_deploy.certificates import ServerIdentity, ensure_certificates
from armonik_deploy.kubernetes import Rendered, helm, render
from armonik_deploy.kubernetes.apply import QUICK_DEPLOY as APPLY_WORKING_DIR
from armonik_deploy.kubernetes.apply import make_certificates, terraform_variables
from armonik_deploy.kubernetes.chart_releases import CHART_USERS, INSTALL_CHARTS_VARIABLE, declares_variable
from armonik_deploy.kubernetes.settings import (
    CLIENT_TLS_SECRET,
    CONTROL,
    CORE,
    MONGODB_CA_SECRET,
    MONGODB_TLS_SECRET,
    POLLING,
    SERVER_TLS_SECRET,
)
from armonik_deploy.parameters import Versions, load_parameters, load_versions, read_variables
from armonik_deploy.tls import read_ingress_tls
from tests.support import render_file

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infrastructure"
QUICK_DEPLOY = INFRA / "quick-deploy" / "localhost"
TF_FILES = sorted(INFRA.rglob("*.tf"))
TERRAFORM = shutil.which("terraform")
needs_terraform = pytest.mark.skipif(TERRAFORM is None, reason="terraform is not on PATH")
#: The TLS settings the processes read (armonik_core.tls names each one in a constant).
TLS_SETTINGS = {
    value
    for name, value in vars(armonik_core.tls).items()
    if name.isupper() and isinstance(value, str) and value.startswith("ControlPlane__Tls__")
}


def parse(path: Path) -> dict[str, Any]:
    return hcl2.loads(path.read_text())  # type: ignore[no-any-return]


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


def unquote(value: str) -> str:
    return value.strip('"')


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


# -- the wiring of main.tf ------------------------------------------------------------------------------------
STORAGE_SETS = {
    "activemq+minio": """
activemq = {
  user = "broker", max_priority = 5, prefix = "armonik", activemq_opts_memory = "-Xms512m -Xmx1g"
  limits = { cpu = "1", memory = "2Gi" }, node_selector = { pool = "brokers" }
}
minio = { login = "admin", default_bucket = "results", requests = { memory = "1Gi" } }
""",
    "rabbitmq+redis+mongodb": """
rabbitmq = { max_priority = 10, prefix = "armonik" }
redis = { max_memory = "2gb", instance_name = "armonik" }
mongodb = { cluster = { database_name = "armonik" } }
""",
}
COMMON_PARAMETERS = """
namespace = "armonik-test"
compute_plane = { default = { worker = [{ image = "armonik-samples-worker", command = ["x"] }] } }
"""
#: Certificates of 2048-bit keys (generated ten times faster than the default 4096) where TLS is not tested.
FAST_KEYS = "ingress = { certificate_key_size = 2048 }\n"
#: Per storage service: the settings its module's `env` output gives the core processes.
SERVICE_SETTINGS = {
    "mongodb": ("Components__TableStorage", "MongoDB__"),
    "rabbitmq": ("Components__QueueStorage", "Amqp__"),
    "activemq": ("Components__QueueStorage", "Amqp__"),
    "redis": ("Components__ObjectStorage", "Redis__"),
    "minio": ("Components__ObjectStorage", "S3__"),
}


@pytest.fixture(scope="module")
def versions() -> Versions:
    return load_versions(QUICK_DEPLOY / "versions.tfvars.json")


def render_as_deployed(file: Path, versions: Versions) -> tuple[Rendered, dict[str, Any]]:
    """The renderer's objects, made with the certificates `armonik-deploy deploy` generates for the
    parameters, and the `certificates` variable deploy gives Terraform (the same files): the renderer keeps
    each of them (it certifies the same identities), so both read the same certificates."""
    params = load_parameters(file)
    folder = file.parent / "certificates"
    made = make_certificates(params, read_ingress_tls(params, file), folder)
    rendered = render(params, versions, file, certificates=folder)
    assert make_certificates(params, read_ingress_tls(params, file), folder).regenerated == ()
    return rendered, terraform_variables({}, {}, made)["certificates"]


@pytest.fixture(scope="module", params=sorted(STORAGE_SETS))
def storage(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A parameters file with storage blocks (in a folder of its own)."""
    file = tmp_path_factory.mktemp("storage") / "parameters.tfvars"
    file.write_text(COMMON_PARAMETERS + FAST_KEYS + STORAGE_SETS[request.param])
    return file


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


# -- Terraform evaluated without a cluster --------------------------------------------------------------------
def terraform(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert TERRAFORM is not None
    env = {**os.environ, "CHECKPOINT_DISABLE": "1", "TF_IN_AUTOMATION": "1"}
    return subprocess.run(
        [TERRAFORM, *args], cwd=folder, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def resource_free(path: Path) -> bool:
    return not {"resource", "data", "provider", "terraform"} & set(parse(path))


def harness(folder: Path) -> str:
    """An output `harness` of a module: its locals and the outputs of the modules it calls."""
    bodies = [parse(path) for path in folder.glob("*.tf")]
    local_names = sorted(
        {n for b in bodies for e in b.get("locals", []) for n in e if not n.startswith("__")}
    )
    calls = sorted({unquote(n) for b in bodies for e in b.get("module", []) for n in e})
    values = ", ".join(f"{n} = local.{n}" for n in local_names)
    modules = ", ".join(f"{n} = module.{n}" for n in calls)
    return f'output "harness" {{\n  value = {{ locals = {{ {values} }}, modules = {{ {modules} }} }}\n}}\n'


def evaluable_modules(root: Path) -> None:
    """The resource-free files of infrastructure/modules under `root/modules`, each module given `harness`."""
    for path in sorted((INFRA / "modules").rglob("*.tf")):
        if resource_free(path):
            target = root / "modules" / path.relative_to(INFRA / "modules")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    for folder in {p.parent for p in (root / "modules").rglob("*.tf")}:
        (folder / "harness.tf").write_text(harness(folder))


def main_tf_module(name: str) -> str:
    """The `module "<name>"` block of main.tf, its sources and namespace made those of an evaluation root."""
    text = (QUICK_DEPLOY / "main.tf").read_text()
    start = text.index(f'module "{name}" {{')
    block = text[start : text.index("\n}\n", start) + 3]
    block = block.replace('"../../modules/', '"./modules/')
    return block.replace("kubernetes_namespace.armonik.metadata[0].name", "var.namespace")


def apply(root: Path, main: str, variables: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    """`terraform init` and `apply` of `main` next to the evaluable modules (no provider is needed)."""
    evaluable_modules(root)
    (root / "main.tf").write_text(main)
    (root / "values.tfvars.json").write_text(json.dumps(variables))
    init = terraform(root, "init", "-input=false", "-no-color")
    assert init.returncode == 0, init.stdout + init.stderr
    return terraform(
        root, "apply", "-auto-approve", "-input=false", "-no-color", "-var-file=values.tfvars.json"
    )


def evaluate(root: Path, main: str, variables: dict[str, Any]) -> dict[str, Any]:
    result = apply(root, main, variables)
    assert result.returncode == 0, result.stdout + result.stderr
    outputs = json.loads(terraform(root, "output", "-json").stdout)
    return {name: output["value"] for name, output in outputs.items()}


def variable_blocks(*names: str) -> str:
    return "".join(f'variable "{name}" {{\n  type = any\n}}\n' for name in names)


def normalized(manifest: dict[str, Any]) -> dict[str, Any]:
    """A manifest with its lists of named ports in name order (Terraform iterates a map's keys sorted)."""

    def walk(value: Any, key: str = "") -> Any:
        if isinstance(value, dict):
            return {k: walk(v, k) for k, v in value.items()}
        if isinstance(value, list):
            items = [walk(v) for v in value]
            return sorted(items, key=lambda p: p["name"]) if key == "ports" else items
        return value

    return walk(manifest)  # type: ignore[no-any-return]


@needs_terraform
def test_storage_modules_make_the_renderer_objects_and_settings(
    storage: Path, versions: Versions, tmp_path: Path
) -> None:
    """main.tf's calls of the storage modules, evaluated on the parameters' blocks: the same workloads and
    Services as the renderer's (and valid for Kubernetes), and the same settings in core-configmap."""
    rendered, certificates = render_as_deployed(storage, versions)
    blocks = {k: v for k, v in read_variables(storage).items() if k in SERVICE_SETTINGS}
    main = variable_blocks("namespace", "helm_charts", "install_helm_charts", "certificates", *blocks) + (
        f"locals {{\n  default_tags = {json.dumps(versions.default_tags())}\n"
        f"  passwords = {json.dumps(dict.fromkeys(blocks, 'password'))}\n}}\n"
    )
    main += "".join(main_tf_module(name) for name in blocks)
    main += "".join(f'output "{name}" {{\n  value = module.{name}[0]\n}}\n' for name in blocks)
    variables = {
        "namespace": "armonik-test",
        "helm_charts": read_variables(QUICK_DEPLOY / "versions.tfvars.json")["helm_charts"],
        "install_helm_charts": True,
        "certificates": certificates,
        **blocks,
    }
    modules = evaluate(tmp_path, main, variables)

    core = rendered.get("ConfigMap", CORE)["data"]
    for name, module in modules.items():
        component, prefix = SERVICE_SETTINGS[name]
        assert module["env"] == {k: v for k, v in core.items() if k == component or k.startswith(prefix)}, (
            name
        )
        if "workload" not in module["harness"]["modules"]:
            continue  # MongoDB: the operator's resource, not a workload
        made = module["harness"]["modules"]["workload"]["manifests"]
        terraform_objects = {
            (m["kind"], m["metadata"]["name"]): m for m in [made["workload"], *made["services"].values()]
        }
        renderer_objects = {
            (m["kind"], m["metadata"]["name"]): m
            for m in rendered.manifests
            if m["kind"] in ("Deployment", "StatefulSet", "Service")
            and m["metadata"]["labels"]["service"] == name
        }
        assert set(terraform_objects) == set(renderer_objects), name
        for key, manifest in terraform_objects.items():
            assert normalized(manifest) == normalized(renderer_objects[key]), key
            kubernetes_validate.validate(manifest, "1.32", strict=True)


TLS_CASES = {"plain": (False, False), "tls": (True, False), "mtls": (True, True)}
TLS_MAIN = (
    variable_blocks("namespace", "ingress", "certificates")
    + main_tf_module("control_plane_tls")
    + """
module "control_plane" {
  source         = "./modules/control-plane"
  namespace      = var.namespace
  image          = "armonik-control-plane"
  tag            = "test"
  config_maps    = ["control-plane-configmap"]
  secret_volumes = module.control_plane_tls.server_volumes
}
module "compute_plane" {
  source             = "./modules/compute-plane"
  namespace          = var.namespace
  partition          = "default"
  prometheus_url     = "http://prometheus:9090"
  agent_config_maps  = ["polling-configmap"]
  worker_config_maps = ["worker-configmap"]
  polling_agent      = { image = "armonik-polling-agent:test", limits = {}, requests = {} }
  workers            = [{ name = "worker", image = "armonik-samples-worker:test", limits = {}, requests = {} }]
  secret_volumes     = module.control_plane_tls.client_volumes
}
output "tls" {
  value = module.control_plane_tls
}
output "control_plane" {
  value = module.control_plane.harness.modules.workload.manifests.workload
}
output "compute_plane" {
  value = module.compute_plane.harness.modules.workload.manifests.workload
}
"""
)


def secret_mounts(workload: dict[str, Any], secret: str) -> dict[str, tuple[Any, Any]]:
    """Container name -> (volume, mount) of the Secret `secret` in the workload's pod, for containers that
    mount it."""
    pod = workload["spec"]["template"]["spec"]
    volume = next(
        (v for v in pod.get("volumes", []) if v.get("secret", {}).get("secretName") == secret), None
    )
    if volume is None:
        return {}
    return {
        c["name"]: (volume, mount)
        for c in pod["containers"]
        for mount in c.get("volumeMounts", [])
        if mount["name"] == volume["name"]
    }


@needs_terraform
@pytest.mark.parametrize("case", sorted(TLS_CASES))
def test_tls_module_makes_the_renderer_secrets_settings_and_mounts(
    case: str, versions: Versions, tmp_path: Path
) -> None:
    """With the certificates `armonik-deploy deploy` generates and passes: the two Secrets hold the files the
    renderer puts in them (the custom client authority bundled under mTLS), the ControlPlane__Tls__* settings
    armonik_core.tls reads are the renderer's, and the Secrets are mounted where the settings point, in the
    control plane and the polling agent only."""
    tls, mtls = TLS_CASES[case]
    other = ensure_certificates(tmp_path / "other", key_size=2048)
    (tmp_path / "extra-ca.pem").write_text("\n" + other.ca.certificate.read_text() + "\n\n")
    file = tmp_path / "parameters.tfvars"
    file.write_text(
        COMMON_PARAMETERS + f"ingress = {{ tls = {str(tls).lower()}, mtls = {str(mtls).lower()}, "
        'certificate_key_size = 2048, custom_client_ca_file = "extra-ca.pem" }\n'
    )
    params = load_parameters(file)
    certificates = make_certificates(params, read_ingress_tls(params, file), tmp_path / "certificates")
    rendered = render(params, versions, file, certificates=tmp_path / "certificates")
    variables = {
        "namespace": params.namespace,
        "ingress": read_variables(file)["ingress"],
        "certificates": terraform_variables({}, {}, certificates)["certificates"],
    }
    out = evaluate(tmp_path, TLS_MAIN, variables)
    module, made = out["tls"], out["tls"]["harness"]["locals"]

    renderer_secrets = {
        m["metadata"]["name"]: m for m in rendered.of_kind("Secret") if m["metadata"]["name"].endswith("-tls")
    }
    assert (
        sorted(module["secrets"])
        == sorted(renderer_secrets)
        == (sorted([CLIENT_TLS_SECRET, SERVER_TLS_SECRET]) if tls else [])
    )
    for name, secret in renderer_secrets.items():
        assert made["secrets"][name]["type"] == secret["type"]
        assert made["files"][name] == {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    if mtls:
        assert made["files"][SERVER_TLS_SECRET]["ca.crt"].count("BEGIN CERTIFICATE") == 2

    control = rendered.get("ConfigMap", CONTROL)["data"]
    polling = rendered.get("ConfigMap", POLLING)["data"]
    assert module["server_env"] == {k: v for k, v in control.items() if k in TLS_SETTINGS}
    assert module["client_env"] == {k: v for k, v in polling.items() if k in TLS_SETTINGS}
    assert (set(module["server_env"]) | set(module["client_env"]) == TLS_SETTINGS) is mtls
    assert polling["ControlPlane__Endpoint"].startswith(f"{module['scheme']}://")

    for output, service, secret_name, container in (
        ("control_plane", "control-plane", SERVER_TLS_SECRET, "control-plane"),
        ("compute_plane", "compute-plane", CLIENT_TLS_SECRET, "polling-agent"),
    ):
        renderer_workload = next(
            m for m in rendered.of_kind("Deployment") if m["metadata"]["labels"]["service"] == service
        )
        expected = secret_mounts(renderer_workload, secret_name)
        assert secret_mounts(out[output], secret_name) == expected
        assert set(expected) == ({container} if tls else set())


@needs_terraform
@pytest.mark.parametrize(
    ("ingress", "certificates", "message"),
    [
        ({"tls": True}, None, "needs the certificates variable"),
        ({"mtls": True}, None, "needs ingress.tls = true"),
    ],
)
def test_tls_module_refuses_what_it_cannot_serve(
    ingress: dict[str, Any], certificates: Any, message: str, tmp_path: Path
) -> None:
    variables = {"namespace": "armonik", "ingress": ingress, "certificates": certificates}
    result = apply(tmp_path, TLS_MAIN, variables)
    assert result.returncode != 0
    assert message in " ".join(result.stderr.split())


# -- MongoDB's TLS -------------------------------------------------------------------------------------------
def main_tf_expression(block: str, argument: str) -> str:
    """The expression main.tf gives `argument` in `block` (its text, e.g. main_tf_module(...))."""
    found = re.search(rf"^\s*{argument}\s*=\s*(.+)$", block, re.M)
    assert found, argument
    return found.group(1)


def core_process_modules() -> str:
    """The control plane, one partition and the metrics exporter, mounting what main.tf mounts in them."""
    top = (QUICK_DEPLOY / "main.tf").read_text()
    volumes = {
        name: main_tf_expression(main_tf_module(name), "secret_volumes")
        for name in ("control_plane", "compute_plane", "metrics_exporter")
    }
    return f"""
locals {{
  mongodb_volumes = {main_tf_expression(top[top.index("locals {") :], "mongodb_volumes")}
}}
module "control_plane" {{
  source         = "./modules/control-plane"
  namespace      = var.namespace
  image          = "armonik-control-plane"
  tag            = "test"
  config_maps    = ["control-plane-configmap"]
  secret_volumes = {volumes["control_plane"]}
}}
module "compute_plane" {{
  source             = "./modules/compute-plane"
  namespace          = var.namespace
  partition          = "default"
  prometheus_url     = "http://prometheus:9090"
  agent_config_maps  = ["polling-configmap"]
  worker_config_maps = ["worker-configmap"]
  polling_agent      = {{ image = "armonik-polling-agent:test", limits = {{}}, requests = {{}} }}
  workers            = [{{ name = "worker", image = "armonik-samples-worker:test", limits = {{}}, requests = {{}} }}]
  secret_volumes     = {volumes["compute_plane"]}
}}
module "metrics_exporter" {{
  source         = "./modules/monitoring/metrics-exporter"
  namespace      = var.namespace
  image          = "armonik-metrics-exporter:test"
  config_maps    = ["metrics-exporter-configmap"]
  secret_volumes = {volumes["metrics_exporter"]}
}}
"""


MONGODB_MAIN = (
    variable_blocks("namespace", "ingress", "certificates", "mongodb", "helm_charts", "install_helm_charts")
    + main_tf_module("control_plane_tls")
    + main_tf_module("mongodb")
    + core_process_modules()
    + "".join(
        f'output "{name}" {{\n  value = module.{name}.harness.modules.workload.manifests.workload\n}}\n'
        for name in ("control_plane", "compute_plane", "metrics_exporter")
    )
    + 'output "mongodb" {\n  value = module.mongodb[0]\n}\n'
)


def secret_volume_names(workload: dict[str, Any]) -> list[str]:
    """The pod's Secret volumes in order (the TLS of the control plane, then MongoDB's authority)."""
    return [v["name"] for v in workload["spec"]["template"]["spec"]["volumes"] if "secret" in v]


def mongodb_main(versions: Versions) -> str:
    locals_ = (
        f"  default_tags = {json.dumps(versions.default_tags())}\n" + '  passwords = { mongodb = "pw" }\n'
    )
    return f"locals {{\n{locals_}}}\n" + MONGODB_MAIN


def mongodb_variables(file: Path, certificates: Any) -> dict[str, Any]:
    given = read_variables(file)
    return {
        "namespace": load_parameters(file).namespace,
        "ingress": given["ingress"],
        "certificates": certificates,
        "mongodb": given["mongodb"],
        "helm_charts": read_variables(QUICK_DEPLOY / "versions.tfvars.json")["helm_charts"],
        "install_helm_charts": True,
    }


@needs_terraform
@pytest.mark.parametrize("ingress", ["tls = false", "tls = true, mtls = true"])
def test_mongodb_module_makes_the_renderer_tls_secrets_cluster_tls_and_mounts(
    ingress: str, versions: Versions, tmp_path: Path
) -> None:
    """With the certificates deploy generates: the replica set's Secret and the authority's hold the files
    the renderer puts in them, the PerconaServerMongoDB's TLS and secrets are the renderer's, and the core
    processes mount the authority where MongoDB__CAFile points, as the renderer mounts it (in the same order
    as the control plane's TLS Secret, in the polling agent only)."""
    file = tmp_path / "parameters.tfvars"
    file.write_text(
        COMMON_PARAMETERS
        + f"ingress = {{ {ingress}, certificate_key_size = 2048 }}\n"
        + 'mongodb = { cluster = { database_name = "armonik" } }\n'
    )
    rendered, certificates = render_as_deployed(file, versions)
    out = evaluate(tmp_path / "tf", mongodb_main(versions), mongodb_variables(file, certificates))
    module = out["mongodb"]
    made = module["harness"]["locals"]

    secrets = {name: rendered.get("Secret", name) for name in (MONGODB_TLS_SECRET, MONGODB_CA_SECRET)}
    assert sorted(module["secrets"]) == sorted(secrets)
    for name, secret in secrets.items():
        assert made["secrets"][name] == secret["type"]
        assert made["files"][name] == {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert secrets[MONGODB_TLS_SECRET]["type"] == "kubernetes.io/tls"
    assert set(made["files"][MONGODB_CA_SECRET]) == {"ca.crt"}  # no key in the core processes' pods
    spec = rendered.get("PerconaServerMongoDB", "mongodb-db-ps")["spec"]
    assert made["cluster_tls"] == spec["tls"] and made["cluster_tls"]["mode"] == "requireTLS"
    assert made["cluster_secrets"] == spec["secrets"]
    assert spec["secrets"]["ssl"] == spec["secrets"]["sslInternal"] == MONGODB_TLS_SECRET
    assert "tls" not in spec["unsafeFlags"]
    # the resource itself needs the kubectl provider: what it is given is checked in its text
    (cluster,) = [
        body["yaml_body"]
        for resource in parse(INFRA / "modules" / "storage" / "mongodb" / "main.tf")["resource"]
        for name, body in resource.get('"kubectl_manifest"', {}).items()
        if name == '"cluster"'
    ]
    assert "tls = local.cluster_tls" in cluster and "secrets = local.cluster_secrets" in cluster
    assert "unsafeFlags = {replsetSize = var.replicas < 3}" in cluster

    (volume,) = module["client_volumes"]
    core = rendered.get("ConfigMap", CORE)["data"]
    assert core["MongoDB__CAFile"] == f"{volume['mount_path']}/ca.crt" and core["MongoDB__Tls"] == "true"
    for output, service, container in (
        ("control_plane", "control-plane", "control-plane"),
        ("compute_plane", "compute-plane", "polling-agent"),
        ("metrics_exporter", "metrics-exporter", "metrics-exporter"),
    ):
        renderer_workload = next(
            m for m in rendered.of_kind("Deployment") if m["metadata"]["labels"]["service"] == service
        )
        expected = secret_mounts(renderer_workload, MONGODB_CA_SECRET)
        assert secret_mounts(out[output], MONGODB_CA_SECRET) == expected
        assert set(expected) == {container}
        assert secret_volume_names(out[output]) == secret_volume_names(renderer_workload)
    init_mounts = secret_mounts(rendered.get("Job", "init"), MONGODB_CA_SECRET)
    assert init_mounts["init"][1]["mountPath"] == volume["mount_path"]


@needs_terraform
def test_mongodb_module_refuses_to_run_without_certificates(versions: Versions, tmp_path: Path) -> None:
    file = tmp_path / "parameters.tfvars"
    file.write_text(COMMON_PARAMETERS + FAST_KEYS + "mongodb = {}\n")
    result = apply(tmp_path, mongodb_main(versions), mongodb_variables(file, None))
    assert result.returncode != 0
    assert "MongoDB serves TLS only" in " ".join(result.stderr.split())


# -- KEDA's chart values -------------------------------------------------------------------------------------
KEDA_MAIN = (
    variable_blocks("keda", "helm_charts", "install_helm_charts")
    + main_tf_module("keda")
    + """
module "keda_elsewhere" {
  source           = "./modules/keda"
  chart_repository = "https://example.org/charts"
  chart_version    = "1.0.0"
  keda_image       = "localhost:5000/keda"
  keda_tag         = "1.0"
  apiserver_image  = "kedacore/keda-metrics-apiserver"
  apiserver_tag    = "2.0"
}
output "keda" {
  value = module.keda[0].harness.locals.values
}
output "elsewhere" {
  value = module.keda_elsewhere.harness.locals.values
}
"""
)


@needs_terraform
def test_keda_module_gives_the_chart_helm_py_s_values(versions: Versions, tmp_path: Path) -> None:
    """The values of Terraform's KEDA release are helm.py's: each image split into the registry and the
    repository the chart joins (`<registry>/<repository>:<tag>`), so that the image pulled is the versions'
    one, not `ghcr.io/ghcr.io/...`; an image without a registry host keeps an empty registry."""
    file = tmp_path / "parameters.tfvars"
    file.write_text(COMMON_PARAMETERS + 'keda = { namespace = "autoscaling" }\n')
    params = load_parameters(file)
    main = f"locals {{\n  default_tags = {json.dumps(versions.default_tags())}\n}}\n" + KEDA_MAIN
    variables = {
        "keda": read_variables(file).get("keda", {}),
        "helm_charts": read_variables(QUICK_DEPLOY / "versions.tfvars.json")["helm_charts"],
        "install_helm_charts": True,
    }
    out = evaluate(tmp_path / "tf", main, variables)
    assert out["keda"] == helm.keda_chart(params, versions).values
    for key, image in (("keda", helm.KEDA_IMAGE), ("metricsApiServer", helm.KEDA_METRICS_IMAGE)):
        given = out["keda"]["image"][key]
        assert f"{given['registry']}/{given['repository']}:{given['tag']}" == (
            f"{image}:{versions.tag_of(image)}"
        )
    assert out["elsewhere"]["image"] == {
        "keda": helm.image_values("localhost:5000/keda", "1.0"),
        "metricsApiServer": helm.image_values("kedacore/keda-metrics-apiserver", "2.0"),
    }


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
