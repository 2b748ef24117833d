"""End-to-end throughput of the local deployment, next to its two reference points, in one run.

1. ArmoniK: `--tasks` no-op tasks (submitted, processed by the official Python worker SDK, results available)
   on a local deployment (`armonik-deploy`) with `--pairs` polling agent + worker pairs and embedded storage;
   then the round trip of a single task (submit, process, result downloaded), `--round-trips` times.
2. The ceiling of the worker protocol itself: as many `Worker.Process` calls, each answered by a
   `NotifyResultData`, between agent and worker processes with no storage, queue or control plane.
3. dask.distributed (LocalCluster, 2 single-thread worker processes) and Ray (a local instance of `--pairs`
   worker processes) on the same workload, as the baselines (`pip install -e .[bench]`).

`--worker separate,inprocess` runs step 1 with worker processes (the default), with the no-op processor run in
the polling agents themselves (`Worker__Module`), or both, one after the other: the first is the one the
summary compares; a table gives every run's tasks/s, its ratios to dask and Ray, and its round trip.

`--backends` runs step 1 on other storage, selected in the deployment's parameters file as a user would: a
comma-separated list of `<queue>+<objects>` with queue `memory` (embedded, the default), `rabbitmq` or
`activemq`, and objects `filesystem`, `shm` (the same, with the objects and the partition's data folders in
memory: `local.object_storage.memory` and `cache_config.memory`), `redis` or `s3` (a moto S3 server the script
starts); `embedded` is `memory+filesystem`, `embedded-memory` is `memory+shm`. RabbitMQ (127.0.0.1:5672), ActiveMQ (127.0.0.1:5673) and Redis (127.0.0.1:6379) must run.
`+mongodb` adds MongoDB state at `MONGODB_URI`. The first combination is the one compared with the references.

Figures are printed as a table and as a final JSON line; compare ratios within one run, as the machine's
load changes between runs. A second table gives the CPU time each kind of process spent per task (from /proc,
over the timed part), for ArmoniK and for the protocol ceiling: with every core busy, throughput is the number
of cores divided by the CPU per task, so the table shows where the time goes and what bounds the ratio.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
from armonik.client import ArmoniKEvents, ArmoniKResults, ArmoniKSessions, ArmoniKTasks
from armonik.common import TaskDefinition, TaskOptions
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _cluster import count_progress, cpu_seconds, free_port, own_cpu_seconds  # noqa: E402
from baselines import Rate, dask_baseline, protocol_ceiling, ray_baseline, summary  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
console = Console(stderr=True)


#: Rows of the CPU table: label, role in the deployment, matching process of the protocol ceiling.
BUDGET_ROWS = (
    ("control plane", "control-plane", None),
    ("polling agent", "polling-agent", "agent"),
    ("worker", "worker", "worker"),
    ("client (this script)", "client", None),
)

QUEUES = ("memory", "rabbitmq", "activemq")
OBJECTS = ("filesystem", "shm", "redis", "s3")
ALIASES = {"embedded": ("memory", "filesystem"), "embedded-memory": ("memory", "shm")}


def parse_backends(text: str) -> list[tuple[str, ...]]:
    """`embedded,rabbitmq+redis` -> [("memory", "filesystem"), ("rabbitmq", "redis")]."""
    combos = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        parts = ALIASES.get(item) or tuple(item.split("+"))
        queue, objects, *state = parts + (("filesystem",) if len(parts) == 1 else ())
        if queue not in QUEUES or objects not in OBJECTS or state not in ([], ["mongodb"]):
            raise SystemExit(
                f"--backends: {item!r} is not <queue>+<objects>[+mongodb] "
                f"(queues {', '.join(QUEUES)}; objects {', '.join(OBJECTS)})"
            )
        combos.append((queue, objects, *state))
    return combos


def storage_blocks(combo: tuple[str, ...], s3_endpoint: str | None) -> dict[str, Any]:
    """The parameters blocks of a backend combination, with names of this run's own on the shared services."""
    run = uuid.uuid4().hex[:8]
    blocks: dict[str, Any] = {}
    queue, objects, *state = combo
    if queue == "rabbitmq":
        blocks["rabbitmq"] = {"prefix": f"bench-{run}"}
    elif queue == "activemq":
        blocks["activemq"] = {"prefix": f"bench-{run}."}
    if objects == "redis":
        blocks["redis"] = {"instance_name": f"bench-{run}"}
    elif objects == "s3":
        blocks["minio"] = {
            "endpoint_url": s3_endpoint,
            "login": "bench",
            "password": "bench-secret",
            "default_bucket": f"bench-{run}",
        }
    if state:
        uri = os.environ.get("MONGODB_URI")
        if not uri:
            raise SystemExit("--backends ...+mongodb needs MONGODB_URI")
        blocks["mongodb"] = {"connection_string": uri, "database_name": f"bench{run}"}
    return blocks


