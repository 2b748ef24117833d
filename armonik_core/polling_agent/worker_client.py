"""The agent's side of the Worker API: health checks and the Process call."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol

import grpc
from armonik.protogen.common.objects_pb2 import Configuration, Empty
from armonik.protogen.common.worker_common_pb2 import HealthCheckReply, ProcessReply, ProcessRequest
from armonik.protogen.worker.worker_service_pb2_grpc import WorkerStub

from armonik_core.control_plane.convert import options_to_proto
from armonik_core.polling_agent.agent_service import TaskRun
from armonik_core.polling_agent.settings import ChannelSettings

log = logging.getLogger("armonik.polling_agent")

#: The worker is local: reconnect quickly once it is back, instead of gRPC's default backoff (up to 2 min).
CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.max_receive_message_length", -1),
    ("grpc.max_send_message_length", -1),
    ("grpc.default_authority", "localhost"),
]


class Worker(Protocol):
    """What the agent needs of a worker: a separate process (`WorkerClient`) or an in-process processor
    (`inprocess.InProcessWorker`)."""

    @property
    def target(self) -> str: ...

    @property
    def direct_data(self) -> bool:
        """True when the worker reads its inputs and stores its outputs itself (no files staged)."""
        ...

    async def check(self, timeout: float = 5.0) -> bool: ...

    def check_early(self, timeout: float = 5.0) -> None: ...

    def check_needed(self) -> bool: ...

    async def check_before_task(self, timeout: float = 5.0) -> bool: ...

    async def wait_healthy(
        self, retries: int, delay: float, timeout: float = 5.0, stop: asyncio.Event | None = None
    ) -> bool: ...

    async def process(self, run: TaskRun, chunk_size: int, timeout: float | None) -> ProcessReply:
        """Process the task of `run` (bound to the Agent API), `chunk_size` being the
        `Configuration.data_chunk_max_size` its worker gets; raises `grpc.aio.AioRpcError` as Worker.Process
        does (DEADLINE_EXCEEDED past `timeout`, ...)."""
        ...

    async def close(self) -> None: ...


def process_request(run: TaskRun, chunk_size: int) -> ProcessRequest:
    """The Worker.Process request of `run`, as upstream's agent fills it."""
    task = run.task
    return ProcessRequest(
        communication_token=run.token,
        session_id=task.session_id,
        task_id=task.task_id,
        task_options=options_to_proto(task.options),
        expected_output_keys=task.expected_output_ids,
        payload_id=task.payload_id,
        data_dependencies=task.data_dependencies,
        data_folder=run.folder_name,
        configuration=Configuration(data_chunk_max_size=chunk_size),
    )


class WorkerClient:
    """Health checks and the Process call.

    Upstream checks the worker's health before each task. The check is a round trip to the worker, which
    on a busy machine costs as much as a short task, so it is taken off the critical path: as soon as a
    Process call is over, the check for the next task starts (`check_early`), while the agent records
    the outcome and acquires the next task; `check_before_task` then uses its answer if the next task
    came within `early_check_validity` seconds (an agent that was idle longer checks afresh).

    A worker that has just answered a Process call has shown it is serving: for `early_check_validity`
    seconds after a reply, no check is made at all, so a stream of short tasks costs no health-check round
    trip per task (the reply of a cancelled or timed-out call proves nothing and does not count).
    """

    def __init__(self, channel: ChannelSettings, early_check_validity: float = 1.0) -> None:
        self._validity = early_check_validity
        self._target = channel.target
        self._channel = grpc.aio.insecure_channel(self._target, options=CHANNEL_OPTIONS)
        self._stub = WorkerStub(self._channel)
        self._early: asyncio.Future[bool] | None = None
        self._early_started = 0.0
        self._answered_at = float("-inf")

    @property
    def target(self) -> str:
        return self._target

    @property
    def direct_data(self) -> bool:
        """A separate process reads and writes files in the task's data folder."""
        return False

    async def check(self, timeout: float = 5.0) -> bool:
        """One health check: SERVING is healthy; so is UNIMPLEMENTED (a worker without health checks)."""
        try:
            reply: HealthCheckReply = await self._stub.HealthCheck(Empty(), timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                return True
            log.debug("worker health check failed: %s %s", exc.code().name, exc.details())
            return False
        if reply.status != HealthCheckReply.SERVING:
            log.debug("worker health check: %s", HealthCheckReply.ServingStatus.Name(reply.status))
        return bool(reply.status == HealthCheckReply.SERVING)

    def _recently_answered(self) -> bool:
        return time.monotonic() - self._answered_at <= self._validity

    def check_early(self, timeout: float = 5.0) -> None:
        """Start the next task's health check now (unless early checks are disabled)."""
        if self._early is None and self._validity > 0 and not self._recently_answered():
            self._early = asyncio.ensure_future(self.check(timeout))
            self._early_started = time.monotonic()

    def check_needed(self) -> bool:
        """False when the worker answered a call within the validity and no early check is under way: then
        `check_before_task` would answer True at once, and the caller need not run it at all."""
        return self._early is not None or not self._recently_answered()

    async def check_before_task(self, timeout: float = 5.0) -> bool:
        """The health check for a task about to run: the early one if recent enough, else a new one."""
        early, self._early = self._early, None
        if early is None and self._recently_answered():
            return True
        if early is not None:
            if time.monotonic() - self._early_started <= self._validity:
                return await early
            early.cancel()
        return await self.check(timeout)

    async def wait_healthy(
        self, retries: int, delay: float, timeout: float = 5.0, stop: asyncio.Event | None = None
    ) -> bool:
        """Check up to `retries` times, the n-th retry `n × delay` after the previous check, as upstream.

        Returns False when every check failed, or at once when `stop` is set meanwhile."""
        for attempt in range(1, retries + 1):
            if stop is not None and stop.is_set():
                return False
            if await self.check(timeout):
                # An early check under way was started before this answer, maybe while the worker was dying
                # (the end of the call it died in starts one): it would speak for the worker that was.
                self._drop_early()
                return True
            if attempt == retries:
                break
            pause = delay * attempt
            if stop is None:
                await asyncio.sleep(pause)
            else:
                try:
                    await asyncio.wait_for(stop.wait(), pause)
                    return False
                except asyncio.TimeoutError:
                    pass
        return False

    async def process(self, run: TaskRun, chunk_size: int, timeout: float | None) -> ProcessReply:
        """Worker.Process; raises `grpc.aio.AioRpcError` (DEADLINE_EXCEEDED past `timeout`, ...)."""
        reply: ProcessReply = await self._stub.Process(process_request(run, chunk_size), timeout=timeout)
        self._answered_at = time.monotonic()
        return reply

    def _drop_early(self) -> None:
        if self._early is not None:
            self._early.cancel()
            self._early = None

    async def close(self) -> None:
        self._drop_early()
        await self._channel.close()
