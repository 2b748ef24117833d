"""Running one task: stage its inputs as files, call the worker, turn what happened into an outcome.

The sequence follows ArmoniK.Core's `TaskHandler`:

1. A fresh communication token, and a data folder `<SharedCacheFolder>/<token>`, as upstream lays them out
   (PymoniK, for one, builds the path of a resource it asks for from the token). When the run ended
   normally, the folder, emptied, and its files are kept (`SpareFiles`) and renamed into place for the next
   tasks: a rename instead of a mkdir and an rmdir, which cost 0.7 and 0.85 ms of wall time here.
2. The payload and every data dependency are copied from object storage into the folder, one file per
   result, named by result id (several at a time). An in-process worker reads them from object storage
   itself, and stores its outputs there (`direct_data`): its inputs are only checked here (the small ones
   read ahead from a storage behind a network), and its folder is made only if something uses it. At the same time the worker's health is checked (a
   check started as soon as the previous Process call was over, see `WorkerClient`): the two are
   independent and each costs a round trip, and the whole point of the agent is to keep the time around
   `Worker.Process` short. The start (PROCESSING) is reported on its own only for a task still running
   `START_REPORT_DELAY` after its run began (a short task reports it with its outcome), and, as upstream,
   never before its inputs are fetched: a report that comes due while they are staged waits for the
   worker's call. The times are the agent's: `fetched_at` (inputs in place), `started_at` (worker called),
   `processed_at` (worker answered), so a start reported late still records when the task began.
3. The Agent API is bound to the task, and `Worker.Process` is called with the task's `max_duration` as
   deadline. Deliberate difference from upstream: a `max_duration` of 0 means no deadline here, where
   Core would set an immediate deadline (and time the task out at once), which is never what was meant.
4. The reply becomes the outcome:
   - `Output.ok` -> SUCCESS, carrying the results created, the subtasks submitted, and a completion for
     every notified file (the file is moved into object storage under a new key: it becomes the object)
     and for every result created with its data;
   - `Output.error` -> ERROR with the worker's details (not retried);
   - DEADLINE_EXCEEDED -> TIMEOUT (not retried);
   - UNAVAILABLE before the call reached the worker (no connection: the worker is down or restarting) ->
     RELEASED (queued again, no retry used), and the agent takes no task until the worker answers again;
     UNAVAILABLE once the worker had the call (it died while processing) -> CRASH, as below, and the agent
     waits for the worker too (`never_reached`); the agent then runs the task once more before it reports
     that crash (`PollingAgent._run_again`);
   - any other gRPC error (a worker crash, a Python worker whose function raised: INTERNAL) or failure of
     the agent -> CRASH, `Worker returned error <code>: <details>` (retried while retries remain);
   - a missing input object -> ERROR (retrying cannot bring it back); another staging failure -> CRASH;
   - a cancellation notice (heartbeat) -> the Process call is cancelled, CANCELLED;
   - the agent shutting down past its grace delay, or an unhealthy worker -> RELEASED (queued again).
   Once the worker has answered, cancellation and release notices are ignored: its work is kept.
5. The Agent API is unbound the moment the worker's call is over, the outcome goes to
   `ComputeBackend.finish`, and the folder is deleted while the backend records it. Objects stored for a
   run that did not succeed are deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

import grpc
from armonik.protogen.common.worker_common_pb2 import ProcessReply

from armonik_core.adapters.objects.base import INLINE_SIZE, ObjectNotFound, ObjectStorage
from armonik_core.domain.outcomes import DataCompletion, OutcomeKind, TaskOutcome
from armonik_core.domain.statuses import ResultStatus
from armonik_core.ids import new_id
from armonik_core.polling_agent.agent_service import AgentService, TaskRun, data_file, new_object_keys
from armonik_core.polling_agent.backend import AcquiredTask, ComputeBackend
from armonik_core.polling_agent.settings import AgentSettings
from armonik_core.polling_agent.spare_files import SpareFiles
from armonik_core.polling_agent.worker_client import Worker

log = logging.getLogger("armonik.polling_agent")

T = TypeVar("T")

#: Outcomes after which the worker may still be busy with the task (its call was abandoned).
ABANDONED = frozenset({OutcomeKind.CANCELLED, OutcomeKind.TIMEOUT, OutcomeKind.RELEASED, OutcomeKind.CRASH})

#: A task still running after this long reports its start (PROCESSING) at once; a shorter one with its outcome.
START_REPORT_DELAY = 0.1

#: An in-process worker's inputs up to this size are read before its call from a storage behind a network.
PREFETCH_SIZE = INLINE_SIZE


class _Failed(Exception):
    """Ends the run early with this outcome."""

    def __init__(self, outcome: TaskOutcome) -> None:
        super().__init__(outcome.message)
        self.outcome = outcome


def _describe(exc: BaseException) -> str:
    if isinstance(exc, grpc.aio.AioRpcError):
        return f"{exc.code().name}: {exc.details()}"
    return f"{type(exc).__name__}: {exc}"


#: What gRPC says when a call could not be sent: no connection to the worker (its socket missing, or nobody
#: listening), or the request could not be written to a connection the worker had closed.
_NOT_SENT = ("failed to connect", "connect failed", "Connection refused", "No such file", "Broken pipe")


def never_reached(exc: grpc.aio.AioRpcError) -> bool:
    """True when an UNAVAILABLE Process call never reached the worker: the task cannot be at fault, and is
    given back without using a retry. A call the worker had received when its connection dropped ("Socket
    closed", "Connection reset") is a worker that died while processing the task: the agent runs the task
    once more on the restarted worker, and only a second death, which points at the task (a segmentation
    fault, memory exhausted), ends it as a crash, retried as upstream does."""
    details = exc.details() or ""
    return any(marker in details for marker in _NOT_SENT)


def _make_folder(path: Path, spares: SpareFiles | None = None) -> None:
    if spares is not None and spares.place_folder(str(path)):
        return
    try:
        os.mkdir(path)
    except FileNotFoundError:  # the shared cache folder itself is missing (first task, or removed)
        path.mkdir(parents=True, exist_ok=True)


def _empty_folder(path: Path, spares: SpareFiles | None = None) -> None:
    """A task's data folder holds a few files: kept as `spares` for the next inputs, or unlinked directly,
    which costs a fraction of `rmtree`'s careful descent; anything else (a folder the worker made) goes
    through `rmtree`."""
    try:
        with os.scandir(path) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                elif spares is None or not spares.keep(entry.path):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)
        if spares is None or not spares.keep_folder(str(path)):
            os.rmdir(path)
    except FileNotFoundError:
        pass
    except OSError:
        shutil.rmtree(path, ignore_errors=True)


async def _bounded(limit: int, jobs: Sequence[Callable[[], Awaitable[T]]]) -> list[T]:
    """Run the jobs at most `limit` at a time; the first failure is raised once all have stopped."""
    if len(jobs) <= 1:  # the usual cases (a payload, one output; none for an in-process worker): no tasks
        return [await jobs[0]()] if jobs else []
    semaphore = asyncio.Semaphore(limit)

    async def one(job: Callable[[], Awaitable[T]]) -> T:
        async with semaphore:
            return await job()

    outcomes = await asyncio.gather(*(one(job) for job in jobs), return_exceptions=True)
    for item in outcomes:
        if isinstance(item, BaseException):
            raise item
    return outcomes  # type: ignore[return-value]


class TaskRunner:
    def __init__(
        self,
        acquired: AcquiredTask,
        *,
        settings: AgentSettings,
        backend: ComputeBackend,
        objects: ObjectStorage,
        service: AgentService,
        worker: Worker,
        spares: SpareFiles | None = None,
    ) -> None:
        self.acquired = acquired
        #: Files kept from earlier tasks, for this task's inputs; its own are kept in turn if it ended normally.
        self._spares = spares
        self._settings = settings
        self._backend = backend
        self._objects = objects
        self._service = service
        self._worker = worker
        self._interrupt = asyncio.Event()
        #: The staging and worker call under way, cancelled by a cancellation or release notice.
        self._job: asyncio.Future[ProcessReply] | None = None
        #: The outcome's report to the backend, once the run is over (when the runner reports it).
        self.report: asyncio.Future[None] | None = None
        self._start_report: asyncio.TimerHandle | None = None
        #: The run's timestamps, reported with its outcome: inputs staged, worker called, worker answered.
        self._fetched_at: float | None = None
        self._started_at: float | None = None
        self._processed_at: float | None = None
        #: The start's report came due while the inputs were being staged (see `_report_start`).
        self._start_due = False
        self._interrupt_kind = OutcomeKind.CANCELLED
        self._interrupt_message = ""
        #: True when the run was given back because the worker did not answer its health check.
        self.worker_unhealthy = False
        #: True when the worker died with the call in hand (the agent runs the task once more, see agent.py).
        self.worker_died = False

    @property
    def task_id(self) -> str:
        return self.acquired.task.task_id

    def cancel(self) -> None:
        """The task was cancelled: stop the worker's call and report CANCELLED."""
        self._stop(OutcomeKind.CANCELLED, "Task was cancelled while running")

    def release(self, message: str = "The agent is shutting down") -> None:
        """Give the task back untouched: stop the worker's call and report RELEASED."""
        self._stop(OutcomeKind.RELEASED, message)

    def _stop(self, kind: OutcomeKind, message: str) -> None:
        if not self._interrupt.is_set():
            self._interrupt_kind, self._interrupt_message = kind, message
            self._interrupt.set()
            if self._job is not None:
                self._job.cancel()  # no effect once the worker has answered: its work is kept

    async def run(self, report: bool = True) -> TaskOutcome:
        """Run the task to its end and report the outcome to the backend; returns the outcome.

        With `report=False` the outcome is the caller's to report (the agent batches them), except when the
        run is torn down from outside: the task is then given back here."""
        token = new_id()
        run = TaskRun(self.acquired, token, os.path.join(self._settings.shared_cache_folder, token))
        started = time.monotonic()
        outcome = TaskOutcome(OutcomeKind.CRASH, "The agent failed before the task ran")
        torn_down = False
        try:
            outcome = await self._execute(run)
        except asyncio.CancelledError:
            # Torn down from outside (not the agent's own shutdown, which uses `release`): give the task back.
            outcome = TaskOutcome(OutcomeKind.RELEASED, "The agent stopped while running the task")
            torn_down = True
            raise
        except Exception as exc:
            log.exception("agent failure while running task %s", self.task_id)
            outcome = TaskOutcome(OutcomeKind.CRASH, f"Agent error {_describe(exc)}")
        finally:
            if self._service.current is run:
                self._service.unbind()
            if outcome.kind is not OutcomeKind.SUCCESS:
                await self._discard(run)
            outcome.fetched_at, outcome.started_at = self._fetched_at, self._started_at
            outcome.processed_at = self._processed_at
            if report or torn_down:
                # The report goes out first; the folder (a few files) is emptied in place while the backend
                # works: a thread hop would cost more than the unlinks.
                self.report = asyncio.ensure_future(self._finish(outcome))
                await asyncio.sleep(0)
            # A worker whose call was abandoned may still use its files: those are not kept for other tasks.
            spares = None if outcome.kind in ABANDONED else self._spares
            run.close_folder()
            if run.folder_made:  # an in-process worker's is made only when used
                _empty_folder(run.data_folder, spares=spares)
            if report and self.report is not None:
                await self.report
        # One line per task at thousands of tasks per second is noise and a measurable cost: successes are
        # logged at debug level, everything else at info (its fields built only when the line is written).
        level = logging.DEBUG if outcome.kind is OutcomeKind.SUCCESS else logging.INFO
        if not log.isEnabledFor(level):
            return outcome
        log.log(
            level,
            "task %s: %s",
            self.task_id,
            outcome.kind.value,
            extra={
                "taskId": self.task_id,
                "sessionId": run.session_id,
                "outcome": outcome.kind.value,
                "outcomeMessage": outcome.message,
                "seconds": round(time.monotonic() - started, 6),
            },
        )
        return outcome

    async def _finish(self, outcome: TaskOutcome) -> None:
        try:
            await self._backend.finish(self.acquired, outcome)
        except Exception:
            # The lease is not renewed any more: the backend gives the task to another agent in time.
            log.exception("could not report the outcome of task %s", self.task_id)

    async def _discard(self, run: TaskRun) -> None:
        keys = [c.opaque_id.decode() for c in run.stored.values()]
        if keys:
            try:
                await self._objects.delete(keys)
            except Exception:
                log.warning("could not delete the objects of failed task %s", self.task_id, exc_info=True)

    async def _interruptible(self, work: Coroutine[Any, Any, ProcessReply]) -> ProcessReply:
        """Await `work` unless a cancellation or release notice comes first (then `_Failed`).

        The notice cancels the job directly (`_stop`), which costs no watcher task per run."""
        if self._interrupt.is_set():
            work.close()
            raise _Failed(TaskOutcome(self._interrupt_kind, self._interrupt_message))
        job = self._job = asyncio.ensure_future(work)
        try:
            return await job
        except asyncio.CancelledError:
            current = asyncio.current_task()
            cancelling = getattr(current, "cancelling", None)  # Python 3.11+: was this task itself cancelled?
            torn_down = cancelling() > 0 if cancelling is not None else not job.cancelled()
            if self._interrupt.is_set() and job.cancelled() and not torn_down:
                raise _Failed(TaskOutcome(self._interrupt_kind, self._interrupt_message)) from None
            raise
        finally:
            self._job = None

    async def _execute(self, run: TaskRun) -> TaskOutcome:
        try:
            reply = await self._interruptible(self._prepare_and_process(run))
        except _Failed as failed:
            return self._lost_input(run, failed.outcome)
        finally:
            if self._service.current is run:
                self._service.unbind()
        if run.lost_input:
            return self._lost_input(run, TaskOutcome(OutcomeKind.CRASH))
        return await self._collect(run, reply)

    @staticmethod
    def _lost_input(run: TaskRun, outcome: TaskOutcome) -> TaskOutcome:
        """An in-process worker that found an input missing from object storage (`direct_data`) ends in an
        ERROR, whatever it did then, as a run whose staging found it missing: retrying cannot bring it back.
        A timeout or a cancellation stays what it is."""
        if run.lost_input and outcome.kind in (OutcomeKind.CRASH, OutcomeKind.ERROR):
            return TaskOutcome(OutcomeKind.ERROR, run.lost_input)
        return outcome

    async def _prepare_and_process(self, run: TaskRun) -> ProcessReply:
        task = run.task
        if not self._worker.direct_data:  # an in-process worker's folder is made if it asks for it
            _make_folder(run.data_folder, self._spares)  # one syscall or two: cheaper than a thread hop
            run.folder_made = True
        # The start is reported only if the task is still running after START_REPORT_DELAY: a short task
        # reports it with its outcome instead (`TaskOutcome.started_at`), sparing a round trip per task.
        # Either way the worker never waits for the backend; should the task turn out to be no longer ours,
        # the backend ignores this agent's outcome. A task whose inputs take longer to stage reports its start
        # when the worker is called (`_report_start`): PROCESSING and started_at mean the worker has it.
        loop = asyncio.get_running_loop()
        self._start_report = loop.call_later(START_REPORT_DELAY, self._report_start)
        if self._worker.check_needed():
            healthy, staged = await asyncio.gather(
                self._worker.check_before_task(self._settings.worker_check_timeout),
                self._stage(run),
                return_exceptions=True,
            )
        else:  # the worker answered a moment ago: no check, and no tasks to run the two side by side
            healthy, staged = True, None
            try:
                await self._stage(run)
            except Exception as exc:
                staged = exc
        if healthy is not True:
            self.worker_unhealthy = True
            raise _Failed(TaskOutcome(OutcomeKind.RELEASED, "The worker is not ready"))
        if isinstance(staged, BaseException):
            raise staged
        self._fetched_at = time.time()
        timeout = task.options.max_duration or None
        self._service.bind(run)
        self._started_at = time.time()
        if self._start_due:
            self._report_start()
        try:
            reply = await self._worker.process(run, self._settings.data_chunk_max_size, timeout)
            self._processed_at = time.time()
            return reply
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise _Failed(
                    TaskOutcome(
                        OutcomeKind.TIMEOUT,
                        f"Task ran longer than its max_duration of {task.options.max_duration:g} s "
                        f"(Worker returned error {_describe(exc)})",
                    )
                ) from exc
            if exc.code() == grpc.StatusCode.UNAVAILABLE:
                raise _Failed(self._unreachable(exc)) from exc
            raise _Failed(TaskOutcome(OutcomeKind.CRASH, f"Worker returned error {_describe(exc)}")) from exc
        except (_Failed, asyncio.CancelledError):
            raise
        except Exception as exc:
            raise _Failed(TaskOutcome(OutcomeKind.CRASH, f"Worker returned error {_describe(exc)}")) from exc
        finally:
            if self._start_report is not None:
                self._start_report.cancel()  # harmless if already reported
            if self._service.current is run:
                self._service.unbind()
            self._worker.check_early(self._settings.worker_check_timeout)

    def _unreachable(self, exc: grpc.aio.AioRpcError) -> TaskOutcome:
        """The outcome of a Process call the worker did not answer (UNAVAILABLE); see `never_reached`.

        Either way the agent takes no task until the worker answers its health check again."""
        self.worker_unhealthy = True
        if never_reached(exc):
            log.warning("worker %s unreachable: task %s given back", self._worker.target, self.task_id)
            return TaskOutcome(OutcomeKind.RELEASED, f"The worker could not be reached ({_describe(exc)})")
        self.worker_died = True
        return TaskOutcome(OutcomeKind.CRASH, f"Worker returned error {_describe(exc)}")

    def _report_start(self) -> None:
        if self._started_at is None:  # still staging: reported once the worker is called, with its times
            self._start_due = True
            return
        self._start_due = False
        starting = asyncio.ensure_future(
            self._backend.start(self.acquired, self._fetched_at, self._started_at)
        )
        starting.add_done_callback(self._log_failed_start)

    def _log_failed_start(self, starting: asyncio.Future[None]) -> None:
        if not starting.cancelled() and starting.exception() is not None:
            log.warning("could not record the start of task %s: %s", self.task_id, starting.exception())

    async def _stage(self, run: TaskRun) -> None:
        """Copy the payload and the data dependencies into the data folder; for an in-process worker, which
        reads them from object storage (`direct_data`), only check them, and read the small ones ahead when
        the storage is behind a network (see `_prefetch`)."""
        wanted = list(dict.fromkeys(rid for rid in (run.task.payload_id, *run.task.data_dependencies) if rid))
        if not wanted:
            return
        results = {r.result_id: r for r in run.acquired.inputs}
        if not set(wanted) <= set(results):
            results = {r.result_id: r for r in await self._backend.get_results(wanted, run.acquired)}
        missing = [rid for rid in wanted if rid not in results]
        unusable = [rid for rid in wanted if rid in results and results[rid].status != ResultStatus.COMPLETED]
        if missing or unusable:
            states = [f"{rid} is missing" for rid in missing] + [
                f"{rid} is {results[rid].status.name}" for rid in unusable
            ]
            raise _Failed(TaskOutcome(OutcomeKind.ERROR, f"Input data unavailable: {', '.join(states)}"))

        run.input_keys = {rid: results[rid].opaque_id.decode(errors="replace") for rid in wanted}

        def export(result_id: str) -> Callable[[], Awaitable[int]]:
            key = run.input_keys[result_id]
            target = data_file(run.data_folder, result_id)
            if self._spares is not None:
                self._spares.place(str(target))  # written in place: no new file (see `SpareFiles`)
            return lambda: self._objects.export_to_file(key, target)

        jobs: list[Callable[[], Awaitable[object]]]
        if self._worker.direct_data:
            jobs = self._prefetch(run, [rid for rid in wanted if results[rid].size <= PREFETCH_SIZE])
        else:
            jobs = [export(rid) for rid in wanted]
        try:
            if jobs:
                await _bounded(self._settings.staging_parallelism, jobs)
        except ObjectNotFound as exc:
            raise _Failed(
                TaskOutcome(
                    OutcomeKind.ERROR, f"Input data unavailable: object {exc} is missing from storage"
                )
            ) from None
        except Exception as exc:
            raise _Failed(
                TaskOutcome(OutcomeKind.CRASH, f"Agent error: could not stage the inputs: {_describe(exc)}")
            ) from exc

    def _prefetch(self, run: TaskRun, small: list[str]) -> list[Callable[[], Awaitable[object]]]:
        """Reads of an in-process worker's small inputs ahead of its call, when its object storage is behind
        a network: done on the loop now, where the processor's thread would reach that loop twice per read
        (see `direct_data`). Local files are read by the processor's thread when it asks."""
        if self._objects.blocking_io:
            return []

        def read(result_id: str) -> Callable[[], Awaitable[object]]:
            async def job() -> None:
                run.prefetched[result_id] = await self._objects.get_bytes(run.input_keys[result_id])

            return job

        return [read(rid) for rid in small]

    async def _collect(self, run: TaskRun, reply: ProcessReply) -> TaskOutcome:
        """What the worker's reply means, with what it produced when it succeeded."""
        kind = reply.output.WhichOneof("type")
        if kind == "error":
            return TaskOutcome(OutcomeKind.ERROR, reply.output.error.details)
        if kind != "ok":
            return TaskOutcome(OutcomeKind.CRASH, "Worker returned an output that is neither ok nor an error")
        if not run.notified:  # an in-process worker's outputs are stored already (`direct_data`)
            return self._success(run, [])
        notified = list(run.notified)
        keys = new_object_keys(len(notified), run.acquired.object_prefix)

        def store(result_id: str, key: str) -> Callable[[], Awaitable[DataCompletion]]:
            async def job() -> DataCompletion:
                size = await self._objects.import_file(key, run.data_folder / result_id)
                return DataCompletion(result_id, size, key.encode())

            return job

        try:
            completions = await _bounded(
                self._settings.staging_parallelism,
                [store(rid, key) for rid, key in zip(notified, keys, strict=True)],
            )
        except Exception as exc:
            try:
                await self._objects.delete(keys)
            except Exception:
                log.warning("could not delete the objects of task %s", self.task_id, exc_info=True)
            return TaskOutcome(
                OutcomeKind.CRASH, f"Agent error: could not store the task's results: {_describe(exc)}"
            )
        return self._success(run, completions)

    @staticmethod
    def _success(run: TaskRun, completions: list[DataCompletion]) -> TaskOutcome:
        """SUCCESS, with what the run produced: `completions` of its notified files, and everything else."""
        return TaskOutcome(
            OutcomeKind.SUCCESS,
            created_results=list(run.created.values()),
            completions=[*completions, *run.stored.values()],
            subtasks=list(run.subtasks),
        )
