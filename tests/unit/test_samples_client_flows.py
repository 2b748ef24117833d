"""Each sample's client flow, end to end in process: the SDK clients are replaced by stand-ins over a
`LocalCluster` that runs the tasks with the samples worker's dispatch, so the clients' calls, waits, checks
and printed results are exercised without any server.

The stand-ins take exactly the parameters of the official SDK's methods (checked below against
`armonik.client`), so a client calling the SDK wrongly fails here too.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest
from armonik.client import ArmoniKEvents, ArmoniKResults, ArmoniKSessions, ArmoniKTasks
from armonik.common import Output, Result, ResultStatus, TaskDefinition, TaskOptions, TaskStatus

from armonik_samples import (
    bench,
    common,
    dynamic_submission,
    hello_world,
    htcmock,
    linear_subtasking,
    multiple_results,
    subtasking,
    testing,
    worker,
)
from armonik_samples.local import LocalCluster, TaskFailed

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


@dataclass
class StandIn:
    """One SDK client's stand-in: its calls act on the world it is part of."""

    world: World


class Sessions(StandIn):
    def create_session(
        self, default_task_options: TaskOptions, partition_ids: list[str] | None = None
    ) -> str:
        self.world.cluster.session_options = default_task_options
        self.world.partitions = partition_ids
        return self.world.cluster.session_id

    def close_session(self, session_id: str) -> None:
        self.world.actions.append("close")

    def purge_session(self, session_id: str) -> None:
        self.world.actions.append("purge")

    def delete_session(self, session_id: str) -> None:
        self.world.actions.append("delete")

    def pause_session(self, session_id: str) -> None:
        self.world.actions.append("pause")

    def resume_session(self, session_id: str) -> None:
        self.world.actions.append("resume")


class Results(StandIn):
    def create_results_metadata(self, result_names: list[str], session_id: str, batch_size: int = 100) -> Any:
        ids = self.world.cluster.create_results_metadata(list(result_names))
        return {name: Result(session_id=session_id, name=name, result_id=rid) for name, rid in ids.items()}

    def create_results(self, results_data: dict[str, bytes], session_id: str, batch_size: int = 1) -> Any:
        ids = self.world.cluster.create_results(results_data)
        return {name: Result(session_id=session_id, name=name, result_id=rid) for name, rid in ids.items()}

    def upload_result_data(self, result_id: str, session_id: str, result_data: bytes) -> None:
        self.world.cluster.data[result_id] = bytes(result_data)

    def download_result_data(self, result_id: str, session_id: str) -> bytes:
        return self.world.cluster.result(result_id)


class Tasks(StandIn):
    def submit_tasks(
        self,
        session_id: str,
        tasks: list[TaskDefinition],
        default_task_options: TaskOptions | None = None,
        chunk_size: int | None = 100,
    ) -> list[Any]:
        return self.world.cluster.submit(list(tasks), default_task_options)

    def _statuses(self) -> list[TaskStatus]:
        executions = list(self.world.cluster.executions)
        retried = {e.task_id for e in executions if e.error is not None} - set(self.world.cluster.failed)
        return [
            TaskStatus.COMPLETED
            if e.error is None
            else TaskStatus.RETRIED
            if e.task_id in retried
            else TaskStatus.ERROR
            for e in executions
        ]

    def count_tasks_by_status(self, task_filter: Any = None) -> dict[TaskStatus, int]:
        counts: dict[TaskStatus, int] = {}
        for status in self._statuses():
            counts[status] = counts.get(status, 0) + 1
        return counts

    def list_tasks(
        self,
        task_filter: Any = None,
        with_errors: bool = False,
        page: int = 0,
        page_size: int = 1000,
        sort_field: Any = None,
        sort_direction: Any = None,
        detailed: bool = True,
    ) -> tuple[int, list[Any]]:
        n = len(self._statuses())
        tasks = [
            SimpleNamespace(created_at=T0 + timedelta(seconds=i), ended_at=T0 + timedelta(seconds=i + 1))
            for i in range(n)
        ]
        if sort_field is not None and "ended" in str(sort_field.field).lower():
            tasks.reverse()
        return n, tasks[:page_size]


class Events(StandIn):
    def get_events(
        self,
        session_id: str,
        event_types: Any,
        event_handlers: list[Any],
        task_filter: Any = None,
        result_filter: Any = None,
    ) -> None:
        cluster = self.world.cluster
        try:
            cluster.run()
        except TaskFailed:
            pass
        for result_id in list(cluster.data) + list(cluster.aborted):
            status = ResultStatus.ABORTED if result_id in cluster.aborted else ResultStatus.COMPLETED
            event = SimpleNamespace(result_id=result_id, status=status)
            if any(handler(session_id, None, event) for handler in event_handlers):
                return


class World:
    def __init__(self) -> None:
        self.cluster = LocalCluster(worker.dispatch)
        self.actions: list[str] = []
        self.partitions: list[str] | None = None
        self.client = common.Client(
            channel=None,  # type: ignore[arg-type]
            sessions=Sessions(self),  # type: ignore[arg-type]
            results=Results(self),  # type: ignore[arg-type]
            tasks=Tasks(self),  # type: ignore[arg-type]
            events=Events(self),  # type: ignore[arg-type]
        )


