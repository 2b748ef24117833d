"""HtcMock's tree and Bench's tasks, with the stand-in task handler."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any, cast

import pytest
from armonik.common import Direction, TaskDefinition

from armonik_samples import bench, common, htcmock, worker
from armonik_samples.htcmock import RunConfiguration, children, tree_widths
from armonik_samples.local import LocalCluster, LocalHandler, TaskFailed, default_options

FAST = {"FastCompute": "true", "UseLowMem": "true", "SmallOutput": "true"}


# -- htcmock: the tree ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("n_tasks", "levels", "widths"),
    [
        (1, 4, [1]),
        (5, 0, [1, 4]),  # no level asked: one level all the same, NTasks in all
        (100, 4, [1, 25, 25, 25, 24]),
        (3, 4, [1, 1, 1]),  # fewer tasks than levels: a shallower tree
        (10000, 100, [1] + [100] * 99 + [99]),
        (10, 1, [1, 9]),
    ],
)
def test_tree_widths(n_tasks: int, levels: int, widths: list[int]) -> None:
    assert tree_widths(n_tasks, levels) == widths
    assert sum(widths) == n_tasks


def test_tree_widths_needs_a_task() -> None:
    with pytest.raises(ValueError):
        tree_widths(0, 3)


def test_children_cover_each_level_once() -> None:
    widths = [1, 4, 10, 3]
    for level in range(len(widths) - 1):
        kids = [k for j in range(widths[level]) for k in children(widths, level, j)]
        assert sorted(kids) == list(range(widths[level + 1]))
    assert children(widths, 0, 0) == [0, 1, 2, 3]
    assert children(widths, 1, 1) == [1, 5, 9]
    assert children(widths, 2, 5) == []  # width 3 below: nodes 3.. of level 2 are leaves
    assert children(widths, 3, 0) == []  # last level


def test_aggregation_count() -> None:
    config = RunConfiguration(n_tasks=100, sub_tasks_levels=4)
    assert config.aggregation_tasks == 1 + 25 + 25 + 24
    assert config.total_tasks == 175
    assert RunConfiguration(n_tasks=1).aggregation_tasks == 0


def test_root_task_submits_its_children_and_an_aggregation() -> None:
    config = RunConfiguration(n_tasks=7, sub_tasks_levels=2)  # widths 1, 3, 3
    handler = LocalHandler(htcmock.node_payload(config, 0, 0), expected_results=["root"], options=FAST)
    assert htcmock.process(handler).success
    assert handler.sent == {}
    *kids, aggregate = handler.submitted
    assert len(kids) == 3
    assert [json.loads(handler.created_data(k.payload_id))["level"] for k in kids] == [1, 1, 1]
    assert [json.loads(handler.created_data(k.payload_id))["index"] for k in kids] == [0, 1, 2]
    assert all(k.data_dependencies == [] for k in kids)
    assert aggregate.data_dependencies == [k.expected_output_ids[0] for k in kids]
    assert aggregate.expected_output_ids == ["root"]
    assert json.loads(handler.created_data(aggregate.payload_id))["aggregate"] is True


def test_leaf_and_aggregation_results() -> None:
    config = RunConfiguration(n_tasks=7, sub_tasks_levels=2, data_size=2)
    leaf = LocalHandler(htcmock.node_payload(config, 2, 1), options={**FAST, "SmallOutput": "false"})
    assert htcmock.process(leaf).success
    assert len(leaf.result()) == 2 * 1024
    assert htcmock.decode_counts(leaf.result()) == [0, 0, 1]
    deps = {"a": leaf.result(), "b": b"0.0.1\n"}
    aggregate = LocalHandler(
        htcmock.node_payload(config, 1, 1, aggregate=True), data_dependencies=deps, options=FAST
    )
    assert htcmock.process(aggregate).success
    assert aggregate.result() == b"0.1.2\n"


@pytest.mark.parametrize(("n_tasks", "levels"), [(1, 4), (20, 1), (50, 3), (100, 4), (60, 10)])
def test_whole_tree_builds_the_expected_shape(n_tasks: int, levels: int) -> None:
    config = RunConfiguration(n_tasks=n_tasks, sub_tasks_levels=levels, total_calculation_time=0.0)
    cluster = LocalCluster(worker.dispatch, default_options({"sample": "htcmock", **FAST}))
    (root,) = cluster.create_results_metadata(["root"]).values()
    payload = cluster.create_results({"root payload": htcmock.node_payload(config, 0, 0)})["root payload"]
    cluster.submit([TaskDefinition(payload, expected_output_ids=[root])])
    cluster.run()
    assert htcmock.decode_counts(cluster.result(root)) == config.widths
    assert len(cluster.executions) == config.total_tasks
    computing = [e for e in cluster.executions if not json.loads(e.handler.payload)["aggregate"]]
    assert len(computing) == n_tasks
    per_level: dict[int, int] = {}
    for e in computing:
        level = json.loads(e.handler.payload)["level"]
        per_level[level] = per_level.get(level, 0) + 1
    assert [per_level[level] for level in range(len(config.widths))] == config.widths


def test_busy_work_adds_up_to_the_calculation_time() -> None:
    config = RunConfiguration(n_tasks=10, sub_tasks_levels=2, total_calculation_time=0.2, memory_size=64)
    cluster = LocalCluster(worker.dispatch, default_options({"sample": "htcmock"}))
    (root,) = cluster.create_results_metadata(["root"]).values()
    payload = cluster.create_results({"p": htcmock.node_payload(config, 0, 0)})["p"]
    cluster.submit([TaskDefinition(payload, expected_output_ids=[root])])
    started = time.perf_counter()
    cluster.run()
    assert time.perf_counter() - started >= 0.2
    assert len(cluster.result(root)) == 1024  # DataSize 1 KiB, SmallOutput off


def test_busy_work_spins() -> None:
    started = time.perf_counter()
    assert htcmock.busy_work(0.02, 16) > 1
    assert time.perf_counter() - started >= 0.02


def test_task_error_and_rpc_exception_by_task_id_suffix() -> None:
    config = RunConfiguration(n_tasks=1)
    erring = LocalHandler(
        htcmock.node_payload(config, 0, 0), task_id="abc-42", options={**FAST, "TaskError": "42"}
    )
    assert htcmock.process(erring).error == "Deterministic Error"
    crashing = LocalHandler(
        htcmock.node_payload(config, 0, 0), task_id="abc-43", options={**FAST, "TaskRpcException": "43"}
    )
    with pytest.raises(common.WorkerCrash):
        htcmock.process(crashing)
    assert htcmock.process(
        LocalHandler(htcmock.node_payload(config, 0, 0), task_id="abc-44", options=FAST)
    ).success


# -- bench ---------------------------------------------------------------------------------------------------
def bench_options(**extra: str) -> dict[str, str]:
    return {**bench.BenchOptions(task_duration_ms=0, payload_size=2, result_size=3).task_options(), **extra}


def test_bench_task_writes_results_of_the_requested_size() -> None:
    handler = LocalHandler(b"p" * 2048, expected_results=["a", "b"], options=bench_options())
    assert bench.process(handler).success
    assert {k: len(v) for k, v in handler.sent.items()} == {"a": 3072, "b": 3072}
    assert handler.sent["a"] != handler.sent["b"]  # random bytes


def test_bench_task_sleeps() -> None:
    handler = LocalHandler(b"p" * 2048, options={**bench_options(), "TaskDurationMs": "50"})
    started = time.perf_counter()
    assert bench.process(handler).success
    assert time.perf_counter() - started >= 0.05


def test_bench_task_checks_its_payload_and_options() -> None:
    assert bench.process(LocalHandler(b"short", options=bench_options())).error == (
        "Payload should have the same size as the one specified"
    )
    assert (
        bench.process(LocalHandler(b"", options={})).error == "PayloadSize should be defined in task options"
    )


def test_bench_deterministic_failures() -> None:
    erring = LocalHandler(b"p" * 2048, task_id="t-07", options=bench_options(TaskError="07"))
    assert bench.process(erring).error == "Deterministic Error"
    assert erring.sent  # the results are written before the error, as upstream
    crashing = LocalHandler(b"p" * 2048, task_id="t-08", options=bench_options(TaskRpcException="08"))
    with pytest.raises(common.WorkerCrash):
        bench.process(crashing)


def test_bench_batches() -> None:
    assert [list(b) for b in bench.batches(5, 2)] == [[0, 1], [2, 3], [4]]
    assert bench.batches(0, 10) == []
    assert sum(len(b) for b in bench.batches(1001, 100)) == 1001


def test_bench_session_carries_upstream_option_keys() -> None:
    options = bench.BenchOptions(
        n_tasks=10, task_duration_ms=5, payload_size=1, result_size=4, options={"k": "v"}
    )
    task_options = common.session_options("bench", "default", options.task_options()).options
    assert task_options == {
        "k": "v",
        "TaskDurationMs": "5",
        "TaskError": "",
        "TaskRpcException": "",
        "PayloadSize": "1",
        "ResultSize": "4",
        "sample": "bench",
    }


def test_bench_graph() -> None:
    cluster = LocalCluster(worker.dispatch, default_options({"sample": "bench", **bench_options()}))
    outputs = list(cluster.create_results_metadata([f"r{i}" for i in range(5)]).values())
    payloads = cluster.create_results({f"p{i}": b"x" * 2048 for i in range(5)})
    cluster.submit([TaskDefinition(payloads[f"p{i}"], expected_output_ids=[outputs[i]]) for i in range(5)])
    cluster.run()
    assert all(len(cluster.result(r)) == 3072 for r in outputs)


def test_bench_graph_with_wrong_payloads_fails() -> None:
    cluster = LocalCluster(
        worker.dispatch, default_options({"sample": "bench", **bench_options()}, max_retries=0)
    )
    (output,) = cluster.create_results_metadata(["r"]).values()
    payload = cluster.create_results({"p": b"x"})["p"]
    cluster.submit([TaskDefinition(payload, expected_output_ids=[output])])
    with pytest.raises(TaskFailed, match="same size"):
        cluster.run()


class FakeTasks:
    """`ArmoniKTasks.list_tasks` over a fixed list, as compute_throughput calls it."""

    def __init__(self, tasks: list[Any]) -> None:
        self.tasks = tasks

    def list_tasks(
        self, flt: Any, page: int, page_size: int, sort_field: Any, sort_direction: Any, detailed: bool
    ) -> tuple[int, list[Any]]:
        # compute_throughput asks for the first created (ascending), then for the last ended (descending)
        if sort_direction == Direction.ASC:
            ordered = sorted(self.tasks, key=lambda t: t.created_at)
        else:
            ordered = sorted(self.tasks, key=lambda t: t.ended_at, reverse=True)
        return len(self.tasks), ordered[:page_size]


def test_throughput_is_tasks_over_first_creation_to_last_end() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    tasks = [
        SimpleNamespace(created_at=t0 + timedelta(seconds=i), ended_at=t0 + timedelta(seconds=i + 2))
        for i in range(10)
    ]
    client = cast(common.Client, SimpleNamespace(tasks=FakeTasks(tasks)))
    throughput = common.compute_throughput(client, "s")
    assert throughput.tasks == 10
    assert throughput.seconds == 11.0
    assert throughput.per_second == pytest.approx(10 / 11)
    assert throughput.timespan() == "0:00:11"
    assert (
        common.compute_throughput(cast(common.Client, SimpleNamespace(tasks=FakeTasks([]))), "s").tasks == 0
    )
