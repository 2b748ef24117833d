"""The benchmark scripts run end to end on small workloads and report consistent figures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def run_benchmark(
    script: str, *args: str, progress: bool = True
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """Run a benchmark script as a user does (without its progress bar, when it has one); its figures are the
    JSON of its last line."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args, *(["--no-progress"] if progress else [])],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done, json.loads(done.stdout.strip().splitlines()[-1])


def test_throughput_reports_rates_round_trips_and_cpu_per_task() -> None:
    done, figures = run_benchmark(
        "throughput.py", "--tasks", "60", "--round-trips", "5", "--no-dask", "--no-ray"
    )
    assert figures["tasks"] == 60 and figures["pairs"] == 2
    assert figures["armonik_tasks_per_second"] > 0 and figures["protocol_ceiling_calls_per_second"] > 0
    assert figures["armonik_round_trip"]["p50_ms"] <= figures["armonik_round_trip"]["p99_ms"]
    cpu = figures["cpu_ms_per_task"]
    assert set(cpu["armonik"]) == {"control-plane", "polling-agent", "worker", "client"}
    # /proc counts CPU in clock ticks (10 ms): on 60 tasks a light process may show none.
    assert all(ms >= 0 for ms in cpu["armonik"].values()) and sum(cpu["armonik"].values()) > 0
    assert set(cpu["protocol_ceiling"]) == {"agent", "worker"}
    assert cpu["cores"] == os.cpu_count()
    bound = 1000 * cpu["cores"] / sum(cpu["armonik"].values())
    assert abs(figures["armonik_cpu_bound_tasks_per_second"] - bound) <= 0.1
    assert "CPU per task (ms, all threads)" in done.stdout
    # the round trip step by step: every milestone, in the order they happen, the last one the download
    milestones = figures["armonik_round_trip_milestones_ms"]
    assert set(milestones) == {
        "output created",
        "task submitted",
        "taken by an agent",
        "submit call returned",
        "inputs staged",
        "worker called",
        "worker answered",
        "outcome recorded",
        "client told the result is ready",
        "result downloaded",
    }
    order = list(milestones)
    assert order.index("task submitted") < order.index("taken by an agent") < order.index("inputs staged")
    assert order.index("inputs staged") < order.index("worker called") < order.index("worker answered")
    assert order.index("worker answered") < order.index("outcome recorded") < order.index("result downloaded")
    assert order[-1] == "result downloaded" and list(milestones.values()) == sorted(milestones.values())
    assert "A round trip, step by step (medians)" in done.stdout


def memory_folders() -> set[Path]:
    return set(Path("/dev/shm").glob(f"armonik-{os.getuid()}-*"))


def test_throughput_compares_data_on_disk_and_in_memory_alternately() -> None:
    before = memory_folders()
    done, figures = run_benchmark(
        "throughput.py",
        *("--tasks", "40", "--round-trips", "3", "--no-dask", "--no-ray", "--no-ceiling"),
        *("--worker", "inprocess", "--backends", "embedded,embedded-memory", "--repeat", "2"),
    )
    # alternated: disk, memory, disk, memory, each run on a deployment of its own
    assert list(figures["runs"]) == [
        "inprocess / embedded #1",
        "inprocess / embedded-memory #1",
        "inprocess / embedded #2",
        "inprocess / embedded-memory #2",
    ]
    for run in figures["runs"].values():
        assert run["tasks_per_second"] > 0
        assert set(run["cpu_ms_per_task"]) == {"control-plane", "polling-agent", "client"}
    assert len(figures["load_average_at_start"]) == 3 and len(figures["load_average"]) == 3
    assert "By run" in done.stdout
    assert memory_folders() <= before, "every deployment's memory folder is removed when it is destroyed"


def test_listing_reads_every_task_of_a_session_page_by_page() -> None:
    done, figures = run_benchmark("listing.py", "--tasks", "2500", "--page-size", "500")
    assert figures["tasks"] == 2500 and figures["page_size"] == 500
    assert figures["pages"] == 6  # five full pages, then the empty one that ends the read
    assert 0 < figures["first_page_ms"] and 0 < figures["median_page_ms"] and figures["read_seconds"] > 0
    assert figures["control_plane_cpu_seconds"] is not None and figures["analytics_seconds"] > 0
    assert "Reading a session of 2,500 tasks" in done.stdout


def test_state_store_measures_both_ways_of_acquiring_and_finishing() -> None:
    _, figures = run_benchmark(
        "state_store.py", "--tasks", "40", "--batch", "8", "--repeats", "2", progress=False
    )
    assert (figures["tasks"], figures["batch"]) == (40, 8)
    per_task = figures["cpu_us_per_task"]
    assert set(per_task) == {"call by call", "batch"}
    assert all(len(values) == 2 and all(us > 0 for us in values) for values in per_task.values())
    assert figures["median_ratio"] > 0