def describe(combo: tuple[str, ...]) -> str:
    return next((name for name, parts in ALIASES.items() if parts == combo), "+".join(combo))


#: How the deployment runs the no-op processor: worker processes, or in the polling agents (`Worker__Module`).
WORKERS = {
    "separate": {"command": ["{python}", str(HERE / "_noop_worker.py")]},
    "inprocess": {"module": "benchmarks._noop_worker:noop"},
}


def parse_workers(text: str) -> list[str]:
    modes = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [mode for mode in modes if mode not in WORKERS]
    if unknown or not modes:
        raise SystemExit(f"--worker: {', '.join(unknown) or text!r}: expected {', '.join(WORKERS)}")
    return modes


def deploy(
    generated: Path,
    pairs: int,
    storage: dict[str, Any] | None = None,
    worker: str = "separate",
    memory: bool = False,
) -> tuple[str, Path]:
    """Deploy `pairs` agents running the no-op processor; with `memory`, objects and data folders on /dev/shm."""
    port = free_port()
    parameters = generated / "parameters.tfvars.json"
    parameters.write_text(
        json.dumps(
            {
                **(storage or {}),
                "local": {"host": "127.0.0.1", "object_storage": {"memory": memory}},
                "control_plane": {"port": port},
                "metrics_exporter": None,
                "compute_plane": {
                    "default": {
                        "replicas": pairs,
                        "worker": [WORKERS[worker]],
                        "cache_config": {"memory": memory},
                    }
                },
            }
        )
    )
    command = [sys.executable, "-m", "armonik_deploy", "deploy", "--parameters", str(parameters)]
    subprocess.run([*command, "--generated", str(generated)], check=True, cwd=ROOT, capture_output=True)
    return f"127.0.0.1:{port}", parameters


def deployment_pids(generated: Path) -> dict[str, list[int]]:
    """The pids of the deployment's processes by role (control-plane, polling-agent, worker, ...)."""
    state = json.loads((generated / "deploy" / "state.json").read_text())
    pids: dict[str, list[int]] = {}
    for process in state["processes"]:
        if process.get("pid"):
            pids.setdefault(process["role"], []).append(int(process["pid"]))
    return pids


