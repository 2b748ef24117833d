"""The podman target with `ingress = { tls = true, mtls = true }`: the SDK over TLS with the generated authority
and client certificate (named by the generated AKCONFIG), refused without that certificate, armonik-cli
with the generated AKCONFIG, and the ingress pod over HTTPS, opened by that certificate only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from armonik.client import ArmoniKSessions

from tests.e2e.scenarios import Clients
from tests.e2e.test_local_deployment import test_hello_world_with_the_sdk as hello_world
from tests.podman import ingress_checks
from tests.podman.conftest import PodmanDeployment

pytestmark = pytest.mark.podman


@pytest.fixture(scope="module")
def clients(mtls_deployment: PodmanDeployment) -> Iterator[Clients]:
    with mtls_deployment.channel() as channel:
        yield Clients(channel)


@pytest.mark.parametrize("partition", ["default", "inprocess"])
def test_hello_world_over_mtls(mtls_deployment: PodmanDeployment, clients: Clients, partition: str) -> None:
    """The SDK over mTLS, on a separate-worker partition and on an in-process one (whose agent reaches the
    control plane's compute gateway with the control plane's TLS and the agents' client certificate)."""
    assert "https://" in (mtls_deployment.generated / "armonik-output.json").read_text()
    assert {"certificate_authority", "client_certificate", "client_key"} <= set(mtls_deployment.cli_files())
    hello_world(mtls_deployment, clients, partition)  # type: ignore[arg-type]


def test_a_client_without_a_certificate_is_refused(mtls_deployment: PodmanDeployment) -> None:
    """The authority alone is not enough: the handshake fails before any call reaches a service."""
    with mtls_deployment.channel(client_certificate=False) as channel:
        with pytest.raises(grpc.RpcError) as refused:
            ArmoniKSessions(channel).list_sessions()
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE, refused.value


def test_armonik_cli_over_mtls(mtls_deployment: PodmanDeployment, clients: Clients, tmp_path: Path) -> None:
    session_id = mtls_deployment.sessions["hello_world"]
    env = {
        **os.environ,
        "HOME": str(tmp_path),
        "AKCONFIG": str(mtls_deployment.cli_config),
        "COLUMNS": "100000",
    }
    env.pop("AK_ENDPOINT", None)
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "armonik"),
            "-o",
            "json",
            "task",
            "list",
            "-f",
            f'session_id = "{session_id}"',
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert [t["Status"] for t in json.loads(done.stdout)] == ["Completed"]


def test_the_ingress_serves_https_to_a_browser_with_the_user_certificate(
    mtls_deployment: PodmanDeployment,
) -> None:
    ingress_checks.check_runs_the_projects_nginx(mtls_deployment)
    ingress_checks.check_lists_a_session_through_grpc_web(mtls_deployment)
    ingress_checks.check_static_and_admin_pages(mtls_deployment)


def test_the_ingress_refuses_a_browser_without_a_certificate(mtls_deployment: PodmanDeployment) -> None:
    ingress_checks.check_refuses_a_browser_without_a_certificate(mtls_deployment)
