"""The `authentication` block of parameters.tfvars: its keys, its requirement of mTLS, the control plane's and
the init job's settings, the certificates `deploy` generates per user and the file the init job loads."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from armonik_core.control_plane.auth.init import read_tables
from armonik_deploy.parameters import ParametersError
from armonik_deploy.plan import Plan
from armonik_deploy.tls import prepare_certificates
from tests.support import short_folder
from tests.unit.test_deploy_plan import by_name, parameters, plan_of

MTLS = {"tls": True, "mtls": True, "certificate_key_size": 2048}


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """A short folder: unix socket paths (under it) are limited to about 100 bytes."""
    yield from short_folder("akauth-")


def auth_plan(tmp_path: Path, ingress: dict[str, Any] | None = None, **auth: Any) -> Plan:
    block = {"require_authentication": True, "require_authorization": True, **auth}
    return plan_of(
        tmp_path, parameters(ingress=ingress if ingress is not None else MTLS, authentication=block)
    )


def test_authentication_off_changes_nothing(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, parameters(ingress=MTLS, authentication={"require_authentication": False}))
    assert plan.tls is not None and plan.tls.auth is None
    assert not any(k.startswith("Authenticator__") for k in by_name(plan)["control-plane"].env)


def test_the_settings_of_the_control_plane_and_the_init_job(tmp_path: Path) -> None:
    plan = auth_plan(tmp_path, trusted_common_names=["ingress", "lb"])
    env = by_name(plan)["control-plane"].env
    assert env["Authenticator__RequireAuthentication"] == "true"
    assert env["Authenticator__RequireAuthorization"] == "true"
    # the deployment's ingress passes on the browsers' certificates: its own CN is trusted too
    assert env["Authenticator__TrustedCommonNames"] == "ingress,lb,armonik-ingress"
    ingress = by_name(plan)["ingress"].env
    assert ingress["ControlPlane__Tls__ClientCertificateFile"].endswith("/armonik-ingress.crt")
    assert ingress["Ingress__Tls__ClientCaFile"] == plan.tls.client_ca_file  # type: ignore[union-attr]
    conf = plan.jobs[0].env["InitServices__Authentication__DataFile"]
    assert conf == str(tmp_path / "generated" / "certificates" / "authentication_conf.json")
    assert Plan.from_json(plan.to_json()).tls == plan.tls


def test_authentication_needs_mtls_and_says_so(tmp_path: Path) -> None:
    for ingress in ({}, {"tls": True}):
        with pytest.raises(
            ParametersError, match=r"by client certificate \(mTLS\): set ingress = \{ tls = true, mtls"
        ):
            auth_plan(tmp_path, ingress=ingress)


def test_bad_blocks_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(ParametersError, match="require_authorization: Authorization requires authentication"):
        plan_of(tmp_path, parameters(ingress=MTLS, authentication={"require_authorization": True}))
    with pytest.raises(ParametersError, match="did you mean 'trusted_common_names'"):
        auth_plan(tmp_path, trusted_common_name=["x"])
    with pytest.raises(ParametersError, match="authentication_datafile: cannot read"):
        auth_plan(tmp_path, authentication_datafile="missing.json")
    (tmp_path / "auth.json").write_text(json.dumps({"users_list": []}))
    with pytest.raises(ParametersError, match=r"generate_client_cert_for\[0\]: 'bob' is not a user"):
        auth_plan(tmp_path, authentication_datafile="auth.json", generate_client_cert_for=["bob"])


def test_certificates_per_user_and_the_file_the_init_job_loads(tmp_path: Path) -> None:
    datafile = {
        "roles_list": [{"RoleName": "Reader", "Permissions": ["Sessions:ListSessions"]}],
        "users_list": [
            {"Username": "alice", "Roles": ["Reader"]},
            {"Username": "monitoring", "Roles": ["Reader"]},
        ],
        "certificates_list": [{"Username": "monitoring", "Cn": "ops", "Fingerprint": None}],
    }
    (tmp_path / "auth.json").write_text(json.dumps(datafile))
    plan = auth_plan(tmp_path, authentication_datafile="auth.json", generate_client_cert_for=["alice"])
    assert plan.tls is not None and plan.tls.auth is not None
    # monitoring has a certificate in the datafile: none is generated for it (as upstream)
    assert plan.tls.auth.generated_users == {"admin": "Admin", "submitter": "Submitter", "alice": ""}
    prepare_certificates(plan)
    certs = Path(plan.tls.folder)
    for name in ("user-admin", "user-submitter", "user-alice"):
        assert (certs / f"{name}.crt").is_file() and stat.S_IMODE(
            (certs / f"{name}.key").stat().st_mode
        ) == 0o600
    assert not (certs / "user-monitoring.crt").exists()
    assert plan.tls.cli_credentials()["client_certificate"] == certs / "user-admin.crt"
    conf = Path(plan.tls.auth.conf_file)
    assert stat.S_IMODE(conf.stat().st_mode) == 0o600
    tables = read_tables(str(conf))
    assert tables.users["admin"] == ["Admin"] and tables.users["monitoring"] == ["Reader"]
    assert tables.users["deployment"] == ["Deployment"] and tables.roles["Deployment"] == [
        "HealthChecks:CheckHealth"
    ]
    by_user = {c.username: c for c in tables.certificates}
    assert by_user["alice"].cn == "user-alice" and by_user["alice"].fingerprint
    assert by_user["monitoring"].cn == "ops" and by_user["monitoring"].fingerprint is None
    assert by_user["deployment"].cn == "client"
