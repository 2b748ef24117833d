"""Sessions of the graph tests, submitted through the official SDK, and a recorder of their raw events."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
from armonik.client import ArmoniKResults, ArmoniKSessions, ArmoniKTasks
from armonik.common import TaskDefinition, TaskOptions

from armonik_graph import ApiSource


def task_options() -> TaskOptions:
    return TaskOptions(max_duration=timedelta(seconds=300), priority=1, max_retries=2, partition_id="default")


@dataclass
class Submitted:
    """What a test submitted: task id -> (payload, outputs, dependencies), by name too."""

    session_id: str
    tasks: dict[str, tuple[str, list[str], list[str]]] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)


class SessionBuilder:
    """Results and tasks of one new session, named for readability."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.results = ArmoniKResults(channel)
        self.tasks = ArmoniKTasks(channel)
        self.sessions = ArmoniKSessions(channel)
        self.session_id = self.sessions.create_session(task_options(), ["default"])
        self.submitted = Submitted(self.session_id)

    def empty(self, name: str) -> str:
        rid = self.results.create_results_metadata([name], self.session_id)[name].result_id
        self.submitted.names[name] = rid
        return rid

    def upload(self, result_id: str, data: bytes = b"data") -> None:
        self.results.upload_result_data(result_id, self.session_id, data)

    def task(
        self, name: str, order: dict[str, Any], deps: list[str] | None = None, output: str | None = None
    ) -> tuple[str, str]:
        """A task doing `order` (see graph_worker) whose output is `output` (a new result when None);
        returns (task id, id of its output)."""
        payload = self.results.create_results(
            {f"{name}-payload": json.dumps(order).encode()}, self.session_id
        )
        payload_id = payload[f"{name}-payload"].result_id
        output = output or self.empty(f"{name}-out")
        definition = TaskDefinition(payload_id, expected_output_ids=[output], data_dependencies=deps or [])
        task_id = self.tasks.submit_tasks(self.session_id, [definition])[0].id
        self.submitted.tasks[task_id] = (payload_id, [output], list(deps or []))
        self.submitted.names[name] = task_id
        return task_id, output


def rich_session(b: SessionBuilder, scratch: Path) -> dict[str, str]:
    """Submit, in `b`'s session, every shape: subtasking with delegation, a retry, an error cascade and a
    dependency uploaded late (the caller uploads `late` when it wants the last task to run)."""
    ids: dict[str, str] = {}
    ids["a"], a_out = b.task("a", {"do": "ok"})
    ids["split"], split_out = b.task("split", {"do": "split", "n": 2}, [a_out])
    ids["flaky"], flaky_out = b.task("flaky", {"do": "flaky", "file": str(scratch / "flaky-marker")}, [a_out])
    ids["join"], join_out = b.task("join", {"do": "ok"}, [split_out, flaky_out])
    fail_out = b.empty("fail-out")  # its consumer is submitted before it can fail
    ids["doomed"], doomed_out = b.task("doomed", {"do": "ok"}, [fail_out])
    ids["fail"], _ = b.task("fail", {"do": "fail"}, [a_out], output=fail_out)
    ids["late"] = b.empty("late")
    ids["after-late"], late_out = b.task("after-late", {"do": "ok"}, [join_out, ids["late"]])
    ids.update(a_out=a_out, split_out=split_out, join_out=join_out, fail_out=fail_out, doomed_out=doomed_out)
    ids.update(flaky_out=flaky_out, late_out=late_out)
    return ids


class Recorder:
    """Every raw event of a session's stream, in arrival order, on a channel of its own."""

    def __init__(self, endpoint: str, session_id: str) -> None:
        self.events: list[Any] = []
        self.lock = threading.Lock()
        self._channel = grpc.insecure_channel(endpoint)
        self._call = ApiSource(self._channel).subscribe(session_id)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for event in self._call:
                with self.lock:
                    self.events.append(event)
        except grpc.RpcError:
            pass

    def count(self) -> int:
        with self.lock:
            return len(self.events)

    def stop(self) -> list[Any]:
        self._call.cancel()
        self._thread.join(5)
        self._channel.close()
        with self.lock:
            return list(self.events)
