"""A real local deployment for the end-to-end suite: `armonik-deploy deploy` with a parameters file of its own.

The session-scoped `deployment` fixture writes a `parameters.tfvars.json` into a temporary folder (free ports
for the control plane and the metrics exporter; partition `default` with 2 pairs of the bundled generic worker,
partition `pymonik` with 1 pair of the PymoniK worker, and `inprocess` and `pymonik-inprocess` with 1 polling
agent each running the same processors in its own process (`Worker__Module`), `inprocess` with its data folders
in memory (`cache_config.memory`); the PymoniK partitions' data
folders under /cache/shared, where PymoniK looks for the resources it fetches; a 3 s lease and 1 s heartbeats so that a lost agent is
noticed quickly), deploys it from the repository root (the working directory of every process), and destroys
it at the end, checking that no process of it is left. The suite runs once per storage variant
(`STORAGE_VARIANTS`): on the embedded backends, then with the `rabbitmq` and `redis` blocks set, so that the
queue is RabbitMQ and the objects are in Redis.

When a test fails, the tail of every log under `<generated>/logs/` and the process table are attached to its
report (a section of the failure output), so that a failure in CI can be diagnosed from the output alone.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.contract.backends.service import require_service
from tests.e2e.scenarios import PYMONIK_PARTITIONS, SAMPLE_PARTITIONS, Clients
from tests.support import attach_diagnostics, deploy_cli

ROOT = Path(__file__).resolve().parents[2]

DEPLOY_TIMEOUT = 120.0
DESTROY_TIMEOUT = 120.0
LOG_TAIL_LINES = 25

LOCAL_ENV = {"ComputeGateway__LeaseSeconds": "3", "Pollster__HeartbeatSeconds": "1"}
SAMPLES_WORKER = ["{python}", "-m", "armonik_samples.worker"]
PYMONIK_WORKER = ["{python}", "-c", "from pymonik import run_pymonik_worker; run_pymonik_worker()"]
#: The same processors run in the polling agents' own process (`Worker__Module`).
SAMPLES_PROCESSOR = "armonik_samples.worker:dispatch"
PYMONIK_PROCESSOR = "armonik_samples.pymonik_processor:processor"
#: Where PymoniK looks for the resources it fetches: its partitions' data folders are there.
PYMONIK_CACHE = {"Pollster__SharedCacheFolder": "/cache/shared"}

#: The deployment of this test session, for the report hook (None outside of it).
_ACTIVE: Deployment | None = None


def free_ports(count: int) -> list[int]:
    """`count` distinct ports free on 127.0.0.1 (all bound at once, so that they differ)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


#: The storage the deployments of the suite run on: the embedded backends, and the production queue and object
#: storage this machine has (RabbitMQ and Redis, selected in the parameters file as a user would).
STORAGE_VARIANTS = ("embedded", "rabbitmq-redis")


def storage_blocks(variant: str, run: str) -> dict[str, Any]:
    """The parameters blocks of a storage variant; names of this run's own, as the services are shared."""
    if variant == "embedded":
        return {}
    require_service("RabbitMQ", "127.0.0.1", 5672)
    require_service("Redis", "127.0.0.1", 6379)
    return {"rabbitmq": {"prefix": f"e2e-{run}"}, "redis": {"instance_name": f"e2e-{run}"}}


def parameters(
    control_plane_port: int, metrics_port: int, storage: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        **(storage or {}),
        "logging_level": "Information",
        "local": {
            "host": "127.0.0.1",
            "env": dict(LOCAL_ENV),
            "stop_grace_period": 5,
        },
        "control_plane": {"port": control_plane_port, "default_partition": "default"},
        "compute_plane": {
            "default": {
                "replicas": 2,
                "termination_grace_period_seconds": 5,
                "worker": [{"command": list(SAMPLES_WORKER)}],
            },
            "inprocess": {
                "replicas": 1,
                "termination_grace_period_seconds": 5,
                # its data folders in memory, the objects elsewhere: outputs are copied, not renamed
                "cache_config": {"memory": True},
                "worker": [{"module": SAMPLES_PROCESSOR}],
            },
            "pymonik": {
                "replicas": 1,
                "termination_grace_period_seconds": 5,
                "polling_agent": {"env": dict(PYMONIK_CACHE)},
                "worker": [{"command": list(PYMONIK_WORKER)}],
            },
            "pymonik-inprocess": {
                "replicas": 1,
                "termination_grace_period_seconds": 5,
                "polling_agent": {"env": dict(PYMONIK_CACHE)},
                "worker": [{"module": PYMONIK_PROCESSOR}],
            },
        },
        "metrics_exporter": {"port": metrics_port},
    }


