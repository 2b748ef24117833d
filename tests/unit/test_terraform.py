"""The Terraform of the Kubernetes target, checked offline.

`terraform validate` needs the kubernetes, helm and kubectl providers, which `terraform init` downloads: not
possible offline, so it is not run here. What is checked: formatting (`terraform fmt -check`, when terraform
is on PATH), every .tf file parses (python-hcl2), every variable of parameters.tfvars and versions.tfvars.json
is declared, every module source exists and receives its required variables (also the calls modules make to
the shared `workload` module), every module folder is used, and the ConfigMaps Terraform creates are the
renderer's.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import hcl2
import pytest

from armonik_deploy.parameters import read_variables

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infrastructure"
QUICK_DEPLOY = INFRA / "quick-deploy" / "localhost"
TF_FILES = sorted(INFRA.rglob("*.tf"))


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


@pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform is not on PATH")
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


def test_module_sources_exist_and_get_their_required_variables() -> None:
    calls = module_calls(QUICK_DEPLOY)
    assert {"control_plane", "compute_plane", "keda", "mongodb", "rabbitmq", "redis", "prometheus"} <= set(
        calls
    )
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
    for path in (INFRA / "modules").rglob("main.tf"):
        if path.parent.resolve() != workload:
            assert not own_kind.search(path.read_text()), f"{path}: a workload or Service of its own"


def test_every_module_folder_is_used() -> None:
    used = {folder for _, folder, _ in all_module_calls(QUICK_DEPLOY)}
    folders = {p.parent.resolve() for p in (INFRA / "modules").rglob("main.tf")}
    assert folders == used


def test_terraform_config_maps_are_the_renderer_ones(tmp_path: Path) -> None:
    from armonik_deploy.kubernetes import render
    from armonik_deploy.parameters import load_parameters, load_versions

    file = QUICK_DEPLOY / "parameters.tfvars"
    rendered = render(
        load_parameters(file),
        load_versions(QUICK_DEPLOY / "versions.tfvars.json"),
        file,
        certificates=tmp_path,
    )
    renderer = {m["metadata"]["name"] for m in rendered.of_kind("ConfigMap")} - {"prometheus-configmap"}
    text = (QUICK_DEPLOY / "main.tf").read_text()
    block = text[text.index("config_maps = {") :]
    block = block[: block.index("\n  }\n")]
    terraform = set(re.findall(r'^\s{4}"([a-z-]+)"\s*=', block, re.M))
    assert terraform == renderer
    for name in ("compute-plane-${var.partition}", "${var.partition}-compute-plane", "polling-agent"):
        assert name in (INFRA / "modules" / "compute-plane" / "main.tf").read_text()
