"""In-process Python workers: the agent imports a worker-SDK processor and calls it itself.

A separate worker costs every task two gRPC calls between processes (`Worker.Process`, and the worker's
calls back into the Agent API) and the worker SDK's server around them. With `Worker__Module` set to
`package.module:processor`, the agent imports that processor -- a function written for the official worker
SDK (`armonik.worker`), taking a `TaskHandler` and returning an `Output`, plain or decorated with
`armonik_worker()` -- and calls it in a thread of its own process. Its `TaskHandler` is the SDK's, whose data
goes between the processor and object storage with no files (`direct_data.DirectTaskHandler`), and whose
agent stub is `InProcessAgentStub`: its methods take the same request protobufs and return the same responses
as the gRPC stub, by direct calls into the agent's `AgentService` on the agent's event loop. What the user's
code sees is the same API, and what the agent records is the same outcome:

- `Output` with an error -> ERROR; `Output()` -> SUCCESS with what the task produced;
- an exception -> CRASH, retried while retries remain (the SDK's server turns it into a failed call too);
- past `max_duration` -> TIMEOUT; a cancellation -> CANCELLED.

A thread cannot be stopped from outside: a call that timed out or was cancelled runs on until it returns,
and, as a separate worker whose single thread is busy, the in-process worker then answers its health checks
"not serving" and the agent takes no task meanwhile. One still running after the agent's full round of
health checks (`InitWorker__WorkerCheckRetries` x `WorkerCheckDelay`) makes the agent stop, giving back the
tasks it holds, and exit with status `RESTART_EXIT_CODE`, for its supervisor to start it afresh.

Trade-off (see docs/inprocess-workers.md): no process isolation between the agent and the user's code (a
crash of the interpreter, a leak, or a module-level side effect is the agent's), and one GIL: one task at a
time per agent, several agents per partition for parallelism.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import threading
from collections.abc import Awaitable, Callable
from queue import SimpleQueue
from typing import Any

import grpc
from armonik.protogen.common.worker_common_pb2 import ProcessReply
from armonik.worker import TaskHandler

from armonik_core.adapters.objects.base import ObjectStorage
from armonik_core.config import ConfigurationError
from armonik_core.polling_agent.agent_service import AgentService, TaskRun
from armonik_core.polling_agent.direct_data import DirectTaskHandler, ObjectAccess, answered, rpc_error

log = logging.getLogger("armonik.polling_agent")

Processor = Callable[[TaskHandler], Any]

#: Exit status of an agent stopped because its in-process worker is stuck in an abandoned call.
RESTART_EXIT_CODE = 3


def load_processor(spec: str) -> Processor:
    """The processor named `package.module:attribute` (dots allowed in the attribute), unwrapped from the
    SDK's `armonik_worker()` decorator; a clear `ConfigurationError` when it cannot be used."""
    module_name, sep, attribute = spec.strip().partition(":")
    if not sep or not module_name or not attribute:
        raise ConfigurationError(f"Worker__Module={spec!r}: expected package.module:processor")
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as exc:
        raise ConfigurationError(f"Worker__Module={spec!r}: cannot import {module_name}: {exc!r}") from exc
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ConfigurationError(f"Worker__Module={spec!r}: {module_name} has no {attribute}") from None
    # `armonik_worker()` returns an ArmoniKWorkerWrapper, whose `processor` is the user's function.
    target = getattr(target, "processor", target)
    if not callable(target):
        raise ConfigurationError(f"Worker__Module={spec!r}: {attribute} is not callable")
    return target  # type: ignore[no-any-return]


class _DirectContext:
    """The servicer context of a direct call: what `AgentService` uses of it is `abort`."""

    async def abort(self, code: grpc.StatusCode, details: str = "") -> None:
        raise rpc_error(code, details)


_CONTEXT = _DirectContext()


