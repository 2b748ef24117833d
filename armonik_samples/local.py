"""Running sample tasks in process, without ArmoniK: a stand-in task handler and a tiny local scheduler.

`LocalHandler` has the attributes and methods of `armonik.worker.TaskHandler` that the samples use, and
records every call (results sent, results created, tasks submitted), so a unit test can call a sample's
`process` and look at what it did. `LocalCluster` runs a whole graph with those handlers: tasks run once
their data dependencies are available, a subtask takes over the expected outputs it names, task options
merge (task over submission defaults over session defaults), a failed attempt is retried as
`<initial id>###<n>` up to `max_retries`, and what an attempt created or submitted only counts if it
succeeds, as ArmoniK's agent does. A task that succeeds must have written or handed over each of its
expected outputs.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from armonik.common import Output, Result, ResultStatus, Task, TaskDefinition, TaskOptions

from armonik_samples.common import RETRY_SEPARATOR

_ids = itertools.count(1)


def _new_id(prefix: str) -> str:
    return f"{prefix}-{next(_ids)}"


def default_options(options: Mapping[str, str] | None = None, max_retries: int = 2) -> TaskOptions:
    return TaskOptions(
        max_duration=timedelta(hours=1),
        priority=1,
        max_retries=max_retries,
        partition_id="default",
        options=dict(options or {}),
    )


def merge_options(task: TaskOptions | None, default: TaskOptions) -> TaskOptions:
    """ArmoniK's rule: the task's values where set, the defaults otherwise; the option maps are unioned."""
    if task is None:
        return dataclasses.replace(default, options=dict(default.options))
    merged: dict[str, Any] = {}
    for f in dataclasses.fields(TaskOptions):
        mine = getattr(task, f.name)
        merged[f.name] = mine if mine not in (None, "", 0, timedelta(0)) else getattr(default, f.name)
    merged["priority"] = task.priority
    merged["options"] = {**default.options, **task.options}
    return TaskOptions(**merged)


@dataclass
class SubmittedTask:
    """A task submitted from a handler: the definition with its ids and merged options."""

    task_id: str
    payload_id: str
    expected_output_ids: list[str]
    data_dependencies: list[str]
    options: TaskOptions


def submitted_task(definition: TaskDefinition, defaults: TaskOptions) -> SubmittedTask:
    return SubmittedTask(
        task_id=_new_id("task"),
        payload_id=definition.payload_id,
        expected_output_ids=list(definition.expected_output_ids),
        data_dependencies=list(definition.data_dependencies),
        options=merge_options(definition.options, defaults),
    )


class LocalHandler:
    """Stand-in for `armonik.worker.TaskHandler`; every call is recorded."""

    def __init__(
        self,
        payload: bytes = b"",
        *,
        expected_results: list[str] | None = None,
        data_dependencies: Mapping[str, bytes] | None = None,
        options: Mapping[str, str] | None = None,
        task_options: TaskOptions | None = None,
        task_id: str | None = None,
        session_id: str = "session-local",
        payload_id: str | None = None,
        session_options: TaskOptions | None = None,
    ) -> None:
        self.session_id = session_id
        self.task_id = task_id or _new_id("task")
        self.task_options = task_options or default_options(options)
        #: Defaults of the subtasks it submits (ArmoniK: the session's, not the parent task's).
        self.session_options = session_options or self.task_options
        self.expected_results = list(
            expected_results if expected_results is not None else [_new_id("result")]
        )
        self.data_dependencies: Mapping[str, bytes] = dict(data_dependencies or {})
        self.payload_id = payload_id or _new_id("payload")
        self.configuration = None
        self.data_folder = ""
        self.token = ""
        self._payload = payload
        #: result id -> data, in the order sent.
        self.sent: dict[str, bytes] = {}
        #: name -> result id, of results created without data.
        self.created_metadata: dict[str, str] = {}
        #: name -> (result id, data), of results created with their data.
        self.created: dict[str, tuple[str, bytes]] = {}
        self.submitted: list[SubmittedTask] = []

    @property
    def payload(self) -> bytes:
        return self._payload

    def _owned(self) -> set[str]:
        return {*self.expected_results, *self.created_metadata.values()}

    def send_results(self, results_data: dict[str, bytes]) -> None:
        for result_id, data in results_data.items():
            if result_id not in self._owned():
                raise ValueError(f"task {self.task_id} cannot write result {result_id}: not its own")
            self.sent[result_id] = bytes(data)

    def create_results_metadata(self, result_names: list[str], batch_size: int = 100) -> dict[str, Result]:
        found = {}
        for name in result_names:
            result_id = _new_id("result")
            self.created_metadata[name] = result_id
            found[name] = Result(
                session_id=self.session_id, name=name, result_id=result_id, status=ResultStatus.CREATED
            )
        return found

    def create_results(self, results_data: dict[str, bytes], batch_size: int = 1) -> dict[str, Result]:
        found = {}
        for name, data in results_data.items():
            result_id = _new_id("result")
            self.created[name] = (result_id, bytes(data))
            found[name] = Result(
                session_id=self.session_id,
                name=name,
                result_id=result_id,
                status=ResultStatus.COMPLETED,
                size=len(data),
            )
        return found

    def submit_tasks(
        self,
        tasks: list[TaskDefinition],
        default_task_options: TaskOptions | None = None,
        batch_size: int | None = 100,
    ) -> list[Task]:
        submitted = []
        defaults = merge_options(default_task_options, self.session_options)
        for definition in tasks:
            task = submitted_task(definition, defaults)
            self.submitted.append(task)
            submitted.append(
                Task(
                    id=task.task_id,
                    session_id=self.session_id,
                    expected_output_ids=task.expected_output_ids,
                    data_dependencies=task.data_dependencies,
                    payload_id=task.payload_id,
                )
            )
        return submitted

    # -- helpers for tests -------------------------------------------------------------------------------
    def result(self) -> bytes:
        """The data sent to the only expected result."""
        (result_id,) = self.expected_results
        return self.sent[result_id]

    def created_data(self, result_id: str) -> bytes:
        for created_id, data in self.created.values():
            if created_id == result_id:
                return data
        raise KeyError(result_id)


@dataclass
class Execution:
    """One attempt of one task in a LocalCluster."""

    task_id: str
    handler: LocalHandler
    error: str | None
    crashed: bool = False


class TaskFailed(Exception):
    pass


@dataclass
class _Pending:
    task_id: str
    initial_id: str
    attempt: int
    payload_id: str
    expected_output_ids: list[str]
    data_dependencies: list[str]
    options: TaskOptions


@dataclass
class LocalCluster:
    """An in-process ArmoniK session for samples' `process` functions (see the module docstring)."""

    process: Callable[[Any], Any]
    session_options: TaskOptions = field(default_factory=default_options)
    max_executions: int = 100_000
    session_id: str = "session-local"
    data: dict[str, bytes] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    owners: dict[str, str] = field(default_factory=dict)
    aborted: dict[str, str] = field(default_factory=dict)
    executions: list[Execution] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    _pending: list[_Pending] = field(default_factory=list)

    # -- client side -------------------------------------------------------------------------------------
    def create_results_metadata(self, names: list[str]) -> dict[str, str]:
        ids = {name: _new_id("result") for name in names}
        self.names.update({result_id: name for name, result_id in ids.items()})
        return ids

    def create_results(self, data: Mapping[str, bytes]) -> dict[str, str]:
        ids = self.create_results_metadata(list(data))
        for name, result_id in ids.items():
            self.data[result_id] = bytes(data[name])
        return ids

    def submit(
        self, definitions: list[TaskDefinition], default_task_options: TaskOptions | None = None
    ) -> list[str]:
        defaults = merge_options(default_task_options, self.session_options)
        return [self._add(submitted_task(d, defaults)) for d in definitions]

    def result(self, result_id: str) -> bytes:
        if result_id in self.aborted:
            raise TaskFailed(f"result {result_id} aborted: {self.aborted[result_id]}")
        return self.data[result_id]

    # -- scheduling --------------------------------------------------------------------------------------
    def _add(self, task: SubmittedTask) -> str:
        for result_id in task.expected_output_ids:
            self.owners[result_id] = task.task_id
        self._pending.append(
            _Pending(
                task.task_id,
                task.task_id,
                0,
                task.payload_id,
                task.expected_output_ids,
                task.data_dependencies,
                task.options,
            )
        )
        return task.task_id

    def _ready(self, task: _Pending) -> bool:
        return task.payload_id in self.data and all(dep in self.data for dep in task.data_dependencies)

    def _blocked(self, task: _Pending) -> str | None:
        for dep in [task.payload_id, *task.data_dependencies]:
            if dep in self.aborted:
                return dep
        return None

    def run(self) -> None:
        """Run tasks until none can run. Raises TaskFailed if a task failed for good."""
        while True:
            runnable = next((t for t in self._pending if self._ready(t)), None)
            if runnable is not None:
                if len(self.executions) >= self.max_executions:
                    raise RuntimeError(f"more than {self.max_executions} executions: a runaway graph?")
                self._pending.remove(runnable)
                self._execute(runnable)
                continue
            doomed = [(t, dep) for t in self._pending if (dep := self._blocked(t)) is not None]
            if not doomed:
                break
            for task, dep in doomed:
                self._pending.remove(task)
                self._fail(task, f"dependency {dep} aborted")
        if self.failed:
            raise TaskFailed("; ".join(f"{task}: {error}" for task, error in self.failed.items()))

    def _execute(self, task: _Pending) -> None:
        handler = LocalHandler(
            self.data[task.payload_id],
            expected_results=list(task.expected_output_ids),
            data_dependencies={dep: self.data[dep] for dep in task.data_dependencies},
            task_options=task.options,
            task_id=task.task_id,
            session_id=self.session_id,
            payload_id=task.payload_id,
            session_options=self.session_options,
        )
        crashed = False
        try:
            output = self.process(handler)
            error = output.error if isinstance(output, Output) else "process returned no Output"
        except Exception as exc:
            crashed, error = True, f"{type(exc).__name__}: {exc}"
        if error is None:
            error = self._commit(handler)
        self.executions.append(Execution(task.task_id, handler, error, crashed))
        if error is None:
            return
        if task.attempt < task.options.max_retries:
            attempt = task.attempt + 1
            retry_id = f"{task.initial_id}{RETRY_SEPARATOR}{attempt}"
            for result_id in task.expected_output_ids:
                self.owners[result_id] = retry_id
            self._pending.append(dataclasses.replace(task, task_id=retry_id, attempt=attempt))
        else:
            self._fail(task, error)

    def _commit(self, handler: LocalHandler) -> str | None:
        """Apply a successful attempt: its new results, then its subtasks, then its outputs."""
        delegated = {r for sub in handler.submitted for r in sub.expected_output_ids}
        missing = [r for r in handler.expected_results if r not in handler.sent and r not in delegated]
        if missing:
            return f"completed without writing or handing over its results {missing}"
        for name, (result_id, data) in handler.created.items():
            self.names[result_id] = name
            self.data[result_id] = data
        for name, result_id in handler.created_metadata.items():
            self.names[result_id] = name
        for sub in handler.submitted:
            self._add(sub)
        self.data.update(handler.sent)
        return None

    def _fail(self, task: _Pending, error: str) -> None:
        self.failed[task.task_id] = error
        for result_id in task.expected_output_ids:
            self.aborted[result_id] = f"task {task.task_id} failed: {error}"

    # -- inspection --------------------------------------------------------------------------------------
    @property
    def successful(self) -> list[Execution]:
        return [e for e in self.executions if e.error is None]
