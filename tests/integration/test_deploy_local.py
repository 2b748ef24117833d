"""`armonik-deploy` end to end on the local target: the real control plane, stand-in agents and workers.

The polling agents, workers and metrics exporter of the parameters file are small Python scripts written by
the test that record their environment and sleep, so that supervision (restarts, environment, socket folders,
redeploy, destroy) is checked independently of the compute plane's code. The control plane is the real one:
the deployment must be healthy, its outputs must point at it, and a redeploy that adds a partition and
replicas must keep it running (same pid, sessions still there) while the new partition becomes usable at once.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from armonik.client import ArmoniKPartitions, ArmoniKSessions
from armonik.common import TaskOptions

from armonik_deploy import procs
from armonik_deploy.local import wait_healthy
from tests.support import QUICK_RESTARTS, clear_deployment_folder, deploy_cli, free_port

STAND_IN = """
import json, os, signal, sys, time
folder, name = sys.argv[1], sys.argv[2]
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
path = os.path.join(folder, f"{name}-{os.getpid()}.json")
with open(path + ".tmp", "w") as handle:
    json.dump({"pid": os.getpid(), "cwd": os.getcwd(), "env": dict(os.environ)}, handle)
os.replace(path + ".tmp", path)
while True:
    time.sleep(0.2)
"""

PARAMETERS = (
    'logging_level = "Information"\n'
    + QUICK_RESTARTS
    + """compute_plane = {{
{partitions}
}}
metrics_exporter = {{
  port    = {metrics_port}
  command = ["{{python}}", "{stand_in}", "{records}", "metrics"]
}}
"""
)

PARTITION = """
  {name} = {{
    replicas                         = {replicas}
    termination_grace_period_seconds = 2
    polling_agent = {{
      command = ["{{python}}", "{stand_in}", "{records}", "agent-{{partition}}-{{replica}}"]
    }}
    worker = [{{
      image   = "ignored/locally"
      command = ["{{python}}", "{stand_in}", "{records}", "worker-{{partition}}-{{replica}}"]
      env     = {{ MY_SETTING = "42" }}
    }}]
  }}
