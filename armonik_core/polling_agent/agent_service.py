"""The Agent API a worker calls back while it processes a task (`armonik.api.grpc.v1.agent.Agent`).

The service serves one task at a time: the task runner binds a `TaskRun` before calling `Worker.Process`
and unbinds it as soon as the call is over. Every request must carry that run's communication token.

As in ArmoniK.Core, nothing the worker asks for touches the state store while it runs: new results,
notified outputs and subtasks are buffered in the `TaskRun`, and the runner hands them to
`ComputeBackend.finish` in one outcome when the worker returns `Output.ok` (the backend applies them in
one transaction). What is checked here is checked early, so that the worker gets its error while it can
still react to it: tokens, sessions, that data files exist, that the results a subtask names exist and
are usable, that partitions belong to the session. Subtask validation reuses the domain rule the state
stores apply (`graph.plan_submission`), over the results this task created, its own outputs and inputs,
and whatever else the backend knows.

The one write that does happen at once is the data of `CreateResults`, which goes to object storage as
soon as it arrives (the request holds it in memory); objects of a run that does not succeed are deleted.

`GetResourceData` looks the result up through the backend, except for data already in the folder (the
task's own inputs and notified outputs), the task's inputs, and data this task stored (`CreateResults`, or
an in-process worker's `send_results`, see `direct_data`); it makes the data folder if there is none yet.

`GetCommonData`, `GetDirectData` (not implemented upstream either) and the legacy `CreateTask` stream
answer UNIMPLEMENTED.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Collection, Iterable
from pathlib import Path
from typing import Any, TypeAlias, TypeVar

import grpc
from armonik.protogen.common import agent_common_pb2 as pb
from armonik.protogen.worker.agent_service_pb2_grpc import AgentServicer

from armonik_core.adapters.objects.base import ObjectNotFound, ObjectStorage
from armonik_core.control_plane.convert import add_task_infos, optional_options, task_from_creation, timestamp
from armonik_core.control_plane.errors import status_for
from armonik_core.domain import graph
from armonik_core.domain.errors import FailedPrecondition, InvalidArgument, NotFound
from armonik_core.domain.options import merge_options
from armonik_core.domain.outcomes import DataCompletion
from armonik_core.domain.records import Result, Task
from armonik_core.domain.statuses import ResultStatus
from armonik_core.ids import new_ids
from armonik_core.polling_agent.backend import AcquiredTask, ComputeBackend

log = logging.getLogger("armonik.polling_agent")

Ctx: TypeAlias = grpc.aio.ServicerContext
R = TypeVar("R")

NO_TASK = "No task is accepting request"


def new_object_keys(count: int, prefix: str = "") -> list[str]:
    """Object keys in the control plane's format: every write gets a fresh object. `prefix` is the run's
    (`AcquiredTask.object_prefix`): the compute gateway accepts an output only under its run's prefix."""
    return [prefix + key.replace("-", "") for key in new_ids(count)]


def data_file(folder: Path, result_id: str) -> Path:
    """`folder/<result_id>`, refusing ids that would name anything else."""
    if not result_id or result_id in (".", "..") or "/" in result_id or "\0" in result_id:
        raise InvalidArgument(f"Invalid result id {result_id!r}")
    return folder / result_id