def cpu_by_role(pids: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds used so far by each role's processes, and by this client process."""
    used = {role: sum(cpu_seconds(pid) or 0.0 for pid in ids) for role, ids in pids.items()}
    used["client"] = own_cpu_seconds()
    return used


def destroy(generated: Path) -> None:
    command = [sys.executable, "-m", "armonik_deploy", "destroy", "--generated", str(generated)]
    subprocess.run(command, check=False, cwd=ROOT, capture_output=True)


def armonik_run(
    endpoint: str, tasks: int, round_trips: int, show: bool, pids: dict[str, list[int]] | None = None
) -> tuple[Rate, list[float], dict[str, float]]:
    with grpc.insecure_channel(endpoint) as channel:
        sessions, results, task_client = (
            ArmoniKSessions(channel),
            ArmoniKResults(channel),
            ArmoniKTasks(channel),
        )
        events = ArmoniKEvents(channel)
        options = TaskOptions(
            max_duration=timedelta(seconds=60), max_retries=1, priority=1, partition_id="default"
        )
        session = sessions.create_session(options, partition_ids=["default"])
        payload = results.create_results({"payload": b""}, session)["payload"].result_id
        warmup = results.create_results_metadata([f"warm-{i}" for i in range(20)], session, batch_size=1000)
        task_client.submit_tasks(
            session, [TaskDefinition(payload, [r.result_id]) for r in warmup.values()], chunk_size=1000
        )
        events.wait_for_result_availability([r.result_id for r in warmup.values()], session)

        outputs = [
            r.result_id
            for r in results.create_results_metadata(
                [f"out-{i}" for i in range(tasks)], session, batch_size=1000
            ).values()
        ]
        cpu_before = cpu_by_role(pids or {})
        started = time.perf_counter()
        with count_progress(console, show) as progress:
            bar = progress.add_task("no-op tasks", total=tasks)
            for start in range(0, tasks, 1000):
                chunk = outputs[start : start + 1000]
                task_client.submit_tasks(
                    session, [TaskDefinition(payload, [rid]) for rid in chunk], chunk_size=1000
                )
            for start in range(0, tasks, 1000):
                chunk = outputs[start : start + 1000]
                events.wait_for_result_availability(chunk, session, bucket_size=1000)
                progress.update(bar, advance=len(chunk))
        elapsed = time.perf_counter() - started
        cpu_after = cpu_by_role(pids or {})
        rate = Rate(
            tasks,
            elapsed,
            {role: 1000 * (cpu_after[role] - cpu_before[role]) / tasks for role in cpu_after},
        )

        latencies = []
        trips: list[tuple[str, dict[str, float]]] = []
        for i in range(round_trips):
            t0 = time.perf_counter()
            clock = {"start": time.time()}
            out = results.create_results_metadata([f"rt-{i}"], session)[f"rt-{i}"].result_id
            clock["output created"] = time.time()
            (task,) = task_client.submit_tasks(session, [TaskDefinition(payload, [out])])
            clock["submit call returned"] = time.time()
            events.wait_for_result_availability([out], session)
            clock["client told the result is ready"] = time.time()
            results.download_result_data(out, session)
            clock["result downloaded"] = time.time()
            latencies.append(time.perf_counter() - t0)
            trips.append((task.id, clock))
        milestones = round_trip_milestones(task_client, trips)
        sessions.close_session(session)
    return rate, latencies, milestones


#: The task's own timestamps (server side) shown in the round trip, in the order they happen.
TASK_MILESTONES = (
    ("task submitted", "submitted_at"),
    ("taken by an agent", "acquired_at"),
    ("inputs staged", "fetched_at"),
    ("worker called", "started_at"),
    ("worker answered", "processed_at"),
    ("outcome recorded", "ended_at"),
)


def round_trip_milestones(
    task_client: ArmoniKTasks, trips: list[tuple[str, dict[str, float]]]
) -> dict[str, float]:
    """Where a round trip's time goes: the median time (ms) from its start to each milestone, from the client's
    clock and from the timestamps the control plane records on the task (same machine, same clock)."""
    samples: dict[str, list[float]] = {}
    for task_id, clock in trips:
        task = task_client.get_task(task_id)
        points = dict(clock)
        for label, attribute in TASK_MILESTONES:
            stamp = getattr(task, attribute)
            if stamp is not None:
                points[label] = stamp.timestamp()
        for label, when in points.items():
            if label != "start":
                samples.setdefault(label, []).append(1000 * (when - clock["start"]))
    medians = {label: statistics.median(values) for label, values in samples.items()}
    return dict(sorted(medians.items(), key=lambda item: item[1]))


def run_deployments(
    args: argparse.Namespace, combos: list[tuple[str, ...]], workers: list[str]
) -> dict[str, tuple[Rate, list[float], dict[str, float]]]:
    """Step 1 for every worker mode on every backend combination, labelled `<worker> / <backends>`."""
    s3 = None
    if any(combo[1] == "s3" for combo in combos):
        sys.path.insert(0, str(ROOT))
        from tests.s3_server import S3Server

        s3 = S3Server().start()
    runs: dict[str, tuple[Rate, list[float], dict[str, float]]] = {}
    try:
        for worker, combo, round_ in (
            (worker, combo, round_)
            for round_ in range(1, args.repeat + 1)
            for worker in workers
            for combo in combos
        ):
            with tempfile.TemporaryDirectory(prefix="ak-throughput-") as tmp:
                generated = Path(tmp)
                label = f"{worker} / {describe(combo)}" + (f" #{round_}" if args.repeat > 1 else "")
                console.print(f"deploying {args.pairs} agents ({label}) ...")
                blocks = storage_blocks(combo, s3.endpoint if s3 else None)
                endpoint, _ = deploy(generated, args.pairs, blocks, worker, memory=combo[1] == "shm")
                try:
                    runs[label] = armonik_run(
                        endpoint,
                        args.tasks,
                        args.round_trips,
                        not args.no_progress,
                        deployment_pids(generated),
                    )
                finally:
                    destroy(generated)
    finally:
        if s3 is not None:
            s3.stop()
    return runs


def rounded(values: dict[str, float], digits: int = 2) -> dict[str, float]:
    return {k: round(v, digits) for k, v in values.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--pairs", type=int, default=2, help="polling agents (each with its worker)")
    parser.add_argument("--round-trips", type=int, default=200)
    parser.add_argument(
        "--worker",
        default="separate",
        help="comma-separated: separate (worker processes), inprocess (in the agents); the first is compared",
    )
    parser.add_argument("--no-dask", action="store_true", help="skip the dask.distributed baseline")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray baseline")
    parser.add_argument("--no-ceiling", action="store_true", help="skip the worker protocol ceiling")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run every worker mode and backend combination this many times, alternating (labels #1, #2, ...)",
    )
    parser.add_argument(
        "--backends", default="embedded", help="comma-separated <queue>+<objects>[+mongodb] (see above)"
    )
    args = parser.parse_args()
    combos = parse_backends(args.backends)
    workers = parse_workers(args.worker)

    load_at_start = os.getloadavg()
    runs = run_deployments(args, combos, workers)
    armonik, latencies, milestones = next(iter(runs.values()))

    ceiling = None
    if not args.no_ceiling:
        console.print("measuring the worker protocol ceiling ...")
        ceiling = protocol_ceiling(args.tasks, args.pairs)
    references: dict[str, tuple[Rate, list[float]]] = {}
    missing = [
        name
        for name, module, skip in (("dask", "distributed", args.no_dask), ("Ray", "ray", args.no_ray))
        if not skip and importlib.util.find_spec(module) is None
    ]
    if missing:
        parser.error(
            f"{' and '.join(missing)} not installed: `pip install -e .[bench]`, or "
            + " ".join(f"--no-{name.lower()}" for name in missing)
        )
    if not args.no_dask:
        console.print("measuring dask.distributed ...")
        references["dask"] = dask_baseline(args.tasks, args.round_trips)
    if not args.no_ray:
        console.print("measuring Ray ...")
        references["ray"] = ray_baseline(args.tasks, args.round_trips, args.pairs)

    figures: dict[str, Any] = {
        "tasks": args.tasks,
        "pairs": args.pairs,
        "load_average_at_start": [round(x, 2) for x in load_at_start],
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "armonik_tasks_per_second": round(armonik.per_second, 1),
        "armonik_round_trip": rounded(summary(latencies)),
        "armonik_round_trip_milestones_ms": rounded(milestones),
        "runs": {
            name: {
                "tasks_per_second": round(rate.per_second, 1),
                "round_trip": rounded(summary(trips)),
                "cpu_ms_per_task": rounded(rate.cpu_ms_per_task or {}, 3),
                **{
                    f"over_{ref}": round(rate.per_second / ref_rate.per_second, 2)
                    for ref, (ref_rate, _) in references.items()
                },
            }
            for name, (rate, trips, _) in runs.items()
        },
    }
    for ref, (ref_rate, ref_latencies) in references.items():
        figures[f"{ref}_tasks_per_second"] = round(ref_rate.per_second, 1)
        figures[f"armonik_over_{ref}"] = round(armonik.per_second / ref_rate.per_second, 2)
        figures[f"{ref}_round_trip"] = rounded(summary(ref_latencies))
    cores = os.cpu_count() or 1
    armonik_cpu = rounded(armonik.cpu_ms_per_task or {}, 3)
    ceiling_cpu = rounded((ceiling.cpu_ms_per_task or {}) if ceiling else {}, 3)
    figures["cpu_ms_per_task"] = {"armonik": armonik_cpu, "protocol_ceiling": ceiling_cpu, "cores": cores}
    if ceiling is not None:
        figures["protocol_ceiling_calls_per_second"] = round(ceiling.per_second, 1)
        figures["armonik_percent_of_ceiling"] = round(100 * armonik.per_second / ceiling.per_second, 1)
    if armonik_cpu:
        # With every core busy, tasks/s cannot exceed cores / CPU per task: the bound of this design here.
        figures["armonik_cpu_bound_tasks_per_second"] = round(1000 * cores / sum(armonik_cpu.values()), 1)

    print_tables(figures, runs, references, ceiling, milestones)
    print(json.dumps(figures))


def print_tables(
    figures: dict[str, Any],
    runs: dict[str, tuple[Rate, list[float], dict[str, float]]],
    references: dict[str, tuple[Rate, list[float]]],
    ceiling: Rate | None,
    milestones: dict[str, float],
) -> None:
    first = next(iter(runs))
    table = Table("measure", "value", title=f"End-to-end throughput (one run, same machine), {first}")
    table.add_row("ArmoniK no-op tasks/s", f"{figures['armonik_tasks_per_second']:,.0f}")
    if ceiling is not None:
        table.add_row("worker protocol ceiling (calls/s)", f"{ceiling.per_second:,.0f}")
        table.add_row("ArmoniK / ceiling", f"{figures['armonik_percent_of_ceiling']} %")
    table.add_row(
        "ArmoniK round trip p50 / p99",
        "{p50_ms:.1f} / {p99_ms:.1f} ms".format(**figures["armonik_round_trip"]),
    )
    for ref, (ref_rate, _) in references.items():
        table.add_row(f"{ref} tasks/s", f"{ref_rate.per_second:,.0f}")
        table.add_row(f"ArmoniK / {ref}", f"{figures[f'armonik_over_{ref}']}x")
        table.add_row(
            f"{ref} round trip p50 / p99",
            "{p50_ms:.1f} / {p99_ms:.1f} ms".format(**figures[f"{ref}_round_trip"]),
        )
    Console().print(table)
    if len(runs) > 1:
        ratios = [f"/ {ref}" for ref in references]
        by_run = Table("worker / backends", "tasks/s", *ratios, "round trip p50 / p99", title="By run")
        for name, data in figures["runs"].items():
            by_run.add_row(
                name,
                f"{data['tasks_per_second']:,.0f}",
                *[f"{data[f'over_{ref}']}x" for ref in references],
                "{p50_ms:.1f} / {p99_ms:.1f} ms".format(**data["round_trip"]),
            )
        Console().print(by_run)
    if milestones:
        steps = Table(
            "milestone", "ms from the start", "step (ms)", title="A round trip, step by step (medians)"
        )
        previous = 0.0
        for label, at in milestones.items():
            steps.add_row(label, f"{at:.2f}", f"{at - previous:.2f}")
            previous = at
        Console().print(steps)
    ceiling_cpu = figures["cpu_ms_per_task"]["protocol_ceiling"]
    budget = Table("process", *runs, "protocol ceiling", title="CPU per task (ms, all threads)")
    for label, role, ceiling_role in BUDGET_ROWS:
        cells = [figures["runs"][name]["cpu_ms_per_task"].get(role) for name in runs]
        if any(cell is not None for cell in cells):
            ceiling_ms = ceiling_cpu.get(ceiling_role or "")
            budget.add_row(
                label,
                *["-" if cell is None else f"{cell:.3f}" for cell in cells],
                "-" if ceiling_ms is None else f"{ceiling_ms:.3f}",
            )
    budget.add_row(
        "total",
        *[f"{sum(figures['runs'][name]['cpu_ms_per_task'].values()):.3f}" for name in runs],
        f"{sum(ceiling_cpu.values()):.3f}" if ceiling_cpu else "-",
    )
    Console().print(budget)


if __name__ == "__main__":
    main()
