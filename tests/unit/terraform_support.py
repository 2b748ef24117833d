"""What the Terraform tests share: the .tf files read with python-hcl2, parameters files with storage blocks,
the renderer's objects made as `armonik-deploy deploy` makes them, and Terraform evaluated without a cluster.

The modules keep their objects in resource-free files (locals, module calls, outputs), which Terraform
evaluates without any provider: with terraform on PATH, a copy of those files is applied in a scratch folder
and what it computes is read back, to be compared with what the renderer makes from the same parameters.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import hcl2

import armonik_core.tls
from armonik_deploy.kubernetes import Rendered, render
from armonik_deploy.kubernetes.apply import make_certificates, terraform_variables
from armonik_deploy.parameters import Versions, load_parameters
from armonik_deploy.tls import read_ingress_tls
from tests.support import unavailable
from tests.unit.quick_deploy import QUICK_DEPLOY, ROOT

INFRA = ROOT / "infrastructure"

TERRAFORM = shutil.which("terraform")
P = ParamSpec("P")
R = TypeVar("R")


def needs_terraform(test: Callable[P, R]) -> Callable[P, R]:
    """For a test that runs terraform: skipped where terraform is not on PATH, failed in CI, which has it."""

    @functools.wraps(test)
    def checked(*args: P.args, **kwargs: P.kwargs) -> R:
        if TERRAFORM is None:
            unavailable("terraform is not on PATH", "terraform is not on PATH; CI must have it")
        return test(*args, **kwargs)

    return checked


#: The TLS settings the processes read (armonik_core.tls names each one in a constant).
TLS_SETTINGS = {
    value
    for name, value in vars(armonik_core.tls).items()
    if name.isupper() and isinstance(value, str) and value.startswith("ControlPlane__Tls__")
}


def parse(path: Path) -> dict[str, Any]:
    return hcl2.loads(path.read_text())  # type: ignore[no-any-return]


def unquote(value: str) -> str:
    return value.strip('"')


# -- parameters files and the renderer's objects ------------------------------------------------------------
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


def core_modules(secret_volumes: dict[str, str]) -> str:
    """main.tf's calls of the control plane's, one partition's and (when given its volumes) the metrics
    exporter's modules, for an evaluation root: `secret_volumes` gives each module's expression."""
    blocks = f"""
module "control_plane" {{
  source         = "./modules/control-plane"
  namespace      = var.namespace
  image          = "armonik-control-plane"
  tag            = "test"
  config_maps    = ["control-plane-configmap"]
  secret_volumes = {secret_volumes["control_plane"]}
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
  secret_volumes     = {secret_volumes["compute_plane"]}
}}
"""
    if "metrics_exporter" in secret_volumes:
        blocks += f"""module "metrics_exporter" {{
  source         = "./modules/monitoring/metrics-exporter"
  namespace      = var.namespace
  image          = "armonik-metrics-exporter:test"
  config_maps    = ["metrics-exporter-configmap"]
  secret_volumes = {secret_volumes["metrics_exporter"]}
}}
"""
    return blocks


def workload_outputs(*modules: str) -> str:
    """An output per module: the workload its shared `workload` module makes."""
    return "".join(
        f'output "{name}" {{\n  value = module.{name}.harness.modules.workload.manifests.workload\n}}\n'
        for name in modules
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
