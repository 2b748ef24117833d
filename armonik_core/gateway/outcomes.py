"""What an agent's outcome may name: only what its run of the task produced.

The state store applies an outcome as given (it checks the task graph, not who wrote the data), so the
gateway checks, before recording it, that the outcome stays inside the run its lease handle names:

- every result it creates is in the task's session and created by the task;
- every result it completes is one of the task's expected outputs or one it creates, and its data is an
  object the run stored: the object key begins with the run's prefix (`auth.Handle.nonce`), which the agent
  puts in front of every key it writes for the run (`polling_agent.agent_service.new_object_keys`);
- every subtask is in the task's session and created by the task (the state store then checks its inputs and
  outputs against the session, as for any submission).

An outcome that names anything else is refused whole: the task is not completed with it.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from armonik_core.domain.outcomes import TaskOutcome
from armonik_core.gateway.auth import Handle, PermissionDenied


@dataclass(frozen=True, slots=True)
class RunScope:
    """The task a handle's run executes, as far as its outcome is concerned."""

    task_id: str
    session_id: str
    expected_output_ids: Collection[str]


def check_outcome(handle: Handle, scope: RunScope, outcome: TaskOutcome) -> None:
    """Refuse (PermissionDenied) an outcome naming anything outside the run of `handle`."""
    task, session = scope.task_id, scope.session_id
    for result in outcome.created_results:
        if result.session_id != session or result.created_by != task:
            raise PermissionDenied(
                f"Task {task} cannot create result {result.result_id} in session {result.session_id}"
            )
    prefix = handle.nonce.encode()
    created = {r.result_id for r in outcome.created_results}
    for completion in outcome.completions:
        rid = completion.result_id
        if rid not in created and rid not in scope.expected_output_ids:
            raise PermissionDenied(
                f"Result {rid} is neither an expected output of task {task} nor created by it"
            )
        if not completion.opaque_id.startswith(prefix):
            raise PermissionDenied(f"The data of result {rid} was not stored by this run of task {task}")
    for subtask in outcome.subtasks:
        if subtask.session_id != session or subtask.created_by != task:
            raise PermissionDenied(
                f"Task {task} cannot submit task {subtask.task_id} in session {subtask.session_id}"
            )
