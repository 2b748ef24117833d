"""The compute plane's work on the state store alone: acquiring and finishing tasks, no queue, no gRPC.

1. open a SQLite state store as a control plane with the embedded backends does (`synchronous` NORMAL, no
   outbox: units committed on the event loop), in a temporary folder;
2. submit `--tasks` tasks in one session (one shared payload, one output each), in batches of 1,000;
3. acquire and finish them all, `--batch` tasks at a time as an agent's exchange carries them, each outcome a
   success sending its output's data and reporting its start: once call by call (each task its own units,
   side by side, as the compute gateway called the store before it had `acquire_tasks` and `finish_tasks`),
   once with the batch methods, alternating for `--repeats` rounds, each on a session of its own.

Prints the CPU (process time, all threads) per task of each way and their ratio; the last line of standard
output is the same figures as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout this script is in

from armonik_core.adapters.state.base import StateStore  # noqa: E402
from armonik_core.adapters.state.sqlite import SqliteStateStore  # noqa: E402
from armonik_core.domain.options import TaskOptions  # noqa: E402
from armonik_core.domain.outcomes import DataCompletion, OutcomeKind, TaskOutcome  # noqa: E402
from armonik_core.domain.records import Partition, Result, Session, Task  # noqa: E402
from armonik_core.domain.statuses import ResultStatus, SessionStatus, TaskStatus  # noqa: E402
from armonik_core.ids import new_ids  # noqa: E402

AGENT, HOST = "agent-1", "host-1"


async def fill(store: StateStore, tasks: int) -> tuple[list[str], dict[str, str]]:
    """A session of `tasks` submitted tasks: their ids, and each one's output."""
    options = TaskOptions(partition_id="default", max_retries=1)
    [sid] = new_ids(1)
    await store.create_session(Session(sid, SessionStatus.RUNNING, ["default"], options, time.time()))
    [payload] = new_ids(1)
    await store.create_results(sid, [Result(payload, sid, "payload", ResultStatus.COMPLETED, time.time())])
    ids: list[str] = []
    outputs: dict[str, str] = {}
    for start in range(0, tasks, 1000):
        count = min(1000, tasks - start)
        outs, task_ids = new_ids(count), new_ids(count)
        now = time.time()
        await store.create_results(sid, [Result(o, sid, "out", ResultStatus.CREATED, now) for o in outs])
        batch = [
            Task(t, sid, TaskStatus.CREATING, options, payload, now, [o], [], [sid], initial_task_id=t)
            for t, o in zip(task_ids, outs, strict=True)
        ]
        await store.submit_tasks(sid, batch)
        ids += task_ids
        outputs.update(zip(task_ids, outs, strict=True))
    return ids, outputs


def outcome(output: str) -> TaskOutcome:
    now = time.time()
    return TaskOutcome(
        OutcomeKind.SUCCESS,
        completions=[DataCompletion(output, 8, f"obj-{output}".encode())],
        fetched_at=now,
        started_at=now,
        processed_at=now,
    )


async def run(
    store: StateStore, ids: list[str], outputs: dict[str, str], batch: int, together: bool
) -> float:
    """CPU seconds to acquire and finish `ids`, `batch` at a time, with the batch methods or call by call."""
    acquire = store.acquire_tasks if together else lambda requests: StateStore.acquire_tasks(store, requests)
    finish = store.finish_tasks if together else lambda requests: StateStore.finish_tasks(store, requests)
    began = time.process_time()
    for start in range(0, len(ids), batch):
        chunk = ids[start : start + batch]
        given = await acquire([(task_id, AGENT, HOST) for task_id in chunk])
        if not all(not isinstance(g, Exception) and g.task is not None for g in given):
            raise RuntimeError(f"a task was not acquired: {given}")
        done = await finish([(task_id, AGENT, outcome(outputs[task_id])) for task_id in chunk])
        if any(isinstance(d, Exception) for d in done):
            raise RuntimeError(f"an outcome was not recorded: {done}")
    return time.process_time() - began


async def main(args: argparse.Namespace) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="state-bench-") as folder:
        store = SqliteStateStore(Path(folder) / "state.db", synchronous="NORMAL", outbox=False)
        await store.upsert_partitions([Partition("default")])
        per_task: dict[str, list[float]] = {"call by call": [], "batch": []}
        for _ in range(args.repeats):
            for name, together in (("call by call", False), ("batch", True)):
                ids, outputs = await fill(store, args.tasks)
                seconds = await run(store, ids, outputs, args.batch, together)
                per_task[name].append(seconds / args.tasks * 1e6)
        await store.close()
    figures = {name: [round(us, 1) for us in values] for name, values in per_task.items()}
    one, many = (statistics.median(per_task[name]) for name in ("call by call", "batch"))
    return {
        "tasks": args.tasks,
        "batch": args.batch,
        "cpu_us_per_task": figures,
        "median_ratio": round(many / one, 3),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=8000, help="tasks per round")
    parser.add_argument("--batch", type=int, default=8, help="tasks acquired and finished together")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of each way, alternated")
    figures = asyncio.run(main(parser.parse_args()))
    for name, values in figures["cpu_us_per_task"].items():  # type: ignore[attr-defined]
        print(f"{name:>13}: {', '.join(f'{us:.1f}' for us in values)} µs of CPU per task")
    print(f"batch / call by call (medians): {figures['median_ratio']}")
    print(json.dumps(figures))
