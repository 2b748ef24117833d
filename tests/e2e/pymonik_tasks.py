"""The PymoniK tasks of the end-to-end scenarios: pi estimated by sampling, and a resource fetched and read where
PymoniK materializes it."""

from __future__ import annotations

import sys
from typing import Any

import cloudpickle
from pymonik import task


@task
def estimate_pi_partial(samples: int) -> tuple[int, int]:
    import random as rng

    inside = 0
    for _ in range(samples):
        x, y = rng.random(), rng.random()
        if x * x + y * y <= 1.0:
            inside += 1
    return inside, samples


@task
def sum_pi_results(parts: list[tuple[int, int]]) -> float:
    inside = sum(part[0] for part in parts)
    total = sum(part[1] for part in parts)
    return 4.0 * inside / total


@task(require_context=True)
def fetch_resource(ctx: Any, result_id: str) -> dict[str, Any]:
    """Fetches a result that is not among the task's inputs (`Agent.GetResourceData`): PymoniK then reads it
    from the path it builds itself, `/cache/shared/<communication token>/<result id>`."""
    path = ctx.get_object_path(result_id)
    value = ctx.retrieve_object(result_id)
    return {"value": value, "path": str(path), "folder": ctx.task_handler.data_folder}


@task
def read_materialized(resource: Any, worker_path: str) -> bytes:
    """Reads a file PymoniK materialized before calling the function (through GetResourceData)."""
    with open(worker_path, "rb") as file:
        return file.read()


# The PymoniK worker cannot import this module (it is not on the worker's path): ship the tasks' functions by
# value rather than as a reference to the module.
cloudpickle.register_pickle_by_value(sys.modules[__name__])
