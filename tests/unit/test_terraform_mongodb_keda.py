"""MongoDB's TLS and KEDA's chart values, evaluated by Terraform (terraform_support): MongoDB's TLS Secrets, its
PerconaServerMongoDB TLS and the mounts of its authority are the renderer's, and KEDA's chart values are
helm.py's."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest

from armonik_deploy.kubernetes import helm
from armonik_deploy.kubernetes.settings import (
    CORE,
    MONGODB_CA_SECRET,
    MONGODB_TLS_SECRET,
)
from armonik_deploy.parameters import Versions, load_parameters, read_variables
from tests.unit.quick_deploy import QUICK_DEPLOY
from tests.unit.terraform_support import (
    COMMON_PARAMETERS,
    FAST_KEYS,
    INFRA,
    apply,
    core_modules,
    evaluate,
    main_tf_module,
    needs_terraform,
    parse,
    render_as_deployed,
    secret_mounts,
    variable_blocks,
    workload_outputs,
)


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
    mongodb_volumes = main_tf_expression(top[top.index("locals {") :], "mongodb_volumes")
    return f"""
locals {{
  mongodb_volumes = {mongodb_volumes}
}}
""" + core_modules(volumes)


MONGODB_MAIN = (
    variable_blocks("namespace", "ingress", "certificates", "mongodb", "helm_charts", "install_helm_charts")
    + main_tf_module("control_plane_tls")
    + main_tf_module("mongodb")
    + core_process_modules()
    + workload_outputs("control_plane", "compute_plane", "metrics_exporter")
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
