"""A real deployment of the podman target for the suites of this folder: images built, then
`armonik-deploy deploy --target podman` with a parameters file of its own.

The session fixture `images` builds the registry-free base (`armonik-deploy images base`) and the six images
on it (`armonik-deploy images build --base`), timing both; `deployment` deploys the parameters of the local
end-to-end suite (free ports, partition `default` with 2 pairs of the samples worker, `pymonik` with 1 pair of
the PymoniK worker) with the images named and the ingress on a free port, once without TLS and once with
`ingress = { tls = true, mtls = true }` (`mtls_deployment`), and destroys it at the end, checking that no container of it is left; `deployed` makes
the other variants (`Variant`: the host's services as storage). podman and root are needed: without them the
suite is skipped, except in CI (CI=true), where that is a failure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.e2e.conftest import LOCAL_ENV, DeployedFolders, free_ports, parameters
from tests.support import attach_diagnostics, unavailable

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
BASE = "localhost/armonik-python-base:bookworm"
BUILD_TIMEOUT = 1200.0
DEPLOY_TIMEOUT = 300.0
IMAGES = {"default": "armonik-samples-worker", "pymonik": "armonik-pymonik-worker"}
#: Wall-clock seconds of the builds of this session, printed at its end.
TIMINGS: dict[str, float] = {}


def _require_podman() -> None:
    missing = shutil.which("podman") is None or os.geteuid() != 0
    if missing:
        unavailable("the podman suite needs podman (apt-get install podman runc debootstrap) and root")


def deploy_cli(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "armonik_deploy", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="session")
def images() -> dict[str, float]:
    """Base and images built for this session (podman's cache keeps a rebuild short); their timings."""
    _require_podman()
    for step, args in (
        ("base", ("images", "base")),
        ("images", ("images", "build", "--base", BASE)),
    ):
        start = time.monotonic()
        done = deploy_cli(*args, timeout=BUILD_TIMEOUT)
        assert done.returncode == 0, f"armonik-deploy {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
        TIMINGS[step] = time.monotonic() - start
        print(f"\n{step}: {TIMINGS[step]:.1f} s\n{done.stdout}", file=sys.stderr)
    return TIMINGS


@dataclass(frozen=True)
class Variant:
    """What a deployment of the suite differs by: its name, the `ingress` block, storage blocks, the
    partitions it keeps (all of the local suite's when None), and settings given to some of them (by name:
    a new name is a new partition like `default`)."""

    name: str
    ingress: dict[str, Any] | None = None
    storage: dict[str, Any] = field(default_factory=dict)
    partitions: tuple[str, ...] | None = None
    partition_settings: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def tls(self) -> bool:
        return bool(self.ingress and self.ingress.get("tls"))

    @property
    def mtls(self) -> bool:
        return bool(self.ingress and self.ingress.get("mtls"))


#: Both run the ingress pod (nginx of the project's image and the gRPC-Web container), on a free port.
PLAIN = Variant("plain", ingress={})
MTLS = Variant("mtls", ingress={"tls": True, "mtls": True, "certificate_key_size": 2048})


def podman_parameters(control_port: int, metrics_port: int, variant: Variant = PLAIN) -> dict[str, Any]:
    """The local end-to-end suite's parameters, with each partition's worker image named and the short lease
    given to the core and polling settings (the local target's `local.env` is not the Kubernetes objects')."""
    values = parameters(control_port, metrics_port, variant.storage)
    plane = values["compute_plane"]
    if variant.partitions is not None:
        plane = values["compute_plane"] = {k: v for k, v in plane.items() if k in variant.partitions}
    for name, settings in variant.partition_settings.items():
        plane[name] = {**plane.get(name, plane["default"]), **settings}
    for name, partition in values["compute_plane"].items():
        image = IMAGES["pymonik" if name.startswith("pymonik") else "default"]
        # An in-process partition's agent runs the processor: its container is of the worker's image.
        module = next((w["module"] for w in partition["worker"] if w.get("module")), None)
        partition["worker"] = [{"image": image, **({"module": module} if module else {})}]
    values["configurations"] = {"core": {"env": dict(LOCAL_ENV)}, "polling": {"env": dict(LOCAL_ENV)}}
    if variant.ingress is not None:
        values["ingress"] = {"http_port": free_ports(1)[0], **variant.ingress}
    return values


@dataclass
class PodmanDeployment(DeployedFolders):
    """A running podman deployment, with what the shared end-to-end tests ask of a deployment."""

    variant: Variant = PLAIN
    #: What `deploy` printed (its warnings among it).
    deploy_output: str = ""

    @property
    def tls(self) -> bool:
        return self.variant.tls

    @property
    def ca_file(self) -> Path:
        return self.generated / "podman" / "certificates" / "ca.crt"

    def cli_files(self) -> dict[str, str]:
        """The files the generated AKCONFIG names (authority, and under mTLS the client's pair)."""
        lines = self.cli_config.read_text().splitlines()
        pairs = (line.split(": ", 1) for line in lines if ": " in line and not line.startswith("#"))
        return {key: json.loads(value) for key, value in pairs if value.startswith('"')}

    def channel(self, client_certificate: bool = True) -> grpc.Channel:
        """A channel to the control plane; under mTLS with the generated client certificate, unless told not."""
        if not self.tls:
            return super().channel()
        files = self.cli_files()
        pair: dict[str, bytes] = {}
        if self.variant.mtls and client_certificate:
            pair = {
                "private_key": Path(files["client_key"]).read_bytes(),
                "certificate_chain": Path(files["client_certificate"]).read_bytes(),
            }
        credentials = grpc.ssl_channel_credentials(Path(files["certificate_authority"]).read_bytes(), **pair)
        return grpc.secure_channel(self.endpoint, credentials)

    def podman(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "CONTAINERS_CONF": str(self.generated / "podman" / "containers.conf")}
        return subprocess.run(["podman", *args], env=env, capture_output=True, text=True, timeout=timeout)

    def containers(self) -> list[dict[str, Any]]:
        """The deployment's containers (not the pods' infra containers, which hold their network only)."""
        done = self.podman("ps", "--all", "--format", "json", "--filter", f"label={self.label}")
        return [c for c in json.loads(done.stdout or "[]") if not c.get("IsInfra")]

    @property
    def label(self) -> str:
        from armonik_deploy.parameters import load_parameters
        from armonik_deploy.podman.target import prefix_of
        from armonik_deploy.podman.translate import LABEL

        return f"{LABEL}={prefix_of(load_parameters(self.parameters_file), self.generated)}"

    def container(self, suffix: str) -> str:
        names = [c["Names"][0] for c in self.containers() if c["Names"][0].endswith(suffix)]
        assert len(names) == 1, (suffix, names)
        return names[0]

    def process(self, name: str) -> dict[str, Any]:
        """A container as the local suite's supervisor state describes a process: status, host pid,
        restarts, and the last exit as a signal number negated when a signal ended it."""
        (state,) = json.loads(self.podman("container", "inspect", name).stdout)
        code = self.last_exit_code(name, int(state["State"].get("ExitCode", 0)))
        running = state["State"].get("Status") == "running"
        return {
            "status": "running" if running else str(state["State"].get("Status")),
            "pid": int(state["State"].get("Pid") or 0) or None,
            "restarts": int(state.get("RestartCount", 0)),
            "last_exit": -(code - 128) if code > 128 else code,
        }

    def last_exit_code(self, name: str, default: int) -> int:
        """The exit code of the container's last death (a restart resets the one `inspect` shows)."""
        done = self.podman(
            "events",
            "--stream=false",
            "--since",
            "1h",
            "--filter",
            f"container={name}",
            "--filter",
            "event=died",
            "--format",
            "json",
        )
        lines = [line for line in done.stdout.splitlines() if line.strip()]
        return int(json.loads(lines[-1]).get("ContainerExitCode", default)) if lines else default

    def status_table(self) -> str:
        return self.deploy_cli("status", timeout=60).stdout

    def agent_ids(self, partition: str) -> tuple[str, ...]:
        """The agents of `partition` alone (`pymonik`, not `pymonik-inprocess`): `...-<partition>-<i>`."""
        names = {c["Names"][0] for c in self.containers()}
        agent = re.compile(rf".*-compute-plane-{re.escape(partition)}-[0-9]+-polling-agent")
        return tuple(n.removesuffix("-polling-agent") for n in sorted(names) if agent.fullmatch(n))

    def worker_logs(self, partition: str) -> str:
        """Everything the workers of `partition` logged: an in-process worker has no container of its own
        and logs with its agent."""
        names = {c["Names"][0] for c in self.containers()}
        logs = []
        for agent in self.agent_ids(partition):
            worker = f"{agent}-worker"
            done = self.podman("logs", worker if worker in names else f"{agent}-polling-agent")
            logs.append(done.stdout + done.stderr)
        return "".join(logs)

    def deploy_cli(self, *args: str, timeout: float = DEPLOY_TIMEOUT) -> subprocess.CompletedProcess[str]:
        return deploy_cli(
            *args,
            "--target",
            "podman",
            "--parameters",
            str(self.parameters_file),
            "--generated",
            str(self.generated),
            timeout=timeout,
        )

    def diagnostics(self, lines: int = 25) -> str:
        parts = [self.deploy_cli("status", timeout=60).stdout]
        for container in self.containers():
            name = container["Names"][0]
            done = self.podman("logs", "--tail", str(lines), name)
            parts.append(f"===== {name} =====\n{done.stdout}{done.stderr}")
        return "\n".join(parts)


_ACTIVE: PodmanDeployment | None = None


@contextmanager
def deployed(tmp_path_factory: pytest.TempPathFactory, variant: Variant) -> Iterator[PodmanDeployment]:
    """Deploy, yield, then destroy with its volumes and check that no container is left."""
    global _ACTIVE
    root = tmp_path_factory.mktemp(f"podman-{variant.name}")
    control_port, metrics_port = free_ports(2)
    parameters_file = root / "parameters.tfvars.json"
    parameters_file.write_text(json.dumps(podman_parameters(control_port, metrics_port, variant), indent=2))
    deployment = PodmanDeployment(
        root, parameters_file, root / "generated", f"127.0.0.1:{control_port}", metrics_port, variant=variant
    )
    start = time.monotonic()
    done = deployment.deploy_cli("deploy")
    if done.returncode != 0:
        diagnostics = deployment.diagnostics()
        deployment.deploy_cli("destroy", "--purge")
        pytest.fail(f"deploy --target podman: {done.returncode}\n{done.stdout}\n{done.stderr}\n{diagnostics}")
    TIMINGS[f"deploy-{variant.name}"] = time.monotonic() - start
    deployment.deploy_output = done.stdout + done.stderr
    outputs = json.loads((deployment.generated / "armonik-output.json").read_text())
    scheme = "https" if variant.tls else "http"
    assert outputs["armonik"]["control_plane_url"] == f"{scheme}://{deployment.endpoint}", outputs
    _ACTIVE = deployment
    try:
        yield deployment
    finally:
        _ACTIVE = None
        done = deployment.deploy_cli("destroy", "--purge")
        assert done.returncode == 0, done.stdout + done.stderr
        left = deployment.podman("ps", "--all", "--quiet", "--filter", f"label={deployment.label}")
        assert left.stdout.split() == [], "containers (or pods' infra containers) left after destroy"
        print(f"\npodman suite timings: {TIMINGS}", file=sys.stderr)


@pytest.fixture(scope="session")
def deployment(
    images: dict[str, float], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PodmanDeployment]:
    """Without TLS: the shared end-to-end tests' clients (samples, PymoniK) take a bare endpoint."""
    with deployed(tmp_path_factory, PLAIN) as running:
        yield running


@pytest.fixture(scope="module")
def mtls_deployment(
    images: dict[str, float], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PodmanDeployment]:
    """With `ingress = { tls = true, mtls = true }`: the SDK and armonik-cli reach it with the generated
    authority and client certificate."""
    with deployed(tmp_path_factory, MTLS) as running:
        yield running


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The shared end-to-end tests imported into this folder run in the order they have in their file (the
    metrics test counts what the ones before it did), and before the tests written here; the folder's tests
    have the time their fixtures take (see below)."""

    def line(item: pytest.Item) -> tuple[int, int]:
        function = getattr(item, "function", None)
        code = getattr(function, "__code__", None)
        shared = code is not None and "/tests/e2e/" in code.co_filename
        return (0 if shared else 1, code.co_firstlineno if code is not None else 0)

    podman = [i for i in items if "/tests/podman/test_podman_e2e.py" in str(i.path)]
    if podman:
        start = items.index(podman[0])
        rest = [i for i in items if i not in podman]
        items[:] = rest[:start] + sorted(podman, key=line) + rest[start:]
    # pytest-timeout counts a test's fixtures: the first test of the folder builds the images, and the first
    # of each deployment deploys it (the last destroys it), which a loaded machine makes slow.
    ours = [i for i in items if "/tests/podman/" in str(i.path)]
    for item in ours:
        item.add_marker(pytest.mark.timeout(DEPLOY_TIMEOUT))
    if ours:
        ours[0].add_marker(pytest.mark.timeout(BUILD_TIMEOUT + DEPLOY_TIMEOUT), append=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    attach_diagnostics(outcome, "podman deployment: containers and log tails", _ACTIVE)
