"""The storage and TLS modules, evaluated by Terraform (terraform_support), make the objects and settings the
renderer makes from the same parameters: the ActiveMQ and MinIO workloads and Services, the storage settings,
the TLS Secrets' files, settings and mounts."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from armonik_deploy.certificates import ensure_certificates
from armonik_deploy.kubernetes import render
from armonik_deploy.kubernetes.apply import make_certificates, terraform_variables
from armonik_deploy.kubernetes.settings import (
    CLIENT_TLS_SECRET,
    CONTROL,
    CORE,
    POLLING,
    SERVER_TLS_SECRET,
)
from armonik_deploy.parameters import Versions, load_parameters, read_variables
from armonik_deploy.tls import read_ingress_tls
from tests.unit.quick_deploy import QUICK_DEPLOY
from tests.unit.terraform_support import (
    COMMON_PARAMETERS,
    SERVICE_SETTINGS,
    TLS_SETTINGS,
    apply,
    core_modules,
    evaluate,
    main_tf_module,
    needs_terraform,
    normalized,
    render_as_deployed,
    secret_mounts,
    variable_blocks,
    workload_outputs,
)


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
    + core_modules(
        {
            "control_plane": "module.control_plane_tls.server_volumes",
            "compute_plane": "module.control_plane_tls.client_volumes",
        }
    )
    + 'output "tls" {\n  value = module.control_plane_tls\n}\n'
    + workload_outputs("control_plane", "compute_plane")
)


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
