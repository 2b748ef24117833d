"""The metrics exporter as its own process beside a real control plane, reading the same data directory.

Tasks are created through the official `armonik` client; no compute plane runs, so they stay where the
submission put them (SUBMITTED when ready, PENDING while waiting on data), and every count is exact.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from armonik.client import ArmoniKResults, ArmoniKSessions, ArmoniKTasks
from armonik.common import TaskDefinition, TaskOptions

from armonik_core.metrics import parse_text
from tests.support import free_port

try:
    from tests.conftest import ControlPlaneProcess
except ModuleNotFoundError:  # run as `pytest` rather than `python -m pytest`: only tests/ is on sys.path
    from conftest import ControlPlaneProcess  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parents[2]
CACHE_VALIDITY = 0.2
STATUSES = (
    "creating",
    "submitted",
    "dispatched",
    "completed",
    "error",
    "timeout",
    "cancelling",
    "cancelled",
    "processing",
    "processed",
    "retried",
    "pending",
    "paused",
)


@dataclass
class Exporter:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.url(path), timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def scrape(self) -> dict[str, float]:
        """A scrape taken after the cache of the previous one expired."""
        time.sleep(CACHE_VALIDITY + 0.05)
        status, text = self.get("/metrics")
        assert status == 200, text
        return parse_text(text)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def start_exporter(data_dir: Path, **env: str) -> Exporter:
    port = free_port()
    log_path = data_dir.parent / f"metrics-exporter-{port}.log"
    variables = {
        **os.environ,
        "MetricsExporter__Host": "127.0.0.1",
        "MetricsExporter__Port": str(port),
        "MetricsExporter__CacheValidity": str(CACHE_VALIDITY),
        "Embedded__DataDirectory": str(data_dir),
        **env,
    }
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "armonik_core.metrics"], env=variables, stdout=log, stderr=log, cwd=ROOT
        )
    exporter = Exporter(process, port, log_path)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"exporter exited: {exporter.logs()}")
        try:
            if exporter.get("/healthz")[0] == 200:
                return exporter
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise TimeoutError(f"exporter not ready: {exporter.logs()}")


@contextlib.contextmanager
def running_exporter(data_dir: Path, **env: str) -> Iterator[Exporter]:
    """An exporter for the time of a block, killed after it unless the block stopped it itself."""
    started = start_exporter(data_dir, **env)
    try:
        yield started
    finally:
        if started.process.poll() is None:
            started.process.kill()
            started.process.wait(10)


@pytest.fixture
def control_plane(tmp_path: Path) -> Iterator[ControlPlaneProcess]:
    """A control plane on the file queue, whose depth another process (the exporter) can read."""
    plane = ControlPlaneProcess(tmp_path / "data", env={"Components__QueueStorage": "embedded"})
    plane.start()
    yield plane
    plane.kill()


@pytest.fixture
def exporter(control_plane: ControlPlaneProcess) -> Iterator[Exporter]:
    with running_exporter(control_plane.data_dir, Components__QueueStorage="embedded") as started:
        yield started


def assert_tasks(values: dict[str, float], partition: str, **expected: int) -> None:
    """The named task counts of one partition ("": of all of them), compared in one assertion."""
    prefix = f"armonik_{partition}_tasks_" if partition else "armonik_tasks_"
    assert {status: values[prefix + status] for status in expected} == expected, partition


def options(partition: str) -> TaskOptions:
    return TaskOptions(max_duration=timedelta(seconds=60), priority=1, max_retries=1, partition_id=partition)


def submit(channel: grpc.Channel, partition: str, ready: int, waiting: int) -> tuple[str, list[str]]:
    """A session on `partition` with `ready` tasks (no data dependency) and `waiting` tasks that wait on a
    result nobody produces; returns the session and the ready tasks' ids."""
    sessions, results, tasks = ArmoniKSessions(channel), ArmoniKResults(channel), ArmoniKTasks(channel)
    session_id = sessions.create_session(options(partition), [partition])
    n = ready + waiting
    outputs = results.create_results_metadata([f"out {i}" for i in range(n)] + ["never"], session_id)
    payloads = results.create_results({f"payload {i}": b"x" for i in range(n)}, session_id, batch_size=n)
    definitions = [
        TaskDefinition(
            payloads[f"payload {i}"].result_id,
            expected_output_ids=[outputs[f"out {i}"].result_id],
            data_dependencies=[] if i < ready else [outputs["never"].result_id],
        )
        for i in range(n)
    ]
    submitted = tasks.submit_tasks(session_id, definitions)
    return session_id, [task.id for task in submitted[:ready]]


