"""The samples' `process` functions with a stand-in task handler, one task at a time and as whole graphs.

`LocalHandler` records what a task sends, creates and submits; `LocalCluster` runs a graph of them the way
ArmoniK would (dependencies, output hand-over, option merging, retries), dispatching through the worker.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from armonik.common import TaskDefinition

from armonik_samples import (
    dynamic_submission,
    hello_world,
    linear_subtasking,
    multiple_results,
    subtasking,
    worker,
)
from armonik_samples.local import LocalCluster, LocalHandler, TaskFailed, default_options


def run_graph(
    sample: str, payload: bytes, outputs: int = 1, **options: str
) -> tuple[LocalCluster, list[str]]:
    """Submit one task of `sample` as its client would, run everything, return the cluster and outputs."""
    cluster = LocalCluster(worker.dispatch, default_options({"sample": sample, **options}))
    ids = cluster.create_results_metadata([f"output {i}" for i in range(outputs)])
    payload_id = cluster.create_results({"payload": payload})["payload"]
    cluster.submit([TaskDefinition(payload_id, expected_output_ids=list(ids.values()))])
    cluster.run()
    return cluster, list(ids.values())


# -- hello world -----------------------------------------------------------------------------------------------
def test_hello_world_process() -> None:
    handler = LocalHandler(b"World", options={"sample": "hello_world"})
    output = hello_world.process(handler)
    assert output.success
    assert handler.result() == b"Hello World!"
    assert handler.submitted == [] and handler.created == {}


def test_hello_world_through_the_worker() -> None:
    cluster, (output,) = run_graph("hello_world", b"ArmoniK")
    assert cluster.result(output) == b"Hello ArmoniK!"
    assert len(cluster.executions) == 1


# -- multiple results ----------------------------------------------------------------------------------------
def test_multiple_results_writes_every_expected_result_in_order() -> None:
    handler = LocalHandler(b"data", expected_results=["r0", "r1", "r2"])
    assert multiple_results.process(handler).success
    assert handler.sent == {"r0": b"data #0", "r1": b"data #1", "r2": b"data #2"}


def test_multiple_results_graph() -> None:
    cluster, outputs = run_graph("multiple_results", b"Hi", outputs=4)
    assert [cluster.result(r) for r in outputs] == [f"Hi #{i}".encode() for i in range(4)]


def test_multiple_results_without_results_is_an_error() -> None:
    assert not multiple_results.process(LocalHandler(b"x", expected_results=[])).success


# -- linear subtasking -----------------------------------------------------------------------------------------
def test_linear_subtasking_delegates_its_output() -> None:
    handler = LocalHandler(linear_subtasking.payload_of(2, 5, 1), expected_results=["out"])
    assert linear_subtasking.process(handler).success
    assert handler.sent == {}
    (sub,) = handler.submitted
    assert sub.expected_output_ids == ["out"]
    assert sub.data_dependencies == []
    payload = json.loads(handler.created_data(sub.payload_id))
    assert payload == {"level": 3, "levels": 5, "value": 3}


def test_linear_subtasking_last_level_writes() -> None:
    handler = LocalHandler(linear_subtasking.payload_of(5, 5, 10))
    assert linear_subtasking.process(handler).success
    assert handler.result() == b"15"
    assert handler.submitted == []


@pytest.mark.parametrize("levels", [0, 1, 7])
def test_linear_subtasking_chain(levels: int) -> None:
    cluster, (output,) = run_graph("linear_subtasking", linear_subtasking.payload_of(0, levels, 0))
    assert cluster.result(output) == str(linear_subtasking.expected_value(levels)).encode()
    assert len(cluster.executions) == levels + 1
    assert cluster.owners[output] == cluster.executions[-1].task_id  # owned by the last task of the chain


# -- subtasking ------------------------------------------------------------------------------------------------
def test_subtasking_splits_in_two_halves_and_an_aggregation() -> None:
    handler = LocalHandler(
        subtasking.encode_values(range(1, 21)), expected_results=["out"], options={"split": "10"}
    )
    assert subtasking.process(handler).success
    assert handler.sent == {}
    assert list(handler.created_metadata) == ["left_result", "right_result"]
    assert list(handler.created) == ["left_payload", "right_payload", "aggregation_payload"]
    left, right, aggregate = handler.submitted
    left_id, right_id = handler.created_metadata["left_result"], handler.created_metadata["right_result"]
    assert subtasking.decode_values(handler.created_data(left.payload_id)) == list(range(1, 11))
    assert subtasking.decode_values(handler.created_data(right.payload_id)) == list(range(11, 21))
    assert (left.expected_output_ids, right.expected_output_ids) == ([left_id], [right_id])
    assert handler.created_data(aggregate.payload_id) == b""  # the empty payload marks the aggregation
    assert aggregate.data_dependencies == [left_id, right_id]
    assert aggregate.expected_output_ids == ["out"]  # takes over the parent's output
    assert aggregate.options.options["split"] == "10"  # inherited from the session's defaults


def test_subtasking_small_payload_sums() -> None:
    handler = LocalHandler(subtasking.encode_values([5, 6, 7]), options={"split": "10"})
    assert subtasking.process(handler).success
    assert handler.result() == (18).to_bytes(8, "little")


def test_subtasking_aggregation_sums_its_dependencies() -> None:
    deps = {"a": (40).to_bytes(8, "little"), "b": (2).to_bytes(8, "little")}
    handler = LocalHandler(b"", data_dependencies=deps, options={"split": "10"})
    assert subtasking.process(handler).success
    assert handler.result() == (42).to_bytes(8, "little")


def test_subtasking_needs_the_split_option() -> None:
    output = subtasking.process(LocalHandler(subtasking.encode_values([1])))
    assert output.error == "Threshold is not specified"


@pytest.mark.parametrize(("n", "split"), [(1, 10), (10, 10), (11, 10), (100, 10), (1000, 7)])
def test_subtasking_graph_sums_1_to_n(n: int, split: int) -> None:
    cluster, (output,) = run_graph("subtasking", subtasking.encode_values(range(1, n + 1)), split=str(split))
    assert int.from_bytes(cluster.result(output), "little") == n * (n + 1) // 2
    leaves = [e for e in cluster.executions if e.handler.payload and not e.handler.submitted]
    assert all(len(e.handler.payload) // 4 <= split for e in leaves)
    splits = sum(1 for e in cluster.executions if e.handler.submitted)
    aggregations = sum(1 for e in cluster.executions if not e.handler.payload)
    assert aggregations == splits and len(leaves) == splits + 1  # a binary tree
    assert len(cluster.executions) == 3 * splits + 1


# -- dynamic submission ----------------------------------------------------------------------------------------
def test_dynamic_submission_splits_by_threshold() -> None:
    values = list(range(25))
    handler = LocalHandler(dynamic_submission.table(values, 10), expected_results=["out"])
    assert dynamic_submission.process(handler).success
    *parts, aggregate = handler.submitted
    assert len(parts) == 3  # ceil(25 / 10)
    tables = [json.loads(handler.created_data(p.payload_id)) for p in parts]
    assert [t["values"] for t in tables] == [values[0:10], values[10:20], values[20:25]]
    assert json.loads(handler.created_data(aggregate.payload_id)) == {"aggregate": True}
    assert aggregate.data_dependencies == [p.expected_output_ids[0] for p in parts]
    assert aggregate.expected_output_ids == ["out"]


def test_dynamic_submission_small_table_sums_negative_values_too() -> None:
    handler = LocalHandler(dynamic_submission.table([-5, 3], 10))
    assert dynamic_submission.process(handler).success
    assert int.from_bytes(handler.result(), "little", signed=True) == -2


@pytest.mark.parametrize(("size", "threshold"), [(0, 3), (5, 10), (95, 10), (1000, 33)])
def test_dynamic_submission_graph(size: int, threshold: int) -> None:
    values = dynamic_submission.random_values(size, seed=size)
    cluster, (output,) = run_graph("dynamic_submission", dynamic_submission.table(values, threshold))
    assert int.from_bytes(cluster.result(output), "little", signed=True) == sum(values)
    parts = len(dynamic_submission.chunks(values, threshold))
    assert len(cluster.executions) == (1 if size <= threshold else parts + 2)


def test_dynamic_submission_rejects_a_zero_threshold() -> None:
    assert not dynamic_submission.process(LocalHandler(dynamic_submission.table([1], 0))).success


# -- the local cluster itself ----------------------------------------------------------------------------------
def test_a_task_that_neither_writes_nor_hands_over_its_output_fails() -> None:
    def lazy(handler: Any) -> Any:
        from armonik.common import Output

        return Output()

    cluster = LocalCluster(lazy, default_options(max_retries=0))
    (output,) = cluster.create_results_metadata(["out"]).values()
    payload = cluster.create_results({"p": b""})["p"]
    cluster.submit([TaskDefinition(payload, expected_output_ids=[output])])
    with pytest.raises(TaskFailed, match="without writing"):
        cluster.run()
    with pytest.raises(TaskFailed):
        cluster.result(output)


def test_an_aborted_result_fails_its_dependents() -> None:
    cluster = LocalCluster(
        worker.dispatch, default_options({"sample": "testing", "action": "fail"}, max_retries=1)
    )
    ids = cluster.create_results_metadata(["a", "b"])
    payload = cluster.create_results({"p": b"x"})["p"]
    cluster.submit(
        [
            TaskDefinition(payload, expected_output_ids=[ids["a"]]),
            TaskDefinition(payload, expected_output_ids=[ids["b"]], data_dependencies=[ids["a"]]),
        ]
    )
    with pytest.raises(TaskFailed, match="aborted"):
        cluster.run()
    assert len(cluster.executions) == 2  # the first task and its one retry; the dependent never ran
    assert set(cluster.aborted) == {ids["a"], ids["b"]}