"""


class Deployment:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.generated = folder / "generated"
        self.records = folder / "records"
        self.records.mkdir()
        self.stand_in = folder / "stand_in.py"
        self.stand_in.write_text(STAND_IN)
        self.parameters = folder / "parameters.tfvars"
        self.port = free_port()
        self.metrics_port = free_port()
        self.endpoint = f"127.0.0.1:{self.port}"

    def write_parameters(self, partitions: dict[str, int]) -> None:
        blocks = "".join(
            PARTITION.format(name=name, replicas=replicas, stand_in=self.stand_in, records=self.records)
            for name, replicas in partitions.items()
        )
        self.parameters.write_text(
            PARAMETERS.format(
                port=self.port,
                metrics_port=self.metrics_port,
                partitions=blocks,
                stand_in=self.stand_in,
                records=self.records,
            )
        )

    def cli(self, *args: str, timeout: float = 90.0) -> subprocess.CompletedProcess[str]:
        return deploy_cli(self.generated, *args, timeout=timeout)

    def deploy(self) -> subprocess.CompletedProcess[str]:
        result = self.cli("deploy", "--parameters", str(self.parameters))
        assert result.returncode == 0, result.stdout + result.stderr + self.logs()
        return result

    def state(self) -> dict[str, Any]:
        return dict(json.loads((self.generated / "deploy" / "state.json").read_text()))

    def processes(self) -> dict[str, dict[str, Any]]:
        return {p["name"]: p for p in self.state()["processes"]}

    def records_of(self, name: str) -> list[dict[str, Any]]:
        found = []
        for path in self.records.glob(f"{name}-*.json"):
            found.append(json.loads(path.read_text()))
        return sorted(found, key=lambda r: r["pid"])

    def wait(self, condition: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.05)
        raise AssertionError(f"condition not met in {timeout}s\n{self.logs()}")

    def logs(self) -> str:
        logs = self.generated / "logs"
        parts = []
        for name in ("supervisor", "init", "control-plane"):
            path = logs / f"{name}.log"
            if path.exists():
                parts.append(
                    f"--- {name}.log\n" + "\n".join(path.read_text(errors="replace").splitlines()[-20:])
                )
        return "\n".join(parts)

    def all_pids(self) -> set[int]:
        pids = {int(p.stem.rsplit("-", 1)[1]) for p in self.records.glob("*.json")}
        state_file = self.generated / "deploy" / "state.json"
        if state_file.exists():
            state = json.loads(state_file.read_text())
            pids |= {p["pid"] for p in state["processes"] if p.get("pid")}
            pids.add(state["supervisor_pid"])
        return pids


@pytest.fixture
def deployment() -> Iterator[Deployment]:
    folder = Path(tempfile.mkdtemp(prefix="akdl-", dir="/tmp"))  # short: unix socket paths live under it
    deployment = Deployment(folder)
    seen: set[int] = set()
    try:
        yield deployment
    finally:
        if (deployment.generated / "deploy" / "state.json").exists():  # the test did not destroy it
            seen = deployment.all_pids()
            deployment.cli("destroy", timeout=60)
        clear_deployment_folder(folder, seen)


def options(partition: str) -> TaskOptions:
    return TaskOptions(max_duration=timedelta(seconds=60), priority=1, max_retries=1, partition_id=partition)


def test_deploy_restart_redeploy_and_destroy(deployment: Deployment) -> None:
    d = deployment
    d.write_parameters({"default": 1})

    # -- deploy: outputs, health, every process with its environment --------------------------------------
    result = d.deploy()
    cli_config = (d.generated / "armonik-cli.yaml").resolve()
    assert f"export AKCONFIG={cli_config}" in result.stdout.splitlines()
    assert yaml.safe_load(cli_config.read_text()) == {"endpoint": d.endpoint}
    output = json.loads((d.generated / "armonik-output.json").read_text())
    assert output == {
        "armonik": {
            "control_plane_url": f"http://{d.endpoint}",
            "admin_app_url": None,
            "grafana_url": None,
            "seq_web_url": None,
            "chaos_mesh_url": None,
        }
    }
    wait_healthy(d.endpoint, timeout=5)
    processes = d.processes()
    assert list(processes) == [
        "control-plane",
        "default-0-polling-agent",
        "default-0-worker",
        "metrics-exporter",
    ]
    assert all(p["status"] == "running" for p in processes.values())
    control_plane_pid = processes["control-plane"]["pid"]
    assert "armonik_core.control_plane" in " ".join(procs.command_line(control_plane_pid))

    d.wait(
        lambda: bool(
            d.records_of("worker-default-0") and d.records_of("agent-default-0") and d.records_of("metrics")
        )
    )
    cache = d.generated.resolve() / "cache"
    for who in ("worker-default-0", "agent-default-0"):
        env = d.records_of(who)[0]["env"]
        assert env["ComputePlane__WorkerChannel__Address"] == str(cache / "default-0" / "armonik_worker.sock")
        assert env["ComputePlane__AgentChannel__Address"] == str(cache / "default-0" / "armonik_agent.sock")
        assert env["Pollster__SharedCacheFolder"] == str(cache / "shared")
        assert env["Pollster__PartitionId"] == "default"
        assert env["Pollster__AgentId"] == "default-0"
        assert env["Embedded__DataDirectory"] == str(d.generated.resolve() / "data")
        assert (cache / "default-0").is_dir()
    agent = d.records_of("agent-default-0")[0]["env"]
    assert (
        agent["ComputeGateway__Endpoint"]
        == f"unix://{d.generated.resolve() / 'data' / 'compute-gateway.sock'}"
    )
    assert "ComputeGateway__CredentialFile" not in d.records_of("worker-default-0")[0]["env"]
    assert d.records_of("worker-default-0")[0]["env"]["MY_SETTING"] == "42"
    assert d.records_of("metrics")[0]["env"]["MetricsExporter__Port"] == str(d.metrics_port)
    assert (d.generated / "logs" / "default-0-worker.log").exists()

    status = d.cli("status")
    assert status.returncode == 0
    for name in processes:
        assert name in status.stdout
    assert "running" in status.stdout

    # -- a killed child is restarted ------------------------------------------------------------------------
    worker_pid = processes["default-0-worker"]["pid"]
    os.kill(worker_pid, signal.SIGKILL)
    d.wait(
        lambda: (
            d.processes()["default-0-worker"]["restarts"] == 1
            and d.processes()["default-0-worker"]["status"] == "running"
        )
    )
    d.wait(lambda: len(d.records_of("worker-default-0")) == 2)
    assert d.processes()["default-0-worker"]["pid"] != worker_pid
    assert not procs.alive(worker_pid)
    assert "killed by signal 9" in (d.generated / "logs" / "supervisor.log").read_text()

    # -- a session created now survives the redeploy --------------------------------------------------------
    with grpc.insecure_channel(d.endpoint) as channel:
        sessions = ArmoniKSessions(channel)
        session_id = sessions.create_session(options("default"), ["default"])
        with pytest.raises(grpc.RpcError):
            sessions.create_session(options("extra"), ["extra"])  # not a partition yet

    # -- redeploy: a new partition and more replicas, same control plane ----------------------------------
    d.write_parameters({"default": 2, "extra": 1})
    before = d.processes()
    result = d.deploy()
    after = d.processes()
    assert after["control-plane"]["pid"] == control_plane_pid
    assert after["control-plane"]["restarts"] == 0
    for name in ("default-0-polling-agent", "default-0-worker", "metrics-exporter"):
        assert after[name]["pid"] == before[name]["pid"], name
    assert {"default-1-polling-agent", "default-1-worker", "extra-0-polling-agent", "extra-0-worker"} <= set(
        after
    )
    d.wait(lambda: all(p["status"] == "running" for p in d.processes().values()))
    d.wait(lambda: bool(d.records_of("worker-extra-0") and d.records_of("agent-default-1")))
    assert d.records_of("agent-default-1")[0]["env"]["Pollster__AgentId"] == "default-1"
    assert d.records_of("worker-extra-0")[0]["env"]["ComputePlane__WorkerChannel__Address"] == str(
        cache / "extra-0" / "armonik_worker.sock"
    )
    with grpc.insecure_channel(d.endpoint) as channel:
        sessions = ArmoniKSessions(channel)
        assert sessions.get_session(session_id).session_id == session_id
        assert sessions.get_session(sessions.create_session(options("extra"), ["extra"])).partition_ids == [
            "extra"
        ]
        _, partitions = ArmoniKPartitions(channel).list_partitions()
        pod_max = {p.id: p.pod_max for p in partitions}
        assert pod_max["default"] == 2 and pod_max["extra"] == 1

    # -- destroy: nothing left -----------------------------------------------------------------------------
    pids = d.all_pids()
    assert len(pids) >= 9  # supervisor, control plane, 3 pairs, metrics exporter, and the restarted worker
    result = d.cli("destroy")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "control-plane" in result.stdout
    assert not [pid for pid in pids if procs.alive(pid)]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", d.port))  # the port is free again
    status = d.cli("status")
    assert "Nothing is running" in status.stdout
    again = d.cli("destroy")
    assert again.returncode == 0 and "nothing was running" in again.stdout


def test_processes_left_by_a_killed_supervisor_are_found_and_stopped(deployment: Deployment) -> None:
    d = deployment
    d.write_parameters({"default": 1})
    d.deploy()
    first = d.processes()
    supervisor = d.state()["supervisor_pid"]
    os.kill(supervisor, signal.SIGKILL)
    d.wait(lambda: not procs.alive(supervisor))
    children = [p["pid"] for p in first.values()]
    assert all(procs.alive(pid) for pid in children)  # orphaned, still serving

    status = d.cli("status")
    assert "not running" in status.stdout and "orphaned" in status.stdout

    # deploying again stops what the dead supervisor left, then starts afresh on the same data
    d.deploy()
    assert not [pid for pid in children if procs.alive(pid)]
    assert d.processes()["control-plane"]["pid"] != first["control-plane"]["pid"]
    wait_healthy(d.endpoint, timeout=5)

    # and destroy after another supervisor crash stops the leftovers too
    second = d.state()
    os.kill(second["supervisor_pid"], signal.SIGKILL)
    d.wait(lambda: not procs.alive(second["supervisor_pid"]))
    result = d.cli("destroy")
    assert result.returncode == 0 and "control-plane" in result.stdout
    assert not [p["pid"] for p in second["processes"] if procs.alive(p["pid"])]