class TaskRun:
    """The task being processed, as the Agent API sees it, and what the worker produced so far."""

    def __init__(self, acquired: AcquiredTask, token: str, data_folder: Path | str) -> None:
        self.acquired = acquired
        self.task: Task = acquired.task
        self.token = token
        #: The data folder's path as text (what the worker is given); `data_folder` is its `Path`.
        self.folder_name = str(data_folder)
        self._data_folder = data_folder if isinstance(data_folder, Path) else None
        self.outputs = frozenset(acquired.task.expected_output_ids)
        self.inputs = frozenset([acquired.task.payload_id, *acquired.task.data_dependencies]) - {""}
        #: Results whose files the worker wrote and notified, in notification order.
        self.notified: dict[str, None] = {}
        #: Results created by CreateResultsMetaData or CreateResults.
        self.created: dict[str, Result] = {}
        #: Data received with CreateResults, already in object storage.
        self.stored: dict[str, DataCompletion] = {}
        #: Subtasks submitted, in submission order.
        self.subtasks: list[Task] = []
        #: Outputs promised by a subtask (a result has one producer).
        self.claimed: dict[str, str] = {}
        #: Results an in-process worker sent as bytes (`direct_data`): their objects are in `stored`.
        self.sent: set[str] = set()
        #: The object key of every input, once the runner checked them (their files are named by result id).
        self.input_keys: dict[str, str] = {}
        #: Small inputs read ahead for an in-process worker, when its object storage is behind a network.
        self.prefetched: dict[str, bytes] = {}
        #: Why an input an in-process worker read was missing from object storage (the run is then an ERROR).
        self.lost_input = ""
        #: The data folder exists: made before a separate worker's call, on first use for an in-process one.
        self.folder_made = False
        self._folder_closed = False
        self._folder_lock = threading.Lock()

    @property
    def data_folder(self) -> Path:
        """The data folder's `Path`, made when first asked for: a run whose folder nothing uses (an in-process
        worker's, as a rule) does without."""
        folder = self._data_folder
        if folder is None:
            folder = self._data_folder = Path(self.folder_name)
        return folder

    def ensure_folder(self) -> Path:
        """The data folder, made now if it is not yet. Called from the agent's loop (GetResourceData) or an
        in-process worker's thread (`direct_data`); never makes it once the run is over (`close_folder`), when
        nobody would remove it: a worker whose call was abandoned may run on."""
        if not self.folder_made:
            with self._folder_lock:
                if not self.folder_made and not self._folder_closed:
                    self.data_folder.mkdir(parents=True, exist_ok=True)
                    self.folder_made = True
        return self.data_folder

    def close_folder(self) -> None:
        """The run is over: its folder, if any, is about to be removed, and must not be made again."""
        with self._folder_lock:
            self._folder_closed = True

    @property
    def session_id(self) -> str:
        return self.task.session_id


class _NoTask(Exception):
    """No task is bound, or the run a request started on is over."""


