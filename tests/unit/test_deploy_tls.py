"""TLS of the local deployment: `ingress` keys in the parameters -> plan, certificates, outputs.

The plan is checked without starting anything; `prepare_certificates` writes real certificates (2048-bit keys
through `certificate_key_size`, to stay fast).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from armonik_deploy.certificates import signed_by
from armonik_deploy.outputs import write_outputs
from armonik_deploy.parameters import ParametersError, load_parameters, parameters_from_dict
from armonik_deploy.plan import Plan, ProcessSpec, build_plan
from armonik_deploy.schema import to_plain
from armonik_deploy.tls import DIGEST_KEY, prepare_certificates
from tests.support import key_pair_files, short_folder

WORKER = {"command": ["{python}", "worker.py"]}
TLS_KEYS = {
    "ControlPlane__Tls__CertificateFile",
    "ControlPlane__Tls__KeyFile",
    "ControlPlane__Tls__ClientCaFile",
}
CLIENT_KEYS = {
    "ControlPlane__Tls__CaFile",
    "ControlPlane__Tls__ClientCertificateFile",
    "ControlPlane__Tls__ClientKeyFile",
}


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """A short folder: unix socket paths (under it) are limited to about 100 bytes."""
    yield from short_folder("aktls-")


def plan_of(tmp_path: Path, ingress: dict[str, Any] | None = None, **extra: Any) -> Plan:
    data: dict[str, Any] = {
        "control_plane": {"port": 6123},
        "compute_plane": {"default": {"replicas": 1, "worker": [WORKER]}},
        **extra,
    }
    if ingress is not None:
        data["ingress"] = {"certificate_key_size": 2048, **ingress}
    params = parameters_from_dict(data, str(tmp_path / "p.tfvars"))
    return build_plan(params, tmp_path / "p.tfvars", tmp_path / "generated", cwd=tmp_path)


def by_name(plan: Plan) -> dict[str, ProcessSpec]:
    return {spec.name: spec for spec in plan.processes}


def certs_folder(tmp_path: Path) -> Path:
    return (tmp_path / "generated" / "certificates").resolve()


# -- the plan --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("ingress", [None, {}, {"tls": False, "mtls": False, "generate_client_cert": False}])
def test_without_tls_nothing_changes(tmp_path: Path, ingress: dict[str, Any] | None) -> None:
    plan = plan_of(tmp_path, ingress)
    assert plan.tls is None
    assert plan.control_plane_url == "http://127.0.0.1:6123"
    for spec in plan.processes:
        assert not any(key.startswith("ControlPlane__Tls__") for key in spec.env)
    assert by_name(plan)["default-0-polling-agent"].env["ComputeGateway__Endpoint"].startswith("unix:///")


def test_tls_settings_reach_the_control_plane_and_the_agents(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, {"tls": True})
    folder = certs_folder(tmp_path)
    assert plan.tls is not None and not plan.tls.mtls
    assert plan.control_plane_url == "https://127.0.0.1:6123"
    assert plan.endpoint == "127.0.0.1:6123"
    specs = by_name(plan)
    control = specs["control-plane"].env
    assert control["ControlPlane__Tls__CertificateFile"] == str(folder / "control-plane.crt")
    assert control["ControlPlane__Tls__KeyFile"] == str(folder / "control-plane.key")
    assert "ControlPlane__Tls__ClientCaFile" not in control
    # the agents reach the gateway on its unix socket (0600), not through the TLS port
    agent = specs["default-0-polling-agent"].env
    assert agent["ComputeGateway__Endpoint"].startswith("unix:///")
    assert not (TLS_KEYS | CLIENT_KEYS) & set(agent)
    # the worker talks to its agent only, the exporter reads the state database: neither connects to the plane
    for name in ("default-0-worker", "metrics-exporter"):
        assert not (TLS_KEYS | CLIENT_KEYS) & set(specs[name].env)
    assert {"localhost", "127.0.0.1", "::1"} <= set(plan.tls.hosts)


def test_mtls_settings(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, {"tls": True, "mtls": True})
    folder = certs_folder(tmp_path)
    specs = by_name(plan)
    assert specs["control-plane"].env["ControlPlane__Tls__ClientCaFile"] == str(folder / "ca.crt")
    assert not CLIENT_KEYS & set(specs["default-0-polling-agent"].env)  # the gateway's socket: no TLS
    assert plan.tls is not None
    assert plan.tls.cli_credentials() == {
        "certificate_authority": folder / "ca.crt",
        "client_certificate": folder / "client.crt",
        "client_key": folder / "client.key",
    }


def test_a_wildcard_listen_address_adds_the_machine_name(tmp_path: Path) -> None:
    import socket

    plan = plan_of(tmp_path, {"tls": True}, local={"host": "0.0.0.0"})
    assert plan.tls is not None and socket.gethostname() in plan.tls.hosts and "0.0.0.0" not in plan.tls.hosts
    plan = plan_of(tmp_path, {"tls": True}, local={"host": "192.0.2.10"})
    assert plan.tls is not None and "192.0.2.10" in plan.tls.hosts


def test_upstream_ingress_keys_are_accepted_and_the_plan_round_trips(tmp_path: Path) -> None:
    upstream = tmp_path / "p.tfvars"
    upstream.write_text(
        """
