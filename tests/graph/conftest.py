"""A real local deployment for the graph tests: `armonik-deploy deploy` with the graph tests' own worker.

Partition `default` runs 2 pairs of `tests/graph/graph_worker.py` (a task does what its payload says: succeed,
split into subtasks that take its output over, fail, hang until a file appears, crash once). The deployment is
shared by the module's tests (each test has sessions of its own) and destroyed at the end, checking that no
process of it is left, with the e2e suite's helpers.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from tests.e2e.conftest import Deployment, _deploy, _destroy_and_check, free_ports, parameters
from tests.graph.browser import chromium
from tests.ingress_support import IngressProcess

GRAPH_WORKER = ["{python}", "-m", "tests.graph.graph_worker"]


@pytest.fixture(scope="session")
def graph_deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    root = tmp_path_factory.mktemp("graph")
    control_port, metrics_port = free_ports(2)
    values = parameters(control_port, metrics_port)
    values["compute_plane"] = {
        "default": {
            "replicas": 2,
            "termination_grace_period_seconds": 5,
            "worker": [{"command": list(GRAPH_WORKER)}],
        }
    }
    parameters_file = root / "parameters.tfvars.json"
    parameters_file.write_text(json.dumps(values, indent=2) + "\n")
    deployed = Deployment(
        root, parameters_file, root / "generated", f"127.0.0.1:{control_port}", metrics_port
    )
    try:
        done = _deploy(deployed.generated, parameters_file)
    except subprocess.TimeoutExpired:
        deployed.deploy_cli("destroy", timeout=120)
        pytest.fail(f"armonik-deploy deploy did not return\n{deployed.diagnostics()}")
    if done.returncode != 0:
        diagnostics = deployed.diagnostics()
        deployed.deploy_cli("destroy", timeout=120)
        pytest.fail(f"armonik-deploy deploy failed:\n{done.stdout}\n{done.stderr}\n{diagnostics}")
    try:
        yield deployed
    finally:
        _destroy_and_check(deployed)


@pytest.fixture
def channel(graph_deployment: Deployment) -> Iterator[grpc.Channel]:
    with graph_deployment.channel() as ch:
        yield ch


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    """A folder the workers and the test share (release files, crash markers)."""
    return tmp_path


@pytest.fixture
def console(graph_deployment: Deployment, tmp_path: Path) -> Iterator[str]:
    """The console at the `/console/` of an ingress in front of the deployment (its URL without the slash)."""
    process = IngressProcess(graph_deployment.endpoint, tmp_path / "ingress.log")
    process.start(timeout=60)
    try:
        yield process.url + "/console"
    finally:
        process.stop()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    yield from chromium(tmp_path / "chromium-profile")
