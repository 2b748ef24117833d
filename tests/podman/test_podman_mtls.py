"""The podman target with `ingress = { tls = true }`: the SDK over TLS with the generated authority, and
armonik-cli with the generated AKCONFIG (which names the authority)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_local_deployment import Clients
from tests.e2e.test_local_deployment import test_hello_world_with_the_sdk as hello_world
from tests.podman.conftest import PodmanDeployment

pytestmark = pytest.mark.podman


@pytest.fixture(scope="module")
def clients(tls_deployment: PodmanDeployment) -> Iterator[Clients]:
    with tls_deployment.channel() as channel:
        yield Clients(channel)


@pytest.mark.parametrize("partition", ["default", "inprocess"])
def test_hello_world_over_tls(tls_deployment: PodmanDeployment, clients: Clients, partition: str) -> None:
    """The SDK over TLS, on a separate-worker partition and on an in-process one (whose agent reaches the
    control plane's compute gateway with the control plane's TLS)."""
    assert "https://" in (tls_deployment.generated / "armonik-output.json").read_text()
    hello_world(tls_deployment, clients, partition)  # type: ignore[arg-type]


def test_armonik_cli_over_tls(tls_deployment: PodmanDeployment, clients: Clients, tmp_path: Path) -> None:
    session_id = tls_deployment.sessions["hello_world"]
    env = {
        **os.environ,
        "HOME": str(tmp_path),
        "AKCONFIG": str(tls_deployment.cli_config),
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