def _handler(fn: Callable[..., Awaitable[R]]) -> Callable[..., Awaitable[R]]:
    """Domain errors become their status; an unexpected error is logged and answered INTERNAL."""

    @functools.wraps(fn)
    async def handler(self: Any, request: Any, context: Ctx) -> R:
        try:
            return await fn(self, request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await context.abort(*refusal(fn.__name__, exc))
        raise AssertionError("unreachable: abort raises")

    return handler


def refusal(method: str, exc: Exception) -> tuple[grpc.StatusCode, str]:
    """The status a failed Agent call answers with: UNAVAILABLE when no task is bound, the domain error's
    status otherwise; an unexpected error is logged and answered INTERNAL."""
    if isinstance(exc, _NoTask):
        return grpc.StatusCode.UNAVAILABLE, NO_TASK
    code, message = status_for(exc)
    if code is grpc.StatusCode.INTERNAL:
        log.error("unhandled error in Agent.%s", method, exc_info=exc)
    else:
        log.info("Agent.%s refused: %s (%s)", method, message, code.name)
    return code, message


def _metadata(result: Result) -> pb.ResultMetaData:
    return pb.ResultMetaData(
        session_id=result.session_id,
        result_id=result.result_id,
        name=result.name,
        status=int(result.status),  # type: ignore[arg-type]
        created_at=timestamp(result.created_at),
    )


class AgentService(AgentServicer):
    def __init__(self, backend: ComputeBackend, objects: ObjectStorage) -> None:
        self._backend = backend
        self._objects = objects
        self._run: TaskRun | None = None

    @property
    def current(self) -> TaskRun | None:
        return self._run

    def bind(self, run: TaskRun) -> None:
        if self._run is not None:
            raise RuntimeError(f"the agent already serves task {self._run.task.task_id}")
        self._run = run

    def unbind(self) -> None:
        self._run = None

    # -- helpers -----------------------------------------------------------------------------------------
    def _check(self, token: str) -> TaskRun:
        run = self._run
        if run is None:
            raise _NoTask()
        if not token:
            raise InvalidArgument("Missing communication token")
        if token != run.token:
            raise InvalidArgument("Wrong communication token")
        return run

    def _still(self, run: TaskRun) -> None:
        """After an await: the run may have ended meanwhile (the worker returned or was cancelled)."""
        if self._run is not run:
            raise _NoTask()

    @staticmethod
    def _check_session(run: TaskRun, session_id: str) -> str:
        if session_id and session_id != run.session_id:
            raise InvalidArgument(
                f"Session {session_id} is not the session of task {run.task.task_id} ({run.session_id})"
            )
        return run.session_id

    def _new_results(self, run: TaskRun, names: Iterable[str]) -> list[Result]:
        names = list(names)
        now = time.time()
        return [
            Result(
                result_id=result_id,
                session_id=run.session_id,
                name=name,
                status=ResultStatus.CREATED,
                created_at=now,
                created_by=run.task.task_id,
            )
            for result_id, name in zip(new_ids(len(names)), names, strict=True)
        ]

    async def _known_results(self, run: TaskRun, result_ids: Collection[str]) -> dict[str, Result]:
        """The results named, as far as this run and the backend know them (missing ones are absent)."""
        known: dict[str, Result] = {}
        lookup: list[str] = []
        for result_id in result_ids:
            if result_id in run.created:
                result = run.created[result_id]
            elif result_id in run.outputs:
                # Owned by this task and not produced yet: what delegating it to a subtask requires.
                result = Result(
                    result_id, run.session_id, "", ResultStatus.CREATED, 0.0, owner_task_id=run.task.task_id
                )
            elif result_id in run.inputs:
                result = Result(result_id, run.session_id, "", ResultStatus.COMPLETED, 0.0)
            else:
                lookup.append(result_id)
                continue
            if result_id in run.notified or result_id in run.stored:
                # Its data is already there: usable as an input, no longer as anybody's output.
                result = dataclasses.replace(result, status=ResultStatus.COMPLETED)
            known[result_id] = result
        if lookup:
            found = await self._backend.get_results(lookup, run.acquired)
            self._still(run)
            known.update((r.result_id, r) for r in found)
        return known

    # -- results -----------------------------------------------------------------------------------------
    @_handler
    async def CreateResultsMetaData(
        self, request: pb.CreateResultsMetaDataRequest, context: Ctx
    ) -> pb.CreateResultsMetaDataResponse:
        return self.create_results_metadata(request)

    def create_results_metadata(
        self, request: pb.CreateResultsMetaDataRequest
    ) -> pb.CreateResultsMetaDataResponse:
        """CreateResultsMetaData's work, which awaits nothing (see `notify_result_data`)."""
        run = self._check(request.communication_token)
        self._check_session(run, request.session_id)
        results = self._new_results(run, (item.name for item in request.results))
        run.created.update((r.result_id, r) for r in results)
        return pb.CreateResultsMetaDataResponse(
            results=[_metadata(r) for r in results], communication_token=run.token
        )

    @_handler
    async def CreateResults(self, request: pb.CreateResultsRequest, context: Ctx) -> pb.CreateResultsResponse:
        run = self._check(request.communication_token)
        self._check_session(run, request.session_id)
        results = self._new_results(run, (item.name for item in request.results))
        keys = new_object_keys(len(results), run.acquired.object_prefix)
        await self._objects.put_many(
            {key: item.data for key, item in zip(keys, request.results, strict=True)}
        )
        if self._run is not run:
            await self._objects.delete(keys)
            raise _NoTask()
        for result, key, item in zip(results, keys, request.results, strict=True):
            run.created[result.result_id] = result
            run.stored[result.result_id] = DataCompletion(result.result_id, len(item.data), key.encode())
        return pb.CreateResultsResponse(
            results=[_metadata(r) for r in results], communication_token=run.token
        )

    @_handler
    async def NotifyResultData(
        self, request: pb.NotifyResultDataRequest, context: Ctx
    ) -> pb.NotifyResultDataResponse:
        return self.notify_result_data(request)

    def notify_result_data(self, request: pb.NotifyResultDataRequest) -> pb.NotifyResultDataResponse:
        """NotifyResultData's work: checks and bookkeeping on the bound run, nothing awaited. An in-process
        worker calls it straight from its thread (see `inprocess.InProcessAgentStub`): no round trip through
        the event loop for the call every task makes. The run's records are only read or changed by the
        worker's own calls while it runs, one at a time, and the agent reads them once the worker returned."""
        run = self._check(request.communication_token)
        ids: list[str] = []
        for item in request.ids:
            result_id = item.result_id
            path = data_file(run.data_folder, result_id)
            self._check_output(run, result_id, item.session_id, resend=False)
            if not path.is_file():
                raise InvalidArgument(f"Data file of result {result_id} not found: {path}")
            ids.append(result_id)
        run.notified.update(dict.fromkeys(ids))
        return pb.NotifyResultDataResponse(result_ids=ids)

    @staticmethod
    def _check_output(run: TaskRun, result_id: str, session_id: str, resend: bool) -> None:
        """What a worker may give data to: an expected output of its task or a result it created, in its
        session, with no data yet (`resend`: or data it sent as bytes before), not handed to a subtask."""
        if session_id and session_id != run.session_id:
            raise InvalidArgument(f"Result {result_id} is not in session {run.session_id}")
        if result_id not in run.outputs and result_id not in run.created:
            raise InvalidArgument(
                f"Result {result_id} is neither an expected output of task {run.task.task_id} "
                "nor a result it created"
            )
        if result_id in run.stored and not (resend and result_id in run.sent):
            how = "TaskHandler.send_results" if result_id in run.sent else "CreateResults"
            raise InvalidArgument(f"Result {result_id} already received its data through {how}")
        if result_id in run.claimed:
            raise InvalidArgument(f"Result {result_id} was handed over to subtask {run.claimed[result_id]}")

    def check_sent(self, token: str, session_id: str, result_ids: Iterable[str]) -> TaskRun:
        """The checks of NotifyResultData for results an in-process worker sends as bytes, before they are
        stored (see `direct_data`); sending one again replaces its data, as rewriting its file would."""
        run = self._check(token)
        for result_id in result_ids:
            self._check_output(run, result_id, session_id, resend=True)
        return run

    def record_sent(self, run: TaskRun, completions: Iterable[DataCompletion]) -> None:
        """Objects stored for results an in-process worker sent: completed with the outcome, deleted with a
        run that fails. Recorded first, then the run checked: a run over meanwhile raises, and its objects
        are the caller's to delete (whether or not the runner saw them)."""
        for completion in completions:
            run.stored[completion.result_id] = completion
            run.sent.add(completion.result_id)
            run.notified.pop(completion.result_id, None)
        self._still(run)

    # -- tasks -------------------------------------------------------------------------------------------
    @_handler
    async def SubmitTasks(self, request: pb.SubmitTasksRequest, context: Ctx) -> pb.SubmitTasksResponse:
        run = self._check(request.communication_token)
        if request.session_id != run.session_id:
            raise InvalidArgument(
                f"Session {request.session_id!r} is not the session of task {run.task.task_id} "
                f"({run.session_id}): a worker submits into its own session"
            )
        creations = list(request.task_creations)
        if not creations:
            return pb.SubmitTasksResponse(communication_token=run.token)
        acquired = run.acquired
        partitions = acquired.session_partitions
        base = merge_options(optional_options(request, "task_options"), acquired.session_options)
        ids = new_ids(len(creations))
        parents = [*run.task.parent_task_ids, run.task.task_id]
        now = time.time()
        tasks: list[Task] = []
        for task_id, creation in zip(ids, creations, strict=True):
            if not creation.payload_id:
                raise InvalidArgument("Every task needs a payload_id (create the payload as a result first)")
            # Task options over request options over session defaults (`effective_options`), the request
            # level merged once for the batch.
            options = base
            if creation.HasField("task_options"):
                options = merge_options(optional_options(creation, "task_options"), base)
            if not options.partition_id and partitions:
                options.partition_id = partitions[0]
            if options.partition_id not in partitions:
                raise FailedPrecondition(
                    f"Partition '{options.partition_id}' is not one of session {run.session_id}'s "
                    f"partitions ({', '.join(partitions)})"
                )
            tasks.append(
                task_from_creation(
                    creation,
                    task_id,
                    run.session_id,
                    options,
                    now,
                    list(parents),
                    created_by=run.task.task_id,
                )
            )
        named = {rid for t in tasks for rid in (*graph.task_inputs(t), *t.expected_output_ids)}
        known = await self._known_results(run, named)
        # The same rule the state stores apply when the outcome is recorded, checked now for the worker.
        graph.plan_submission(tasks, known, run.session_id, run.task.task_id)
        for task in tasks:
            for output_id in task.expected_output_ids:
                if output_id in run.claimed:
                    raise InvalidArgument(
                        f"Result {output_id} is the expected output of both {run.claimed[output_id]} "
                        f"and {task.task_id}"
                    )
        for task in tasks:
            run.claimed.update(dict.fromkeys(task.expected_output_ids, task.task_id))
        run.subtasks.extend(tasks)
        response = pb.SubmitTasksResponse(communication_token=run.token)
        add_task_infos(response.task_infos, tasks)
        return response

    # -- data --------------------------------------------------------------------------------------------
    @_handler
    async def GetResourceData(self, request: pb.DataRequest, context: Ctx) -> pb.DataResponse:
        run = self._check(request.communication_token)
        result_id = request.result_id
        path = data_file(run.data_folder, result_id)
        if result_id in run.stored:
            key = run.stored[result_id].opaque_id.decode()
        elif (result_id in run.notified or result_id in run.inputs) and path.is_file():
            return pb.DataResponse(result_id=result_id)  # already in the folder
        elif result_id in run.input_keys:  # an input not staged (an in-process worker's, see `direct_data`)
            key = run.input_keys[result_id]
        else:
            found = await self._backend.get_results([result_id], run.acquired)
            self._still(run)
            result = next((r for r in found if r.result_id == result_id), None)
            if result is None or result.session_id != run.session_id:
                raise NotFound(f"Result {result_id} not found in session {run.session_id}")
            if result.status != ResultStatus.COMPLETED:
                raise FailedPrecondition(f"Result {result_id} is {result.status.name}: it has no data yet")
            key = result.opaque_id.decode(errors="replace")
        run.ensure_folder()
        try:
            await self._objects.export_to_file(key, path)
        except ObjectNotFound:
            raise NotFound(f"The data of result {result_id} is missing from object storage") from None
        self._still(run)
        return pb.DataResponse(result_id=result_id)

    async def GetCommonData(self, request: pb.DataRequest, context: Ctx) -> pb.DataResponse:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "GetCommonData is not implemented")
        raise AssertionError("unreachable: abort raises")

    async def GetDirectData(self, request: pb.DataRequest, context: Ctx) -> pb.DataResponse:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "GetDirectData is not implemented")
        raise AssertionError("unreachable: abort raises")

    async def CreateTask(self, request_iterator: Any, context: Ctx) -> pb.CreateTaskReply:
        await context.abort(
            grpc.StatusCode.UNIMPLEMENTED,
            "The legacy CreateTask stream is not implemented: use CreateResults and SubmitTasks",
        )
        raise AssertionError("unreachable: abort raises")