control_plane = { default_partition = "default" }
compute_plane = { default = { worker = [{ image = "w", command = ["w"] }] } }
ingress = {
  tls                  = true
  mtls                 = true
  generate_client_cert = false
  http_port            = 5000
  grpc_port            = 5001
  limits               = { cpu = "200m" }
  cors_allowed_host    = "*"
}
"""
    )
    plan = build_plan(load_parameters(upstream), upstream, tmp_path / "generated", cwd=tmp_path)
    assert plan.tls is not None and plan.tls.mtls and not plan.tls.cli_client_certificate
    assert plan.tls.key_size == 4096 and plan.tls.validity_days == 365
    assert any("generate_client_cert = false" in warning for warning in plan.warnings)
    again = Plan.from_json(plan.to_json())
    assert again == plan and again.tls == plan.tls
    assert to_plain(again) == json.loads(plan.to_json())


@pytest.mark.parametrize(
    ("ingress", "path", "message"),
    [
        ({"tls": False, "mtls": True}, "ingress.mtls", "checked over TLS: set tls = true"),
        ({"tls": "yes"}, "ingress.tls", 'expected true or false, got the string "yes"'),
        ({"tls": True, "mtsl": True}, "ingress.mtsl", "did you mean 'mtls'?"),
        ({"tls": True, "certificate_validity_days": 10}, "ingress.certificate_validity_days", "at least 31"),
        (
            {"tls": True, "certificate_key_size": 1024},
            "ingress.certificate_key_size",
            "one of 2048, 3072, 4096",
        ),
        (
            {"tls": True, "mtls": True, "custom_client_ca_file": "missing.pem"},
            "ingress.custom_client_ca_file",
            "no such file",
        ),
    ],
)
def test_bad_tls_keys_name_the_file_and_the_key(
    tmp_path: Path, ingress: dict[str, Any], path: str, message: str
) -> None:
    data = {"compute_plane": {"default": {"worker": [WORKER]}}, "ingress": ingress}
    params = parameters_from_dict(data, str(tmp_path / "p.tfvars"))
    with pytest.raises(ParametersError) as caught:
        build_plan(params, tmp_path / "p.tfvars", tmp_path / "generated", cwd=tmp_path)
    assert caught.value.path == path
    assert message in caught.value.message
    assert str(caught.value).startswith(str(tmp_path / "p.tfvars"))


# -- certificates at apply time -----------------------------------------------------------------------------------
def test_prepare_makes_the_certificates_and_stamps_the_processes_using_them(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, {"tls": True, "mtls": True})
    made = prepare_certificates(plan)
    # the ingress has a client certificate of its own (CN armonik-ingress), named as a trusted proxy
    assert made is not None and made.regenerated == (
        "ca",
        "control-plane",
        "ingress",
        "client",
        "armonik-ingress",
    )
    folder = certs_folder(tmp_path)
    assert sorted(p.name for p in folder.iterdir()) == key_pair_files(
        "armonik-ingress", "ca", "client", "control-plane", "ingress"
    )
    ca = x509.load_pem_x509_certificate((folder / "ca.crt").read_bytes())
    # the control plane's (gRPC) and the ingress's (HTTPS) certificates cover the same names
    for name in ("control-plane", "ingress"):
        server = x509.load_pem_x509_certificate((folder / f"{name}.crt").read_bytes())
        assert signed_by(server, ca)
        names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert "localhost" in names.get_values_for_type(x509.DNSName)
        assert {str(ip) for ip in names.get_values_for_type(x509.IPAddress)} >= {"127.0.0.1", "::1"}
    ingress = by_name(plan)["ingress"].env
    assert ingress["Ingress__Tls__CertificateFile"] == str(folder / "ingress.crt")
    assert ingress["Ingress__Tls__ClientCaFile"] == str(folder / "ca.crt")
    assert plan.ingress_urls["admin_app_url"].startswith("https://")
    specs = by_name(plan)
    digest = made.digest()
    assert specs["control-plane"].env[DIGEST_KEY] == digest
    assert DIGEST_KEY not in specs["default-0-polling-agent"].env  # the agents use no certificate
    assert specs["ingress"].env[DIGEST_KEY] == digest
    assert DIGEST_KEY not in specs["default-0-worker"].env and DIGEST_KEY not in specs["metrics-exporter"].env

    # a redeploy keeps the files, so nothing restarts; a renewed certificate restarts what uses it
    again = plan_of(tmp_path, {"tls": True, "mtls": True})
    kept = prepare_certificates(again)
    assert kept is not None and kept.regenerated == ()
    assert by_name(again)["control-plane"].fingerprint() == specs["control-plane"].fingerprint()
    (folder / "control-plane.key").unlink()
    renewed = plan_of(tmp_path, {"tls": True, "mtls": True})
    prepare_certificates(renewed)
    assert by_name(renewed)["control-plane"].fingerprint() != specs["control-plane"].fingerprint()
    assert (folder / "ca.crt").read_bytes() == ca.public_bytes(Encoding.PEM)  # clients' CA still good


def test_custom_client_authorities_are_trusted_with_the_generated_one(tmp_path: Path) -> None:
    (tmp_path / "other").mkdir()
    prepare_certificates(plan_of(tmp_path / "other", {"tls": True}))
    custom = certs_folder(tmp_path / "other") / "ca.crt"
    # comma-separated; a relative path is relative to the parameters file
    files = f"{custom}, other/generated/certificates/ca.crt"
    plan = plan_of(tmp_path, {"tls": True, "mtls": True, "custom_client_ca_file": files})
    assert plan.tls is not None
    bundle = certs_folder(tmp_path) / "client_ca.crt"
    assert by_name(plan)["control-plane"].env["ControlPlane__Tls__ClientCaFile"] == str(bundle)
    prepare_certificates(plan)
    trusted = x509.load_pem_x509_certificates(bundle.read_bytes())
    generated = x509.load_pem_x509_certificate((certs_folder(tmp_path) / "ca.crt").read_bytes())
    other = x509.load_pem_x509_certificate(custom.read_bytes())
    assert trusted == [generated, other, other]

    # a custom authority that changes restarts the control plane, which reads the bundle at start-up only
    stamped = by_name(plan)["control-plane"].env[DIGEST_KEY]
    (certs_folder(tmp_path / "other") / "ca.key").unlink()
    prepare_certificates(plan_of(tmp_path / "other", {"tls": True}))
    again = plan_of(tmp_path, {"tls": True, "mtls": True, "custom_client_ca_file": files})
    prepare_certificates(again)
    assert by_name(again)["control-plane"].env[DIGEST_KEY] != stamped


# -- outputs -----------------------------------------------------------------------------------------------------
def test_outputs_without_tls_are_unchanged(tmp_path: Path) -> None:
    output, cli = write_outputs(tmp_path, "http://127.0.0.1:5001")
    assert cli.read_text() == "# ArmoniK Connection Configuration\n---\nendpoint: 127.0.0.1:5001\n"
    assert json.loads(output.read_text())["armonik"]["control_plane_url"] == "http://127.0.0.1:5001"


def test_outputs_with_mtls_name_the_certificates_by_absolute_path(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, {"tls": True, "mtls": True})
    assert plan.tls is not None
    output, cli = write_outputs(tmp_path / "generated", plan.control_plane_url, **plan.tls.cli_credentials())
    assert json.loads(output.read_text())["armonik"]["control_plane_url"] == "https://127.0.0.1:6123"
    config = yaml.safe_load(cli.read_text())
    folder = certs_folder(tmp_path)
    assert config == {
        "endpoint": "https://127.0.0.1:6123",
        "certificate_authority": str(folder / "ca.crt"),
        "client_certificate": str(folder / "client.crt"),
        "client_key": str(folder / "client.key"),
    }
    assert all(Path(value).is_absolute() for key, value in config.items() if key != "endpoint")
