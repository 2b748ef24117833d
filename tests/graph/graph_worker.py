"""The worker of the graph tests: each task does what its JSON payload says, so that one session holds every
shape the graph library must rebuild.

    {"do": "ok"}                        every expected output gets b"ok"
    {"do": "split", "n": 2}             n subtasks (each with an output of its own) and an aggregation subtask
                                        that needs their outputs and takes this task's output over (delegation)
    {"do": "fail"}                      an error output: the task fails, what needs its output is aborted
    {"do": "hang", "file": PATH}        runs until PATH exists (a task that hangs until the test releases it)
    {"do": "flaky", "file": PATH}       the first attempt creates PATH and crashes (the agent retries it)
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from armonik.common import Output, TaskDefinition
from armonik.worker import TaskHandler, armonik_worker

from armonik_samples.worker import channel_endpoints


def _ok(handler: TaskHandler) -> Output:
    handler.send_results({rid: b"ok" for rid in handler.expected_results})
    return Output()


def _split(handler: TaskHandler, n: int) -> Output:
    names = [f"part-{i}" for i in range(n)]
    outputs = handler.create_results_metadata(names)
    payloads = handler.create_results(
        {**{f"p-{i}": b'{"do": "ok"}' for i in range(n)}, "agg": b'{"do": "ok"}'}
    )
    parts = [outputs[name].result_id for name in names]
    children = [
        TaskDefinition(payloads[f"p-{i}"].result_id, expected_output_ids=[parts[i]]) for i in range(n)
    ]
    aggregation = TaskDefinition(
        payloads["agg"].result_id, expected_output_ids=list(handler.expected_results), data_dependencies=parts
    )
    handler.submit_tasks([*children, aggregation])
    return Output()


def process(handler: TaskHandler) -> Any:
    order = json.loads(handler.payload or b"{}")
    what = order.get("do")
    if what == "split":
        return _split(handler, int(order.get("n", 2)))
    if what == "fail":
        return Output(f"boom from {handler.task_id}")
    if what == "hang":
        while not os.path.exists(order["file"]):
            time.sleep(0.05)
    if what == "flaky" and not os.path.exists(order["file"]):
        open(order["file"], "w").close()
        raise RuntimeError("first attempt crashes on purpose")
    return _ok(handler)


def main() -> None:
    listen, agent = channel_endpoints()
    armonik_worker(worker_endpoint=listen, agent_endpoint=agent)(process).run()


if __name__ == "__main__":
    main()
