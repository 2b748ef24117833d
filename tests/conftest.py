"""Fixtures shared by every suite: a real control plane process on a free port."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from armonik_core.gateway.auth import agent_credential
from tests.support import free_port

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class ControlPlaneProcess:
    """A control plane started as its own process, as a user runs it, on its own data directory."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    #: The deployment secret of the compute gateway (kept across restarts of this control plane).
    secret: str = field(default_factory=lambda: secrets.token_hex(16))

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def gateway_endpoint(self) -> str:
        """The compute gateway's own listener: its default unix socket under the data directory."""
        return f"unix://{self.data_dir.absolute() / 'compute-gateway.sock'}"

    def credential(self, partition: str = "default") -> str:
        """The agent credential of `partition`, as the deployment gives it to that partition's agents."""
        return agent_credential(self.secret.encode(), partition)

    def agent_env(self, partition: str = "default") -> dict[str, str]:
        """What an agent of `partition` needs to reach this control plane's gateway."""
        return {
            "ComputeGateway__Endpoint": self.gateway_endpoint,
            "ComputeGateway__Credential": self.credential(partition),
            "Pollster__PartitionId": partition,
        }

    def start(self, timeout: float = 30.0) -> None:
        env = {
            **os.environ,
            "ControlPlane__Host": "127.0.0.1",
            "ControlPlane__Port": str(self.port),
            "Embedded__DataDirectory": str(self.data_dir),
            "ComputeGateway__Secret": self.secret,
            **self.env,
        }
        self.log_path = self.data_dir.parent / f"control-plane-{self.port}.log"
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "armonik_core.control_plane"], env=env, stdout=log, stderr=log, cwd=ROOT
        )
        self.wait_ready(timeout)

    def ready_channel(self) -> grpc.Channel:
        """The channel readiness is checked on (a TLS port needs a TLS channel)."""
        return grpc.insecure_channel(self.endpoint)

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self.ready_channel() as channel:
            while time.monotonic() < deadline:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise RuntimeError(f"control plane exited: {self.logs()}")
                try:
                    grpc.channel_ready_future(channel).result(timeout=0.5)
                    return
                except grpc.FutureTimeoutError:
                    continue
        raise TimeoutError(f"control plane not ready after {timeout}s: {self.logs()}")

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL: no chance to flush or clean up, as in a crash."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> int:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            return self.process.wait(15)
        return self.process.returncode if self.process else 0


@pytest.fixture
def control_plane(tmp_path: Path) -> Iterator[ControlPlaneProcess]:
    plane = ControlPlaneProcess(tmp_path / "data")
    plane.start()
    yield plane
    plane.kill()


@pytest.fixture
def channel(control_plane: ControlPlaneProcess) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(control_plane.endpoint) as ch:
        yield ch
