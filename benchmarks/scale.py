"""Scale, end to end: a session of `--tasks` no-op tasks (1,000,000 by default) and a layered graph, run to the
end on a local deployment, with the control plane's peak memory.

1. Deploy (`armonik-deploy`, its own generated folder and a free port) the quick-deploy parameters' storage
   (embedded) with `--agents` polling agents in partition `default`, running the no-op processor in process
   (`--worker inprocess`, the default) or as worker processes (`--worker separate`).
2. Session 1: `--tasks` tasks, each with the one shared payload and an output of its own, submitted in batches
   of `--batch` (results created, then tasks submitted, by the official SDK), while the agents already run the
   first ones. Then wait until the session counts `--tasks` COMPLETED tasks, and check that every output is
   COMPLETED (none lost, none failed).
3. Session 2: `--layers` layers of `--width` tasks, each task of a layer depending on the outputs of two tasks
   of the previous one, all submitted at once; wait until all complete.

Reported (a table, and a final JSON line): time and tasks/s of each part, the control plane's peak RSS
(`VmHWM`) and its RSS at the end, and its RSS while the whole first session was still queued.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
from armonik.client import ArmoniKResults, ArmoniKSessions, ArmoniKTasks
from armonik.common import Result, ResultStatus, Task, TaskDefinition, TaskOptions, TaskStatus

sys.path.insert(0, str(Path(__file__).resolve().parent))

from throughput import deploy, deployment_pids, destroy  # noqa: E402

OPTIONS = TaskOptions(max_duration=timedelta(minutes=10), max_retries=2, priority=1, partition_id="default")


def memory_mib(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (peak) of a process, in MiB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values


def completed(tasks: ArmoniKTasks, session_id: str) -> dict[TaskStatus, int]:
    return tasks.count_tasks_by_status(Task.session_id == session_id)


def wait_all(tasks: ArmoniKTasks, session_id: str, total: int, label: str) -> dict[TaskStatus, int]:
    last = 0.0
    while True:
        counts = completed(tasks, session_id)
        done = counts.get(TaskStatus.COMPLETED, 0)
        failed = sum(counts.get(s, 0) for s in (TaskStatus.ERROR, TaskStatus.CANCELLED, TaskStatus.TIMEOUT))
        if done + failed >= total:
            return counts
        if time.monotonic() - last > 30:
            print(f"{label}: {done:,} / {total:,} completed", file=sys.stderr, flush=True)
            last = time.monotonic()
        time.sleep(1.0)


def flat_session(channel: grpc.Channel, total: int, batch: int, pid: int) -> dict[str, Any]:
    sessions, results, tasks = ArmoniKSessions(channel), ArmoniKResults(channel), ArmoniKTasks(channel)
    session_id = sessions.create_session(OPTIONS, partition_ids=["default"])
    payload = results.create_results({"payload": b""}, session_id)["payload"].result_id
    started = time.perf_counter()
    for start in range(0, total, batch):
        count = min(batch, total - start)
        outputs = results.create_results_metadata(
            [f"o{start + i}" for i in range(count)], session_id, batch_size=batch
        )
        tasks.submit_tasks(
            session_id, [TaskDefinition(payload, [r.result_id]) for r in outputs.values()], chunk_size=batch
        )
    submitted = time.perf_counter() - started
    at_submission = memory_mib(pid)
    counts = wait_all(tasks, session_id, total, "flat session")
    elapsed = time.perf_counter() - started
    done_outputs, _ = results.list_results(
        (Result.session_id == session_id) & (Result.status == ResultStatus.COMPLETED),
        page_size=1,
    )
    sessions.close_session(session_id)
    return {
        "tasks": total,
        "submission_seconds": round(submitted, 1),
        "seconds": round(elapsed, 1),
        "tasks_per_second": round(total / elapsed, 1),
        "completed": counts.get(TaskStatus.COMPLETED, 0),
        "statuses": {TaskStatus(k).name: v for k, v in counts.items()},
        # The payload is a completed result too.
        "completed_outputs": done_outputs - 1,
        "control_plane_mib_after_submission": round(at_submission["VmRSS"], 1),
    }


def layered_session(channel: grpc.Channel, layers: int, width: int) -> dict[str, Any]:
    sessions, results, tasks = ArmoniKSessions(channel), ArmoniKResults(channel), ArmoniKTasks(channel)
    session_id = sessions.create_session(OPTIONS, partition_ids=["default"])
    payload = results.create_results({"payload": b""}, session_id)["payload"].result_id
    names = [f"l{layer}-{i}" for layer in range(layers) for i in range(width)]
    ids = {
        name: r.result_id
        for name, r in results.create_results_metadata(names, session_id, batch_size=5000).items()
    }
    definitions = []
    for layer in range(layers):
        for i in range(width):
            deps = [ids[f"l{layer - 1}-{i}"], ids[f"l{layer - 1}-{(i + 1) % width}"]] if layer else []
            definitions.append(TaskDefinition(payload, [ids[f"l{layer}-{i}"]], data_dependencies=deps))
    started = time.perf_counter()
    tasks.submit_tasks(session_id, definitions, chunk_size=1000)
    counts = wait_all(tasks, session_id, layers * width, "layered graph")
    elapsed = time.perf_counter() - started
    sessions.close_session(session_id)
    return {
        "layers": layers,
        "width": width,
        "seconds": round(elapsed, 1),
        "tasks_per_second": round(layers * width / elapsed, 1),
        "completed": counts.get(TaskStatus.COMPLETED, 0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--layers", type=int, default=100)
    parser.add_argument("--width", type=int, default=100)
    parser.add_argument("--agents", type=int, default=2)
    parser.add_argument("--worker", choices=("inprocess", "separate"), default="inprocess")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="ak-scale-") as tmp:
        generated = Path(tmp)
        endpoint, _ = deploy(generated, args.agents, None, args.worker)
        try:
            pid = deployment_pids(generated)["control-plane"][0]
            figures: dict[str, Any] = {"agents": args.agents, "worker": args.worker}
            with grpc.insecure_channel(endpoint) as channel:
                if args.layers and args.width:
                    figures["layered"] = layered_session(channel, args.layers, args.width)
                if args.tasks:
                    figures["flat"] = flat_session(channel, args.tasks, args.batch, pid)
            memory = memory_mib(pid)
            figures["control_plane_peak_rss_mib"] = round(memory["VmHWM"], 1)
            figures["control_plane_rss_mib_at_end"] = round(memory["VmRSS"], 1)
        finally:
            destroy(generated)
    print(json.dumps(figures))
    flat = figures.get("flat")
    if flat and (flat["completed"] != args.tasks or flat["completed_outputs"] != args.tasks):
        raise SystemExit(f"lost or failed tasks: {flat}")


if __name__ == "__main__":
    main()
