"""Starting a control plane process for a benchmark, reading its memory and CPU, and the progress bar.

Deliberately independent of the test suite: a benchmark runs the control plane the way a user does
(`python -m armonik_core.control_plane`, configured through `Section__Key` environment variables).
"""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ControlPlaneHandle:
    process: subprocess.Popen[bytes]
    endpoint: str
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, as an operator stops it (lets a profiler wrapping it write its output); SIGKILL if stuck."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                return self.process.wait(10)
        return self.process.returncode


def wait_ready(endpoint: str, process: subprocess.Popen[bytes], log_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"control plane exited with {process.returncode}:\n{log_path.read_text()}")
        with grpc.insecure_channel(endpoint) as channel:
            try:
                grpc.channel_ready_future(channel).result(timeout=0.5)
                return
            except grpc.FutureTimeoutError:
                continue
    process.kill()
    raise TimeoutError(f"control plane not ready on {endpoint} after {timeout}s")


def start_control_plane_process(
    data_dir: Path,
    port: int | None = None,
    *,
    env: Mapping[str, str] | None = None,
    profile_to: Path | None = None,
    timeout: float = 60.0,
) -> ControlPlaneHandle:
    """Start `python -m armonik_core.control_plane` on 127.0.0.1:`port`, its state under `data_dir`.

    With `profile_to`, the process runs under cProfile and writes its statistics there when it stops.
    """
    port = port or free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir.parent / f"control-plane-{port}.log"
    full_env = {
        **os.environ,
        "ControlPlane__Host": "127.0.0.1",
        "ControlPlane__Port": str(port),
        "Embedded__DataDirectory": str(data_dir),
        **(env or {}),
    }
    command = [sys.executable]
    if profile_to is not None:
        command += ["-m", "cProfile", "-o", str(profile_to)]
    command += ["-m", "armonik_core.control_plane"]
    with open(log_path, "ab") as log:
        process = subprocess.Popen(command, env=full_env, stdout=log, stderr=log, cwd=ROOT)
    endpoint = f"127.0.0.1:{port}"
    wait_ready(endpoint, process, log_path, timeout)
    return ControlPlaneHandle(process, endpoint, log_path)


def peak_rss_bytes(pid: int) -> int | None:
    """The resident set size high-water mark (VmHWM) of a live process, or None if it cannot be read."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    value, unit = line.split()[1:3]
                    return int(value) * {"kB": 1024, "mB": 1024**2, "gB": 1024**3}.get(unit, 1)
    except (OSError, ValueError, IndexError):
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time consumed so far by a live process (all its threads), or None."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        # Fields 14 and 15 of proc(5) (utime, stime) are the 12th and 13th after the command name.
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def own_cpu_seconds() -> float:
    """User + system CPU time consumed so far by this process (all its threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def children_cpu_seconds() -> float:
    """User + system CPU time of this process's children that have exited and been waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def count_progress(console: Console, show: bool) -> Progress:
    """A bar counting tasks, with the time elapsed (`show=False`: nothing drawn, for logs)."""
    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=not show,
    )
