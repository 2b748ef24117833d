"""The task graph: when a task may run, who owns a result, and what a failure takes down with it.

Storage backends load the few rows these rules need inside their own transaction and apply the plan the
rules return, so that every backend resolves dependencies and cascades errors the same way.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from armonik_core.domain.errors import FailedPrecondition, InvalidArgument, NotFound, describe_missing
from armonik_core.domain.records import Result, Task
from armonik_core.domain.statuses import ResultStatus, TaskStatus

#: Tasks that an aborted input takes down: they have not started and never could.
CASCADE_TASK_STATUSES = frozenset({TaskStatus.CREATING, TaskStatus.PENDING, TaskStatus.PAUSED})


def task_inputs(task: Task) -> set[str]:
    """Every result a task needs before it may run: its payload and its data dependencies."""
    inputs = set(task.data_dependencies)
    if task.payload_id:
        inputs.add(task.payload_id)
    return inputs


@dataclass(slots=True)
class SubmissionPlan:
    """What a submission does: which tasks are queued at once, which wait and for what, who owns what."""

    ready: list[str] = field(default_factory=list)
    waiting: dict[str, set[str]] = field(default_factory=dict)
    #: result id -> (previous owner, new owner)
    owner_changes: dict[str, tuple[str, str]] = field(default_factory=dict)


def plan_submission(
    tasks: Iterable[Task],
    results: Mapping[str, Result],
    session_id: str,
    parent_task_id: str | None = None,
) -> SubmissionPlan:
    """Validate a batch of new tasks against the results they name and decide their fate.

    `results` holds every result the batch names (inputs and outputs) as currently stored, including those
    created in the same unit of work. `parent_task_id` is the task submitting subtasks from a worker: an
    output it owns may be handed over to one of its subtasks, which is how a task delegates its result.
    """
    plan = SubmissionPlan()
    claimed: dict[str, str] = {}
    for task in tasks:
        if not task.expected_output_ids:
            raise InvalidArgument(f"Task {task.task_id} has no expected output: every task must produce one")
        inputs = task_inputs(task)
        named = inputs | set(task.expected_output_ids)
        missing = {rid for rid in named if rid not in results or results[rid].session_id != session_id}
        if missing:
            raise NotFound(describe_missing("Result", missing) + f" in session {session_id}")
        unusable = {
            rid for rid in inputs if results[rid].status in (ResultStatus.ABORTED, ResultStatus.DELETED)
        }
        if unusable:
            states = ", ".join(f"{rid} is {results[rid].status.name}" for rid in sorted(unusable))
            raise FailedPrecondition(f"Task {task.task_id} depends on unusable results: {states}")
        for output_id in task.expected_output_ids:
            output = results[output_id]
            if output.status != ResultStatus.CREATED:
                raise FailedPrecondition(
                    f"Result {output_id} is {output.status.name}: only a CREATED result can be a task's output"
                )
            if output_id in claimed:
                raise InvalidArgument(
                    f"Result {output_id} is the expected output of both {claimed[output_id]} and {task.task_id}"
                )
            owner = output.owner_task_id
            if owner and owner != parent_task_id and owner != output.session_id:
                raise FailedPrecondition(f"Result {output_id} is already the output of task {owner}")
            claimed[output_id] = task.task_id
            plan.owner_changes[output_id] = (owner, task.task_id)
        remaining = {rid for rid in inputs if results[rid].status != ResultStatus.COMPLETED}
        if remaining:
            plan.waiting[task.task_id] = remaining
        else:
            plan.ready.append(task.task_id)
    return plan


def ready_after_completion(remaining: Mapping[str, Collection[str]], completed: Collection[str]) -> list[str]:
    """Tasks whose last missing inputs are among `completed`.

    `remaining` maps each waiting task that depends on at least one completed result to every input it
    still lacked before this completion.
    """
    done = set(completed)
    return sorted(task_id for task_id, needed in remaining.items() if set(needed) <= done)


class GraphView(Protocol):
    """Read access to the graph that the cascade needs; backends answer from inside their transaction."""

    def dependents(self, result_ids: Collection[str]) -> Mapping[str, TaskStatus]:
        """Tasks having one of these results as payload or data dependency, with their status."""
        ...

    def owned_results(self, task_ids: Collection[str]) -> Mapping[str, ResultStatus]:
        """Results whose owner is one of these tasks, with their status."""
        ...


@dataclass(slots=True)
class CascadePlan:
    tasks: set[str] = field(default_factory=set)
    results: set[str] = field(default_factory=set)


def plan_abort_cascade(failed_task_ids: Collection[str], view: GraphView) -> CascadePlan:
    """Everything a failed task takes down with it.

    Its outputs that are still CREATED will never be produced, so they become ABORTED; every task that has
    not started and needs one of them can never run, so it fails too, and so on transitively. The failed
    tasks themselves are not in the plan's `tasks`: the caller sets their own status.
    """
    plan = CascadePlan()
    frontier_tasks = set(failed_task_ids)
    seen_tasks = set(failed_task_ids)
    while frontier_tasks:
        owned = view.owned_results(frontier_tasks)
        new_results = {rid for rid, status in owned.items() if status == ResultStatus.CREATED} - plan.results
        if not new_results:
            break
        plan.results |= new_results
        dependents = view.dependents(new_results)
        frontier_tasks = {
            tid
            for tid, status in dependents.items()
            if status in CASCADE_TASK_STATUSES and tid not in seen_tasks
        }
        seen_tasks |= frontier_tasks
        plan.tasks |= frontier_tasks
    return plan