def test_counts_follow_submissions_and_cancellations(
    control_plane: ControlPlaneProcess, exporter: Exporter, channel: grpc.Channel
) -> None:
    values = exporter.scrape()
    for status in STATUSES:
        assert values[f"armonik_tasks_{status}"] == 0
        assert values[f"armonik_default_tasks_{status}"] == 0
        assert values[f"armonik_pymonik_tasks_{status}"] == 0
    assert values["armonik_tasks_queued"] == 0

    _, default_ready = submit(channel, "default", ready=3, waiting=2)
    submit(channel, "pymonik", ready=4, waiting=0)
    values = exporter.scrape()
    assert_tasks(values, "", submitted=7, pending=2, queued=7)
    assert_tasks(values, "default", submitted=3, pending=2, queued=3)
    assert_tasks(values, "pymonik", submitted=4, pending=0, queued=4)
    depths = ("armonik_default_queue_depth", "armonik_pymonik_queue_depth", "armonik_queue_depth")
    assert [values[name] for name in depths] == [3, 4, 7]
    assert_tasks(values, "", completed=0, error=0, cancelled=0, dispatched=0, processing=0)

    ArmoniKTasks(channel).cancel_tasks(default_ready[:2])
    values = exporter.scrape()
    assert_tasks(values, "default", cancelled=2, submitted=1, queued=1)
    assert_tasks(values, "", cancelled=2, submitted=5)
    assert_tasks(values, "pymonik", submitted=4)


def test_scrapes_within_the_cache_validity_share_one_collection(
    control_plane: ControlPlaneProcess, channel: grpc.Channel
) -> None:
    with running_exporter(control_plane.data_dir, MetricsExporter__CacheValidity="00:01:00") as exporter:
        before = parse_text(exporter.get("/metrics")[1])
        submit(channel, "default", ready=2, waiting=0)
        after = parse_text(exporter.get("/metrics")[1])
        assert before["armonik_default_tasks_submitted"] == after["armonik_default_tasks_submitted"] == 0


def test_partition_names_are_sanitised(tmp_path: Path) -> None:
    plane = ControlPlaneProcess(
        tmp_path / "data",
        env={
            "InitServices__Partitioning__Partitions__0": json.dumps({"PartitionId": "gpu-large"}),
            "InitServices__Partitioning__Partitions__1": json.dumps({"PartitionId": "cpu.small"}),
        },
    )
    plane.start()
    try:
        with running_exporter(plane.data_dir) as exporter, grpc.insecure_channel(plane.endpoint) as channel:
            submit(channel, "gpu-large", ready=2, waiting=1)
            values = exporter.scrape()
        assert_tasks(values, "gpu_large", submitted=2, pending=1, queued=2)
        assert_tasks(values, "cpu_small", queued=0)
        assert not any(name.startswith("armonik_default_") for name in values)
    finally:
        plane.kill()


def test_health_and_clean_stop(control_plane: ControlPlaneProcess, exporter: Exporter) -> None:
    assert exporter.get("/liveness") == (200, "Healthy\n")
    assert exporter.get("/readiness") == (200, "Healthy\n")
    assert exporter.get("/nothing")[0] == 404
    exporter.process.send_signal(signal.SIGTERM)
    assert exporter.process.wait(15) == 0
    assert "metrics exporter stopped" in exporter.logs()


def test_survives_the_control_plane_restarting(
    control_plane: ControlPlaneProcess, exporter: Exporter
) -> None:
    with grpc.insecure_channel(control_plane.endpoint) as channel:
        submit(channel, "default", ready=1, waiting=0)
    control_plane.kill()
    assert exporter.scrape()["armonik_default_tasks_submitted"] == 1  # the data is still there to read
    control_plane.start()
    with grpc.insecure_channel(control_plane.endpoint) as channel:
        submit(channel, "default", ready=1, waiting=0)
    assert exporter.scrape()["armonik_default_tasks_submitted"] == 2


def test_bad_configuration_exits_with_status_2(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "armonik_core.metrics"],
        env={**os.environ, "MetricsExporter__Port": "many", "Embedded__DataDirectory": str(tmp_path)},
        capture_output=True,
        timeout=30,
        cwd=ROOT,
    )
    assert completed.returncode == 2
    assert b"MetricsExporter__Port" in completed.stderr