def _tail(path: Path, lines: int) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(cannot read: {exc})"
    return "\n".join(text.splitlines()[-lines:])


def _process_alive(pid: int, identity: str | None) -> bool:
    """`pid` runs (not a zombie) and, when an identity (start time) was recorded, is still that process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    fields = stat[stat.rfind(")") + 2 :].split()
    if fields and fields[0] in ("Z", "X"):
        return False
    return identity is None or len(fields) <= 19 or fields[19] == identity


def _processes_referring_to(folder: Path) -> list[str]:
    """Processes whose command line or environment names `folder` (every process of the deployment does)."""
    needle = str(folder).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text()
        except OSError:
            continue
        if state[state.rfind(")") + 2 :].startswith("Z"):
            continue
        if needle in cmdline or needle in environ:
            command = cmdline.replace(b"\0", b" ").decode(errors="replace").strip()
            found.append(f"{entry.name}: {command}")
    return found


@dataclass
class DeployedFolders:
    """What the shared end-to-end tests ask of any deployment, whatever its target: where to reach it and
    where its files are (the podman suite's deployment is one too)."""

    root: Path
    parameters_file: Path
    generated: Path
    endpoint: str
    metrics_port: int
    #: Sessions created by the tests, by the name of the test that created them.
    sessions: dict[str, str] = field(default_factory=dict)

    @property
    def cli_config(self) -> Path:
        return self.generated / "armonik-cli.yaml"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def channel(self) -> grpc.Channel:
        return grpc.insecure_channel(self.endpoint)


@dataclass
class Deployment(DeployedFolders):
    """A running local deployment: its processes are the supervisor's, its logs files."""

    @property
    def logs(self) -> Path:
        return self.generated / "logs"

    @property
    def state_file(self) -> Path:
        return self.generated / "deploy" / "state.json"

    def agent_ids(self, partition: str) -> tuple[str, ...]:
        """The agent ids (owner pod ids) of a partition's pairs: `<partition>-<i>` in the local target."""
        replicas = json.loads(self.parameters_file.read_text())["compute_plane"][partition]["replicas"]
        return tuple(f"{partition}-{i}" for i in range(replicas))

    def worker_logs(self, partition: str) -> str:
        """Everything the workers of `partition` logged (an in-process worker logs with its agent)."""
        return "".join(log.read_text() for log in self.logs.glob(f"{partition}-*.log"))

    def state(self) -> dict[str, Any]:
        """The supervisor's state file (pids, restarts, statuses)."""
        data: dict[str, Any] = json.loads(self.state_file.read_text())
        return data

    def process(self, name: str) -> dict[str, Any]:
        """The state entry of one process (`control-plane`, `default-0-polling-agent`, ...)."""
        for entry in self.state().get("processes", []):
            if entry.get("name") == name:
                return dict(entry)
        raise KeyError(f"no process {name!r} in {self.state_file}")

    def deploy_cli(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        return deploy_cli(self.generated, *args, timeout=timeout)

    def status_table(self) -> str:
        try:
            done = self.deploy_cli("status", timeout=30)
        except subprocess.TimeoutExpired:
            return "(armonik-deploy status timed out)"
        return done.stdout + done.stderr

    def diagnostics(self, lines: int = LOG_TAIL_LINES) -> str:
        """The process table and the tail of every log, for a failure report."""
        parts = [f"generated folder: {self.generated}", self.status_table()]
        for log in sorted(self.logs.glob("*.log")) if self.logs.is_dir() else []:
            parts.append(f"===== {log.name} (last {lines} lines) =====\n{_tail(log, lines)}")
        return "\n".join(parts)


def _deploy(generated: Path, parameters_file: Path) -> subprocess.CompletedProcess[str]:
    return deploy_cli(generated, "deploy", "--parameters", str(parameters_file), timeout=DEPLOY_TIMEOUT)


def _destroy_and_check(deployment: Deployment) -> None:
    """`destroy`, then check that neither the supervisor nor any process it started is left."""
    try:
        state = deployment.state()
    except (OSError, ValueError):
        state = {}
    recorded = [
        (str(p.get("name")), int(p["pid"]), p.get("identity"))
        for p in state.get("processes", [])
        if isinstance(p.get("pid"), int)
    ]
    if isinstance(state.get("supervisor_pid"), int):
        recorded.append(("supervisor", state["supervisor_pid"], state.get("supervisor_identity")))
    done = deployment.deploy_cli("destroy", timeout=DESTROY_TIMEOUT)
    assert done.returncode == 0, (
        f"armonik-deploy destroy exited with {done.returncode}:\n{done.stdout}\n{done.stderr}\n"
        + deployment.diagnostics()
    )
    deadline = time.monotonic() + 15.0
    while True:
        left = [f"{name} (pid {pid})" for name, pid, ident in recorded if _process_alive(pid, ident)]
        strays = _processes_referring_to(deployment.generated)
        if not left and not strays or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not left, f"processes left after destroy: {left}\n{done.stdout}\n" + deployment.diagnostics()
    assert not strays, "processes of the deployment left after destroy:\n" + "\n".join(strays)
    assert recorded, "the state file recorded no process of the deployment"


@pytest.fixture(scope="session", params=STORAGE_VARIANTS)
def deployment(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    global _ACTIVE
    root = tmp_path_factory.mktemp(f"e2e-{request.param}")
    control_port, metrics_port = free_ports(2)
    parameters_file = root / "parameters.tfvars.json"
    storage = storage_blocks(request.param, uuid.uuid4().hex[:8])
    parameters_file.write_text(json.dumps(parameters(control_port, metrics_port, storage), indent=2) + "\n")
    generated = root / "generated"
    deployed = Deployment(root, parameters_file, generated, f"127.0.0.1:{control_port}", metrics_port)
    try:
        done = _deploy(generated, parameters_file)
    except subprocess.TimeoutExpired as exc:
        _destroy_quietly(deployed)
        pytest.fail(f"armonik-deploy deploy did not return within {exc.timeout:g}s\n{deployed.diagnostics()}")
    if done.returncode != 0:
        diagnostics = deployed.diagnostics()
        _destroy_quietly(deployed)
        pytest.fail(
            f"armonik-deploy deploy exited with {done.returncode}:\n{done.stdout}\n{done.stderr}\n{diagnostics}"
        )
    outputs = json.loads((generated / "armonik-output.json").read_text())
    assert outputs["armonik"]["control_plane_url"] == f"http://{deployed.endpoint}", outputs
    assert f"endpoint: {deployed.endpoint}" in deployed.cli_config.read_text()
    _ACTIVE = deployed
    try:
        yield deployed
    finally:
        _ACTIVE = None
        _destroy_and_check(deployed)


def _destroy_quietly(deployment: Deployment) -> None:
    try:
        deployment.deploy_cli("destroy", timeout=DESTROY_TIMEOUT)
    except subprocess.TimeoutExpired:
        pass


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    attach_diagnostics(outcome, "armonik deployment: processes and log tails", _ACTIVE)


@pytest.fixture(params=SAMPLE_PARTITIONS)
def partition(request: pytest.FixtureRequest) -> str:
    """Each partition of the generic worker, for the scenarios that run on both."""
    return str(request.param)


@pytest.fixture(params=PYMONIK_PARTITIONS)
def pymonik_partition(request: pytest.FixtureRequest) -> str:
    """Each partition of the PymoniK worker, for the PymoniK scenarios."""
    return str(request.param)


@pytest.fixture(scope="module")
def clients(deployment: Deployment) -> Iterator[Clients]:
    """The SDK's clients on the deployment's channel, one channel per test module."""
    with deployment.channel() as channel:
        yield Clients(channel)