@pytest.mark.parametrize(
    ("fake", "real"),
    [(Sessions, ArmoniKSessions), (Results, ArmoniKResults), (Tasks, ArmoniKTasks), (Events, ArmoniKEvents)],
)
def test_stand_ins_take_the_sdk_parameters(fake: type, real: type) -> None:
    for name, method in inspect.getmembers(fake, inspect.isfunction):
        if name.startswith("_"):
            continue
        assert list(inspect.signature(method).parameters) == list(
            inspect.signature(getattr(real, name)).parameters
        )


@pytest.fixture
def world() -> World:
    return World()


def test_hello_world(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    hello_world.run(world.client, "default", "World", timeout=10)
    assert capsys.readouterr().out == "Hello World!\n"
    assert world.partitions == ["default"]
    assert world.cluster.session_options.options == {"sample": "hello_world"}
    assert world.actions == ["close"]


def test_multiple_results(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    multiple_results.run(world.client, "default", 3, "Hi", timeout=10)
    assert capsys.readouterr().out.splitlines() == ["result 0: Hi #0", "result 1: Hi #1", "result 2: Hi #2"]


def test_linear_subtasking(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    linear_subtasking.run(world.client, "default", 4, timeout=10)
    out = capsys.readouterr().out
    assert "Result: 10, Expected: 10" in out
    assert "'COMPLETED': 5" in out


def test_subtasking(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    subtasking.run(world.client, "default", 50, 10, timeout=10)
    assert "Result: 1275, Expected: 1275" in capsys.readouterr().out
    assert world.cluster.session_options.options["split"] == "10"
    assert world.actions == ["close", "purge", "delete"]


def test_dynamic_submission(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    dynamic_submission.run(world.client, "default", 45, 10, seed=3, timeout=10)
    expected = sum(dynamic_submission.random_values(45, 3))
    assert f"Result: {expected}, Expected: {expected}" in capsys.readouterr().out


def test_htcmock(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    config = htcmock.RunConfiguration(n_tasks=30, sub_tasks_levels=3, total_calculation_time=0.0)
    options = {"FastCompute": "true", "UseLowMem": "true", "SmallOutput": "false"}
    htcmock.run(world.client, "default", config, options, purge_data=True, timeout=10)
    lines = capsys.readouterr().out.splitlines()
    assert "Final result is 1.10.10.9" in lines
    assert "Expected result is 1.10.10.9" in lines
    record = json.loads(lines[-1])
    assert record["nTasks"] == config.total_tasks
    assert record["sessionThroughput"] > 0
    assert world.actions == ["close", "purge"]


def test_bench(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    options = bench.BenchOptions(n_tasks=25, task_duration_ms=0, payload_size=1, result_size=2, batch_size=10)
    bench.run(world.client, options, timeout=10)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Tasks submitted in " + lines[0].split(" in ")[1]
    assert "Results retrieved 25" in lines
    record = json.loads(lines[-1])
    assert record["nTasks"] == 25
    assert record["sessionThroughput"] == pytest.approx(25 / 25)  # the stand-in's tasks end 1 s apart
    assert record["stats"]["CompletedTasks"] == 25 and record["stats"]["TotalTasks"] == 25
    assert set(record["stats"]) >= {
        "ElapsedTime",
        "SubmissionTime",
        "TasksExecutionTime",
        "ResultRetrievingTime",
    }
    assert world.actions == ["close", "purge"]


def test_bench_uploads_large_payloads_and_pauses(world: World) -> None:
    options = bench.BenchOptions(
        n_tasks=3,
        task_duration_ms=0,
        payload_size=12,
        switch_to_stream_size=10,
        pause_session_during_submission=True,
        purge_data=False,
    )
    bench.run(world.client, options, timeout=10)
    assert world.actions == ["pause", "resume", "close"]


def test_bench_exit_after_submission(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    bench.run(world.client, bench.BenchOptions(n_tasks=5, exit_after_submission=True), timeout=10)
    assert world.cluster.executions == []
    assert "SubmissionTime" in json.loads(capsys.readouterr().out.splitlines()[-1])


def test_bench_fails_when_tasks_fail(world: World) -> None:
    world.cluster.process = lambda handler: Output("boom")
    with pytest.raises(common.SampleFailure, match="aborted"):
        bench.run(world.client, bench.BenchOptions(n_tasks=3, task_duration_ms=0), timeout=10)
    assert len(world.cluster.executions) == 3 * 3  # each task and its two retries


def test_testing_client(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    testing.run(world.client, "default", "crash_once", "ping", 2, {}, 2, False, timeout=10)
    assert "'RETRIED': 2" in capsys.readouterr().out
    assert world.cluster.session_options.options == {"sample": "testing", "action": "crash_once"}


def test_testing_client_expecting_a_failure(world: World) -> None:
    testing.run(world.client, "default", "fail", "ping", 1, {}, 0, True, timeout=10)
    with pytest.raises(common.SampleFailure, match="aborted"):
        testing.run(World().client, "default", "crash", "ping", 1, {}, 1, False, timeout=10)
