"""The local target: ArmoniK's processes on this machine, with embedded storage, kept running by a supervisor.

`apply_plan` writes the plan under `<generated>/deploy/` and either starts the supervisor (detached, in its
own session, so that it outlives the command and a terminal's Ctrl-C) or, when one already runs for this
generated folder, asks it to apply the new plan (SIGHUP), then waits until it reports the plan applied.
`destroy` stops the supervisor, which stops every process it started; processes left behind by a supervisor
that was killed are found in its state file and stopped too (checked by pid and start time, so that nothing
else is touched).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from armonik_deploy import procs
from armonik_deploy.certificates import CertificateError
from armonik_deploy.gateway_secret import prepare_gateway_files
from armonik_deploy.memory import MemoryFolderError, memory_root, prepare_memory_root, remove_memory_root
from armonik_deploy.plan import Plan
from armonik_deploy.supervisor import Layout, write_json_atomic
from armonik_deploy.tls import TlsPlan, channel_credentials, prepare_certificates

SUPERVISOR_MODULE = "armonik_deploy.supervisor"


class DeployError(RuntimeError):
    """The deployment could not be brought to the requested state; the message says why."""


def tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def read_state(layout: Layout) -> dict[str, Any] | None:
    try:
        data = json.loads(layout.state.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def supervisor_pid(layout: Layout) -> int | None:
    """The pid of the supervisor of this generated folder, if one runs (it holds the supervisor lock)."""
    if not procs.locked_by_other(layout.lock):
        return None
    for _ in range(50):  # the lock is taken just before the pid is written
        try:
            text = layout.lock.read_text().strip()
        except OSError:
            text = ""
        if text.isdigit() and procs.alive(int(text)):
            return int(text)
        time.sleep(0.02)
    return None


def _is_supervisor(pid: int) -> bool:
    command = procs.command_line(pid)
    return not command or any(SUPERVISOR_MODULE in part for part in command)


@dataclass(frozen=True, slots=True)
class Leftover:
    name: str
    pid: int


def leftovers(layout: Layout) -> list[Leftover]:
    """Processes recorded by a supervisor that is gone, still alive (same pid and start time)."""
    state = read_state(layout)
    if not state:
        return []
    found = []
    for entry in state.get("processes", []):
        pid = entry.get("pid")
        if isinstance(pid, int) and procs.same_process(pid, entry.get("identity")):
            found.append(Leftover(str(entry.get("name")), pid))
    return found


def legacy_processes(layout: Layout) -> list[Leftover]:
    """Control planes started by the previous `make deploy` (pid files under `<generated>/pids`)."""
    found = []
    folder = layout.generated / "pids"
    for pid_file in sorted(folder.glob("*.pid")) if folder.is_dir() else []:
        text = pid_file.read_text().strip()
        pid = int(text) if text.isdigit() else 0
        if pid and procs.alive(pid) and any("armonik" in part for part in procs.command_line(pid)):
            found.append(Leftover(pid_file.stem, pid))
        else:
            pid_file.unlink(missing_ok=True)
    return found


def _stop_leftovers(layout: Layout, grace: float) -> list[str]:
    found = leftovers(layout) + legacy_processes(layout)
    procs.terminate([p.pid for p in found], grace)
    for pid_file in (layout.generated / "pids").glob("*.pid"):
        pid_file.unlink(missing_ok=True)
    return [p.name for p in found]


def port_in_use(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def start_supervisor(layout: Layout) -> int:
    layout.logs.mkdir(parents=True, exist_ok=True)
    with open(layout.log_of("supervisor"), "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", SUPERVISOR_MODULE, str(layout.generated)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    return process.pid


def wait_applied(layout: Layout, plan_id: str, pid: int, timeout: float) -> dict[str, Any]:
    """Wait until the supervisor `pid` reports `plan_id` applied; its state then."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = read_state(layout)
        if state and state.get("supervisor_pid") == pid:
            if state.get("plan_id") == plan_id:
                return state
            if state.get("plan_error"):
                raise DeployError(f"the supervisor could not apply the plan: {state['plan_error']}")
        if not procs.alive(pid):
            raise DeployError(
                f"the supervisor (pid {pid}) exited; its log ({layout.log_of('supervisor')}) ends with:\n"
                + tail(layout.log_of("supervisor"))
            )
        time.sleep(0.05)
    raise DeployError(f"the supervisor (pid {pid}) did not apply the plan within {timeout:.0f}s")


