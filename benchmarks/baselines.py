"""The reference points of `throughput.py`: the worker protocol's own ceiling, dask.distributed and Ray."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from _cluster import children_cpu_seconds, cpu_seconds

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Rate:
    tasks: int
    seconds: float
    #: CPU milliseconds per task spent by each kind of process (where measured), e.g. {"worker": 0.8}.
    cpu_ms_per_task: dict[str, float] | None = None

    @property
    def per_second(self) -> float:
        return self.tasks / self.seconds if self.seconds else 0.0


def protocol_ceiling(tasks: int, pairs: int) -> Rate:
    """`tasks` Process + NotifyResultData exchanges over `pairs` agent + worker process pairs, nothing else,
    with the CPU each side spent per call (the agents' from their exit accounting, the workers' from /proc)."""
    with tempfile.TemporaryDirectory(prefix="ak-protocol-") as tmp:
        root = Path(tmp)
        workers, agents = [], []
        share = [tasks // pairs + (1 if i < tasks % pairs else 0) for i in range(pairs)]
        for i in range(pairs):
            sockets = {"agent": str(root / f"agent-{i}.sock"), "worker": str(root / f"worker-{i}.sock")}
            env = {
                **os.environ,
                "ComputePlane__WorkerChannel__Address": sockets["worker"],
                "ComputePlane__AgentChannel__Address": sockets["agent"],
            }
            workers.append(
                subprocess.Popen(
                    [sys.executable, str(HERE / "_noop_worker.py")],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            agents.append((sockets, root / f"folder-{i}", share[i]))
        time.sleep(1.0)  # the workers' start-up is not part of their cost per call
        workers_before = sum((cpu_seconds(w.pid) or 0.0) for w in workers)
        children_before = children_cpu_seconds()
        started = time.perf_counter()
        runs = [
            subprocess.Popen(
                [
                    sys.executable,
                    str(HERE / "_protocol_agent.py"),
                    s["agent"],
                    s["worker"],
                    str(folder),
                    str(n),
                ],
                stdout=subprocess.PIPE,
            )
            for s, folder, n in agents
        ]
        outputs = [json.loads(run.communicate(timeout=600)[0]) for run in runs]
        wall = time.perf_counter() - started
        agents_cpu = children_cpu_seconds() - children_before  # includes the agents' start-up: an upper bound
        workers_cpu = sum((cpu_seconds(w.pid) or 0.0) for w in workers) - workers_before
        for worker in workers:
            worker.terminate()
            worker.wait(10)
    # The pairs start together; their common span is the slowest one's measured loop.
    calls = sum(o["calls"] for o in outputs)
    cpu = {"agent": 1000 * agents_cpu / calls, "worker": 1000 * workers_cpu / calls}
    return Rate(calls, max(max(o["seconds"] for o in outputs), 1e-9) if wall else 0.0, cpu)


def _noop(x: int) -> int:
    return x


def dask_baseline(tasks: int, round_trips: int) -> tuple[Rate, list[float]]:
    """No-op tasks on a LocalCluster of 2 single-thread worker processes, and single-task round trips."""
    from dask.distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            client.gather(client.map(_noop, range(100), pure=False))  # warm up
            started = time.perf_counter()
            client.gather(client.map(_noop, range(tasks), pure=False))
            rate = Rate(tasks, time.perf_counter() - started)
            latencies = []
            for i in range(round_trips):
                t0 = time.perf_counter()
                client.submit(_noop, i, pure=False).result()
                latencies.append(time.perf_counter() - t0)
    return rate, latencies


def ray_baseline(tasks: int, round_trips: int, cpus: int = 2) -> tuple[Rate, list[float]]:
    """No-op tasks on a local Ray instance of `cpus` worker processes (Ray's default: one per core), and
    single-task round trips; Ray (`pip install -e .[bench]`) is started and stopped here."""
    import ray

    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        noop = ray.remote(_noop)
        ray.get([noop.remote(i) for i in range(100)])  # warm up: the worker processes are started
        started = time.perf_counter()
        ray.get([noop.remote(i) for i in range(tasks)])
        rate = Rate(tasks, time.perf_counter() - started)
        latencies = []
        for i in range(round_trips):
            t0 = time.perf_counter()
            ray.get(noop.remote(i))
            latencies.append(time.perf_counter() - t0)
    finally:
        ray.shutdown()
    return rate, latencies


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": 1000 * percentile(values, 50),
        "p99_ms": 1000 * percentile(values, 99),
        "mean_ms": 1000 * statistics.fmean(values) if values else 0.0,
    }
