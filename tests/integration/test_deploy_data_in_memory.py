"""Data in memory on a real local deployment: objects and data folders on /dev/shm, kept across crashes.

`armonik-deploy deploy` with `local.object_storage.memory` and a partition whose `cache_config.memory` is set,
running the samples' processor in its polling agent. The tasks' payloads and outputs must be files under the
deployment's memory folder (private to this user) and none under the data directory on disk; the control plane
and the agent are then killed (SIGKILL) and restarted by the supervisor, and every result must still download
as it was. A memory folder opened to others stops the supervisor from starting a process there until it is
private again; `destroy` removes the memory folder.
"""

from __future__ import annotations

import json
import os
import signal
import time
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from armonik.client import ArmoniKEvents, ArmoniKResults, ArmoniKSessions, ArmoniKTasks
from armonik.common import TaskDefinition, TaskOptions

from armonik_deploy.local import wait_healthy
from armonik_deploy.memory import memory_root
from tests.support import free_port, local_deployment

TASKS = 20


def running_pid(generated: Path, name: str, other_than: int | None = None, timeout: float = 30.0) -> int:
    """The pid of the deployment's process `name` once it runs (and is not `other_than`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = json.loads((generated / "deploy" / "state.json").read_text())
        for process in state["processes"]:
            if process["name"] == name and process["status"] == "running" and process["pid"] != other_than:
                return int(process["pid"])
        time.sleep(0.1)
    raise TimeoutError(f"{name} is not running after {timeout:g} s")


def wait_for_error(generated: Path, name: str, timeout: float = 30.0) -> str:
    """The reason the supervisor last gave for not starting `name`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = json.loads((generated / "deploy" / "state.json").read_text())
        for process in state["processes"]:
            if process["name"] == name and process.get("last_error"):
                return str(process["last_error"])
        time.sleep(0.1)
    raise TimeoutError(f"no error reported for {name} after {timeout:g} s")


def object_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".tmp-")]


def submit_echoes(channel: grpc.Channel, session_id: str) -> dict[str, bytes]:
    """TASKS tasks echoing their payload into their output; result id -> expected data."""
    results = ArmoniKResults(channel)
    payloads = results.create_results({f"in-{i}": f"data {i}".encode() for i in range(TASKS)}, session_id)
    outputs = results.create_results_metadata([f"out-{i}" for i in range(TASKS)], session_id)
    ArmoniKTasks(channel).submit_tasks(
        session_id,
        [
            TaskDefinition(payloads[f"in-{i}"].result_id, [outputs[f"out-{i}"].result_id])
            for i in range(TASKS)
        ],
    )
    return {outputs[f"out-{i}"].result_id: f"data {i}".encode() for i in range(TASKS)}


@pytest.mark.timeout(300)
def test_objects_and_data_folders_in_memory_survive_a_crash_of_every_process() -> None:
    port = free_port()
    parameters = {
        "local": {
            "restart_delay": 0.5,
            "max_restart_delay": 1,
            "stop_grace_period": 5,
            "object_storage": {"memory": True},
        },
        "control_plane": {"port": port},
        "metrics_exporter": None,
        "compute_plane": {
            "default": {
                "replicas": 1,
                "termination_grace_period_seconds": 5,
                "cache_config": {"memory": True},
                "worker": [{"module": "armonik_samples.worker:dispatch"}],
            }
        },
    }
    options = TaskOptions(
        max_duration=timedelta(minutes=1),
        priority=1,
        max_retries=2,
        partition_id="default",
        options={"sample": "testing", "action": "echo"},
    )
    endpoint = f"127.0.0.1:{port}"
    with local_deployment(parameters, "akmem-") as generated:
        root = memory_root(generated)
        assert root.is_dir() and (root.stat().st_mode & 0o777) == 0o700 and root.stat().st_uid == os.getuid()
        agent = running_pid(generated, "default-0-polling-agent")
        environ = Path(f"/proc/{agent}/environ").read_bytes().split(b"\0")
        assert f"Pollster__SharedCacheFolder={root / 'shared'}".encode() in environ

        with grpc.insecure_channel(endpoint) as channel:
            session_id = ArmoniKSessions(channel).create_session(options, partition_ids=["default"])
            expected = submit_echoes(channel, session_id)
            ArmoniKEvents(channel).wait_for_result_availability(list(expected), session_id)
        stored = object_files(root / "objects")
        assert len(stored) >= 2 * TASKS, stored  # every payload and every output
        on_disk = generated / "data" / "objects"
        assert not on_disk.exists() or object_files(on_disk) == []

        control_plane = running_pid(generated, "control-plane")
        for pid in (control_plane, agent):
            os.killpg(pid, signal.SIGKILL)
        running_pid(generated, "control-plane", other_than=control_plane)
        running_pid(generated, "default-0-polling-agent", other_than=agent)
        wait_healthy(endpoint, 60)

        with grpc.insecure_channel(endpoint) as channel:
            results = ArmoniKResults(channel)
            assert {rid: results.download_result_data(rid, session_id) for rid in expected} == expected
            # The restarted agent still runs tasks, with its data folders and outputs in memory.
            more = submit_echoes(channel, session_id)
            ArmoniKEvents(channel).wait_for_result_availability(list(more), session_id)
            assert {rid: results.download_result_data(rid, session_id) for rid in more} == more
        assert len(object_files(root / "objects")) >= 4 * TASKS

        # A memory folder others may enter is no place for data: no process is started until it is private.
        os.chmod(root, 0o755)
        agent = running_pid(generated, "default-0-polling-agent")
        os.killpg(agent, signal.SIGKILL)
        refused = wait_for_error(generated, "default-0-polling-agent")
        assert "closed to others" in refused, refused
        os.chmod(root, 0o700)
        running_pid(generated, "default-0-polling-agent", other_than=agent)
    assert not root.exists(), "destroy removes the memory folder"