def apply_plan(
    layout: Layout, plan: Plan, listen: tuple[str, int], timeout: float = 120.0
) -> tuple[int, bool]:
    """Run `plan`: start the supervisor, or make the running one apply it. (supervisor pid, started?)."""
    try:
        prepare_certificates(plan)  # before the plan is written: it records the certificates' digest
        prepare_gateway_files(plan)
        if plan.memory_root is not None:  # before any process creates a folder in it
            prepare_memory_root(Path(plan.memory_root))
    except (CertificateError, MemoryFolderError) as exc:
        raise DeployError(str(exc)) from None
    write_json_atomic(layout.plan, json.loads(plan.to_json()))
    pid = supervisor_pid(layout)
    if pid is not None and _is_supervisor(pid):
        os.kill(pid, signal.SIGHUP)
        wait_applied(layout, plan.plan_id, pid, timeout)
        return pid, False
    _stop_leftovers(layout, grace=10.0)
    host, port = listen
    if port_in_use(host, port):
        raise DeployError(
            f"port {port} on {host} is already in use by another program: stop it, or choose another port "
            "with control_plane.port in the parameters"
        )
    layout.state.unlink(missing_ok=True)
    pid = start_supervisor(layout)
    wait_applied(layout, plan.plan_id, pid, timeout)
    return pid, True


def wait_healthy(endpoint: str, timeout: float, log: Path | None = None, tls: TlsPlan | None = None) -> None:
    """Wait until every service of the control plane reports HEALTHY (over TLS with `tls`)."""
    import grpc  # imported here: `status` and `destroy` do not need gRPC
    from armonik.protogen.client.health_checks_service_pb2_grpc import HealthChecksServiceStub
    from armonik.protogen.common.health_checks_common_pb2 import (
        HEALTH_STATUS_ENUM_HEALTHY,
        CheckHealthRequest,
    )

    deadline = time.monotonic() + timeout
    last_error = "no answer"
    while time.monotonic() < deadline:
        with (
            grpc.secure_channel(endpoint, channel_credentials(tls))
            if tls
            else grpc.insecure_channel(endpoint)
        ) as channel:
            try:
                reply = HealthChecksServiceStub(channel).CheckHealth(CheckHealthRequest(), timeout=2)
                if all(s.healthy == HEALTH_STATUS_ENUM_HEALTHY for s in reply.services):
                    return
                last_error = "; ".join(f"{s.name}: {s.message}" for s in reply.services)
            except grpc.RpcError as exc:
                last_error = exc.details() or str(exc.code())
        time.sleep(0.2)
    message = f"the control plane at {endpoint} is not healthy after {timeout:.0f}s: {last_error}"
    if log is not None and log.exists():
        message += f"\nits log ({log}) ends with:\n{tail(log)}"
    raise TimeoutError(message)


def destroy(layout: Layout, timeout: float | None = None) -> list[str]:
    """Stop the supervisor (which stops every process it started) and anything it left behind, then remove the
    deployment's data kept in memory."""
    stopped: list[str] = []
    plan = _read_plan(layout)
    pid = supervisor_pid(layout)
    if pid is not None and _is_supervisor(pid):
        state = read_state(layout) or {}
        names = [str(p.get("name")) for p in state.get("processes", []) if p.get("pid")]
        if timeout is None:
            graces = [p.grace for p in plan.processes] if plan else []
            # two waves (compute plane, then control plane), each up to its longest grace, plus a margin
            timeout = 2 * max(graces, default=10.0) + 15.0
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and procs.alive(pid):
            time.sleep(0.05)
        if procs.alive(pid):
            os.kill(pid, signal.SIGKILL)
            while procs.alive(pid):
                time.sleep(0.05)
        stopped = ["supervisor", *names]
    stopped += _stop_leftovers(layout, grace=10.0)
    layout.state.unlink(missing_ok=True)
    # Its name follows from the generated folder: removed even when the last plan no longer kept data there.
    remove_memory_root(memory_root(layout.generated))
    if plan is not None and plan.memory_root is not None:
        remove_memory_root(Path(plan.memory_root))
    return stopped


def _read_plan(layout: Layout) -> Plan | None:
    try:
        return Plan.from_json(layout.plan.read_text())
    except (OSError, ValueError, TypeError, KeyError):
        return None


@dataclass(frozen=True, slots=True)
class ProcessStatus:
    name: str
    role: str
    pid: int | None
    status: str
    restarts: int
    uptime: float | None
    last_exit: int | None
    log: str


def status(layout: Layout) -> tuple[int | None, list[ProcessStatus]]:
    """(supervisor pid or None, the processes it reports); without a supervisor, the leftovers only."""
    pid = supervisor_pid(layout)
    state = read_state(layout)
    rows = []
    if pid is not None and state and state.get("supervisor_pid") == pid:
        now = time.time()
        for entry in state.get("processes", []):
            started = entry.get("started_at")
            running = entry.get("status") == "running" and isinstance(started, (int, float))
            rows.append(
                ProcessStatus(
                    name=str(entry.get("name")),
                    role=str(entry.get("role")),
                    pid=entry.get("pid"),
                    status=str(entry.get("status")),
                    restarts=int(entry.get("restarts", 0)),
                    uptime=now - started if running else None,
                    last_exit=entry.get("last_exit"),
                    log=str(entry.get("log", "")),
                )
            )
        return pid, rows
    for left in leftovers(layout) + legacy_processes(layout):
        rows.append(ProcessStatus(left.name, "leftover", left.pid, "orphaned", 0, None, None, ""))
    return None, rows