def _expire(reply: asyncio.Future[ProcessReply]) -> None:
    """The call ran past its deadline: it fails as a gRPC call would (its thread runs on, abandoned)."""
    if not reply.done():
        reply.set_exception(rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"))


def _direct(name: str) -> Callable[..., Any]:
    """A stub method calling `AgentService.<name>` (the arguments of a gRPC call beyond the request, such as
    a timeout or metadata, mean nothing here)."""

    def call(self: InProcessAgentStub, request: Any, *args: Any, **kwargs: Any) -> Any:
        return self._call(getattr(self._service, name), request)

    call.__name__ = call.__qualname__ = name
    return call


class InProcessAgentStub:
    """The Agent API as the SDK's `AgentStub` offers it, served by direct calls into `AgentService`.

    Called from the processor's thread: each call runs the service's coroutine on the agent's event loop and
    waits for it, so that the service sees the calls of an in-process worker exactly as it sees gRPC ones
    (same protobufs, same checks, same errors: a refusal raises a `grpc.RpcError` with the status a remote
    worker would get). The calls whose work awaits nothing (NotifyResultData, CreateResultsMetaData) run
    that work in the processor's thread instead (`_now`)."""

    def __init__(self, service: AgentService, loop: asyncio.AbstractEventLoop) -> None:
        self._service = service
        self._loop = loop

    def _call(self, method: Callable[[Any, Any], Awaitable[Any]], request: Any) -> Any:
        async def direct() -> Any:
            return await method(request, _CONTEXT)

        return asyncio.run_coroutine_threadsafe(direct(), self._loop).result()

    # Calls whose work awaits nothing run in the caller's thread (`answered`): two thread switches less than
    # `_call` (to the event loop and back), which cost a no-op task more than the call itself.
    def CreateResultsMetaData(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        return answered("CreateResultsMetaData", self._service.create_results_metadata, request)

    def NotifyResultData(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        return answered("NotifyResultData", self._service.notify_result_data, request)

    CreateResults = _direct("CreateResults")
    SubmitTasks = _direct("SubmitTasks")
    GetResourceData = _direct("GetResourceData")
    GetCommonData = _direct("GetCommonData")
    GetDirectData = _direct("GetDirectData")


class InProcessWorker:
    """A worker-SDK processor run in a thread of the agent, behind the agent's worker interface
    (`WorkerClient`: health checks and `process`)."""

    def __init__(
        self, processor: Processor, service: AgentService, objects: ObjectStorage, name: str = "processor"
    ) -> None:
        self._processor = processor
        self._service = service
        self._objects = objects
        self._name = name
        self._jobs: SimpleQueue[Callable[[], None] | None] = SimpleQueue()
        #: True while the thread runs a call; a call abandoned by the agent keeps it True until it returns.
        #: A plain flag: nothing waits on it (the loop waits on `_free`), and an Event's lock costs more.
        self._busy = False
        #: Set by the thread when it is free again (the loop's side of `_busy`).
        self._free: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stub: InProcessAgentStub | None = None
        self._access: ObjectAccess | None = None
        # A daemon thread: a stuck processor must not keep the process from exiting once the agent stopped.
        self._thread = threading.Thread(target=self._serve, name="in-process-worker", daemon=True)
        self._thread.start()

    @property
    def target(self) -> str:
        return f"in-process {self._name}"

    @property
    def direct_data(self) -> bool:
        """Inputs and outputs go between the processor and object storage: none is staged as a file."""
        return True

    @property
    def stuck(self) -> bool:
        """True while a call the agent abandoned (timed out, cancelled) is still running."""
        return self._busy

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            job()

    # -- the worker interface ----------------------------------------------------------------------------
    async def check(self, timeout: float = 5.0) -> bool:
        return not self._busy

    def check_early(self, timeout: float = 5.0) -> None:
        """Nothing to start: the answer is known at once."""

    def check_needed(self) -> bool:
        return self._busy

    async def check_before_task(self, timeout: float = 5.0) -> bool:
        return not self._busy

    async def wait_healthy(
        self, retries: int, delay: float, timeout: float = 5.0, stop: asyncio.Event | None = None
    ) -> bool:
        """Wait for an abandoned call to return, up to the time `retries` checks would take."""
        if not self._busy:
            return True
        free = self._free
        if free is None:
            return False
        budget = delay * retries * (retries - 1) / 2 + timeout
        waits = [asyncio.ensure_future(free.wait())]
        if stop is not None:
            waits.append(asyncio.ensure_future(stop.wait()))
        try:
            await asyncio.wait(waits, timeout=budget, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()
        return not self._busy

    async def process(self, run: TaskRun, chunk_size: int, timeout: float | None) -> ProcessReply:
        """Call the processor with a `TaskHandler` for `run`; raises `grpc.aio.AioRpcError` as a gRPC call
        would: DEADLINE_EXCEEDED past `timeout`, INTERNAL when the processor raised."""
        loop = asyncio.get_running_loop()
        reply: asyncio.Future[ProcessReply] = loop.create_future()
        free = self._free = asyncio.Event()
        stub, objects = self._bridges(loop)

        def settle(value: ProcessReply | None, error: BaseException | None) -> None:
            free.set()
            if reply.done():  # abandoned: timed out or cancelled
                return
            if error is not None:
                reply.set_exception(error)
            else:
                reply.set_result(value)  # type: ignore[arg-type]

        def job() -> None:
            value: ProcessReply | None = None
            error: BaseException | None = None
            try:
                output = self._processor(DirectTaskHandler(run, stub, self._service, objects, chunk_size))
                value = ProcessReply(output=output.to_message())
            except Exception as exc:
                log.warning("task %s: the processor raised %r", run.task.task_id, exc, exc_info=True)
                # INTERNAL, as the SDK's server answers a processor that raised (its message says more).
                error = rpc_error(
                    grpc.StatusCode.INTERNAL, f"Exception calling application: {type(exc).__name__}: {exc}"
                )
            finally:
                self._busy = False
            try:
                loop.call_soon_threadsafe(settle, value, error)
            except RuntimeError:  # the loop is closed: the agent is gone
                pass

        self._busy = True
        self._jobs.put(job)
        if timeout is None:
            return await reply
        # A timer rather than `asyncio.wait_for`, which costs a waiter future and two callbacks more per call.
        deadline = loop.call_later(timeout, _expire, reply)
        try:
            return await reply
        finally:
            deadline.cancel()

    def _bridges(self, loop: asyncio.AbstractEventLoop) -> tuple[InProcessAgentStub, ObjectAccess]:
        """The Agent stub and object access of the processor's calls, made once per event loop."""
        if self._loop is not loop:
            self._loop = loop
            self._stub = InProcessAgentStub(self._service, loop)
            self._access = ObjectAccess(self._objects, loop)
        assert self._stub is not None and self._access is not None
        return self._stub, self._access

    async def close(self) -> None:
        """Let the thread end after its current call (not waited for: it may be stuck)."""
        self._jobs.put(None)
