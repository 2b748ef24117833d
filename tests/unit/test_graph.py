"""Dependency bookkeeping, result ownership and the error cascade."""

from collections.abc import Collection

import pytest

from armonik_core.domain.errors import FailedPrecondition, InvalidArgument, NotFound
from armonik_core.domain.graph import plan_abort_cascade, plan_submission, ready_after_completion
from armonik_core.domain.options import TaskOptions
from armonik_core.domain.records import Result, Task
from armonik_core.domain.statuses import ResultStatus, TaskStatus


def result(
    rid: str, status: ResultStatus = ResultStatus.CREATED, owner: str = "", session: str = "s"
) -> Result:
    return Result(rid, session, rid, status, created_at=0.0, owner_task_id=owner)


def task(tid: str, outputs: list[str], deps: list[str] = (), payload: str = "pay") -> Task:  # type: ignore[assignment]
    return Task(tid, "s", TaskStatus.CREATING, TaskOptions(), payload, 0.0, list(outputs), list(deps))


def results(*items: Result) -> dict[str, Result]:
    return {r.result_id: r for r in items}


def test_ready_only_when_payload_and_every_dependency_completed() -> None:
    store = results(
        result("pay", ResultStatus.COMPLETED),
        result("done", ResultStatus.COMPLETED),
        result("later"),
        result("o1"),
        result("o2"),
        result("unpaid_payload"),
        result("o3"),
    )
    plan = plan_submission(
        [
            task("a", ["o1"], ["done"]),
            task("b", ["o2"], ["done", "later"]),
            task("c", ["o3"], payload="unpaid_payload"),
        ],
        store,
        "s",
    )
    assert plan.ready == ["a"]
    assert plan.waiting == {"b": {"later"}, "c": {"unpaid_payload"}}
    assert plan.owner_changes == {"o1": ("", "a"), "o2": ("", "b"), "o3": ("", "c")}


def test_missing_and_unusable_inputs_are_refused() -> None:
    store = results(result("pay", ResultStatus.COMPLETED), result("o"), result("gone", ResultStatus.ABORTED))
    with pytest.raises(NotFound, match="nope"):
        plan_submission([task("a", ["o"], ["nope"])], store, "s")
    with pytest.raises(FailedPrecondition, match="gone is ABORTED"):
        plan_submission([task("a", ["o"], ["gone"])], store, "s")
    other_session = results(result("pay", ResultStatus.COMPLETED), result("o", session="other"))
    with pytest.raises(NotFound, match="in session s"):
        plan_submission([task("a", ["o"])], other_session, "s")


def test_outputs_must_be_created_unowned_and_unique() -> None:
    store = results(result("pay", ResultStatus.COMPLETED), result("o"), result("owned", owner="x"))
    with pytest.raises(InvalidArgument, match="no expected output"):
        plan_submission([task("a", [])], store, "s")
    with pytest.raises(FailedPrecondition, match="only a CREATED result"):
        plan_submission([task("a", ["pay"])], store, "s")
    with pytest.raises(FailedPrecondition, match="already the output of task x"):
        plan_submission([task("a", ["owned"])], store, "s")
    with pytest.raises(InvalidArgument, match="both a and b"):
        plan_submission([task("a", ["o"]), task("b", ["o"])], store, "s")


def test_a_parent_hands_its_output_over_to_a_subtask() -> None:
    store = results(result("pay", ResultStatus.COMPLETED), result("out", owner="parent"), result("mid"))
    plan = plan_submission([task("child", ["out"], ["mid"]), task("sibling", ["mid"])], store, "s", "parent")
    assert plan.owner_changes["out"] == ("parent", "child")
    assert plan.waiting == {"child": {"mid"}}
    assert plan.ready == ["sibling"]


def test_ready_after_completion_needs_every_missing_input() -> None:
    remaining = {"a": {"x"}, "b": {"x", "y"}, "c": {"y"}}
    assert ready_after_completion(remaining, ["x"]) == ["a"]
    assert ready_after_completion(remaining, ["x", "y"]) == ["a", "b", "c"]
    assert ready_after_completion({}, ["x"]) == []


class FakeGraph:
    """An in-memory graph: task -> (status, inputs, outputs)."""

    def __init__(
        self, tasks: dict[str, tuple[TaskStatus, set[str], set[str]]], statuses: dict[str, ResultStatus]
    ):
        self.tasks = tasks
        self.statuses = statuses

    def dependents(self, result_ids: Collection[str]) -> dict[str, TaskStatus]:
        return {tid: st for tid, (st, inputs, _) in self.tasks.items() if inputs & set(result_ids)}

    def owned_results(self, task_ids: Collection[str]) -> dict[str, ResultStatus]:
        return {rid: self.statuses[rid] for tid in task_ids for rid in self.tasks[tid][2]}


def test_error_cascades_transitively_through_unstarted_tasks() -> None:
    graph = FakeGraph(
        {
            "failed": (TaskStatus.PROCESSING, set(), {"r1", "r_done"}),
            "child": (TaskStatus.PENDING, {"r1"}, {"r2"}),
            "grandchild": (TaskStatus.PENDING, {"r2"}, {"r3"}),
            "paused": (TaskStatus.PAUSED, {"r1"}, {"r4"}),
            "finished": (TaskStatus.COMPLETED, {"r1"}, {"r5"}),
            "unrelated": (TaskStatus.PENDING, {"other"}, {"r6"}),
        },
        {
            "r1": ResultStatus.CREATED,
            "r_done": ResultStatus.COMPLETED,
            "r2": ResultStatus.CREATED,
            "r3": ResultStatus.CREATED,
            "r4": ResultStatus.CREATED,
            "r5": ResultStatus.COMPLETED,
            "r6": ResultStatus.CREATED,
        },
    )
    plan = plan_abort_cascade(["failed"], graph)
    assert plan.tasks == {"child", "grandchild", "paused"}
    assert plan.results == {"r1", "r2", "r3", "r4"}


def test_cascade_terminates_on_cycles_and_empty_input() -> None:
    graph = FakeGraph(
        {"a": (TaskStatus.PENDING, {"rb"}, {"ra"}), "b": (TaskStatus.PENDING, {"ra"}, {"rb"})},
        {"ra": ResultStatus.CREATED, "rb": ResultStatus.CREATED},
    )
    plan = plan_abort_cascade(["a"], graph)
    assert plan.tasks == {"b"}
    assert plan.results == {"ra", "rb"}
    assert plan_abort_cascade([], graph).tasks == set()
