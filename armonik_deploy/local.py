"""The local target: ArmoniK's processes on this machine, with embedded storage.

Each process is started in its own session (so a terminal's Ctrl-C does not reach it) with its pid
recorded under `generated/pids/`, and its output under `generated/logs/`. `destroy` stops exactly the
processes whose pid files it finds, and nothing else.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
from armonik.protogen.client.health_checks_service_pb2_grpc import HealthChecksServiceStub
from armonik.protogen.common.health_checks_common_pb2 import HEALTH_STATUS_ENUM_HEALTHY, CheckHealthRequest


@dataclass(frozen=True, slots=True)
class LocalLayout:
    generated: Path

    @property
    def pids(self) -> Path:
        return self.generated / "pids"

    @property
    def logs(self) -> Path:
        return self.generated / "logs"

    @property
    def data(self) -> Path:
        return self.generated / "data"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running(layout: LocalLayout) -> dict[str, int]:
    """Processes of this deployment that are alive, by name."""
    found = {}
    if layout.pids.is_dir():
        for pid_file in sorted(layout.pids.glob("*.pid")):
            pid = int(pid_file.read_text().strip() or 0)
            if pid and _alive(pid):
                found[pid_file.stem] = pid
            else:
                pid_file.unlink(missing_ok=True)
    return found


def start_process(layout: LocalLayout, name: str, args: list[str], env: dict[str, str]) -> int:
    layout.pids.mkdir(parents=True, exist_ok=True)
    layout.logs.mkdir(parents=True, exist_ok=True)
    with open(layout.logs / f"{name}.log", "ab") as log:
        process = subprocess.Popen(
            args,
            env={**os.environ, **env},
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    (layout.pids / f"{name}.pid").write_text(f"{process.pid}\n")
    return process.pid


def wait_healthy(endpoint: str, timeout: float) -> None:
    """Wait until every service of the control plane reports HEALTHY."""
    deadline = time.monotonic() + timeout
    last_error = "no answer"
    while time.monotonic() < deadline:
        with grpc.insecure_channel(endpoint) as channel:
            try:
                reply = HealthChecksServiceStub(channel).CheckHealth(CheckHealthRequest(), timeout=2)
                if all(s.healthy == HEALTH_STATUS_ENUM_HEALTHY for s in reply.services):
                    return
                last_error = "; ".join(f"{s.name}: {s.message}" for s in reply.services)
            except grpc.RpcError as exc:
                last_error = exc.details() or str(exc.code())
        time.sleep(0.2)
    raise TimeoutError(f"the control plane at {endpoint} is not healthy after {timeout:.0f}s: {last_error}")


def deploy_control_plane(layout: LocalLayout, host: str, port: int, timeout: float = 60.0) -> str:
    endpoint = f"{host}:{port}"
    if "control-plane" not in running(layout):
        env = {
            "ControlPlane__Host": host,
            "ControlPlane__Port": str(port),
            "Embedded__DataDirectory": str(layout.data),
        }
        start_process(layout, "control-plane", [sys.executable, "-m", "armonik_core.control_plane"], env)
    wait_healthy(endpoint, timeout)
    return endpoint


def destroy(layout: LocalLayout, timeout: float = 15.0) -> list[str]:
    """SIGTERM every process of the deployment, then SIGKILL what is still alive after `timeout`."""
    processes = running(layout)
    for pid in processes.values():
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_alive(pid) for pid in processes.values()):
        time.sleep(0.1)
    for pid in processes.values():
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    for name in processes:
        (layout.pids / f"{name}.pid").unlink(missing_ok=True)
    return sorted(processes)
