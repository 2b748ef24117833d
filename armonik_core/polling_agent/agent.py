"""The polling agent: serve the Agent API to one worker, take tasks of a partition, run them one by one.

Main loop:

- start the Agent gRPC server (a stale unix socket file is removed first, as upstream does);
- wait until the worker answers its health check (`InitWorker__*`: the n-th retry comes n × delay after
  the previous one; a worker that never answers keeps the agent waiting, logging an error after each
  round of retries, instead of taking tasks it cannot run);
- acquire a task of the partition (waiting up to `acquire_wait` for one) and run it (`TaskRunner`), which
  checks the worker's health again; a task given back because the worker stopped answering sends the
  agent back to waiting for the worker;
- meanwhile a heartbeat task renews the current task's lease every `heartbeat_seconds`; when the backend
  answers that the task was cancelled, the run is cancelled (the worker's call too).

`stop()` (SIGTERM/SIGINT in `__main__`) stops acquiring; a running task gets `grace_delay` seconds to end
on its own, after which it is released (queued again, no retry counted); a second `stop()` releases it at
once. The server stops, the socket file
is removed, and `run()` returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import grpc
from armonik.protogen.worker.agent_service_pb2_grpc import add_AgentServicer_to_server

from armonik_core.adapters.objects.base import ObjectStorage
from armonik_core.domain.outcomes import OutcomeKind, TaskOutcome
from armonik_core.polling_agent.agent_service import AgentService
from armonik_core.polling_agent.backend import AcquiredTask, ComputeBackend
from armonik_core.polling_agent.settings import AgentSettings
from armonik_core.polling_agent.task_runner import TaskRunner
from armonik_core.polling_agent.worker_client import WorkerClient

log = logging.getLogger("armonik.polling_agent")

SERVER_OPTIONS = [
    ("grpc.max_receive_message_length", -1),
    ("grpc.max_send_message_length", -1),
    ("grpc.so_reuseport", 0),
]

#: Pause after a failed acquisition (backend unreachable) before trying again.
ACQUIRE_ERROR_PAUSE = 1.0


class PollingAgent:
    def __init__(self, settings: AgentSettings, backend: ComputeBackend, objects: ObjectStorage) -> None:
        self.settings = settings
        self._backend = backend
        self._objects = objects
        self.service = AgentService(backend, objects)
        self._stopping = asyncio.Event()
        #: Set once the Agent server listens (tests and supervisors wait on it).
        self.serving = asyncio.Event()
        self._runner: TaskRunner | None = None
        self._prefetched: AcquiredTask | None = None
        #: How long the last task took; the first one is assumed long (no prefetch before knowing).
        self._last_seconds = float("inf")
        self._server: grpc.aio.Server | None = None
        self._closing = False

    @property
    def current_task_id(self) -> str | None:
        runner = self._runner
        return runner.task_id if runner is not None else None

    def stop(self) -> None:
        """Stop acquiring and shut down (the current task gets the grace delay)."""
        if not self._stopping.is_set():
            log.info("stop requested")
            self._stopping.set()
        elif self._runner is not None:
            # Asked again (a second SIGTERM or Ctrl-C): do not wait for the grace delay.
            self._runner.release("The agent is shutting down")

    async def run(self) -> None:
        """Serve and process tasks until `stop()`."""
        await self._start_server()
        worker = WorkerClient(self.settings.worker_channel, self.settings.worker_check_validity)
        self._closing = False
        heartbeats = asyncio.create_task(self._heartbeats(), name="heartbeats")
        try:
            await self._loop(worker)
        finally:
            # The flag as well as the cancellation: before Python 3.12, `wait_for` may swallow a cancellation
            # that arrives as the call it waits for completes.
            self._closing = True
            heartbeats.cancel()
            await asyncio.gather(heartbeats, return_exceptions=True)
            await self._stop_server()
            await worker.close()
            log.info("polling agent stopped", extra={"agentId": self.settings.agent_id})

    # -- server ------------------------------------------------------------------------------------------
    async def _start_server(self) -> None:
        channel = self.settings.agent_channel
        path = channel.socket_path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.exists() or path.is_symlink():
                log.info("removing stale agent socket %s", path)
                path.unlink()
        server = grpc.aio.server(options=SERVER_OPTIONS)
        add_AgentServicer_to_server(self.service, server)
        server.add_insecure_port(channel.target)
        await server.start()
        self._server = server
        self.serving.set()
        log.info(
            "agent serving on %s",
            channel.target,
            extra={
                "agentId": self.settings.agent_id,
                "partitionId": self.settings.partition_id,
                "worker": self.settings.worker_channel.target,
            },
        )

    async def _stop_server(self) -> None:
        if self._server is not None:
            await self._server.stop(None)
            self._server = None
        path = self.settings.agent_channel.socket_path
        if path is not None:
            path.unlink(missing_ok=True)

    # -- main loop ---------------------------------------------------------------------------------------
    async def _wait_for_worker(self, worker: WorkerClient) -> bool:
        """Until the worker is healthy (True) or the agent is stopping (False)."""
        settings = self.settings
        rounds = 0
        while not self._stopping.is_set():
            healthy = await worker.wait_healthy(
                settings.worker_check_retries,
                settings.worker_check_delay,
                settings.worker_check_timeout,
                self._stopping,
            )
            if healthy:
                if rounds:
                    log.info("worker %s is healthy again", worker.target)
                return True
            if self._stopping.is_set():
                break
            rounds += 1
            log.error(
                "worker %s is not healthy after %d checks; still waiting",
                worker.target,
                settings.worker_check_retries * rounds,
            )
        return False

    def _acquire(self) -> asyncio.Task[AcquiredTask | None]:
        settings = self.settings
        return asyncio.create_task(
            self._backend.acquire(
                settings.partition_id, settings.agent_id, settings.hostname, settings.acquire_wait
            ),
            name="acquire",
        )

    async def _next_task(self, prefetch: asyncio.Task[AcquiredTask | None] | None) -> AcquiredTask | None:
        job = prefetch or self._acquire()
        try:
            return await job
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("could not acquire a task")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), ACQUIRE_ERROR_PAUSE)
            return None

    async def _loop(self, worker: WorkerClient) -> None:
        """Take tasks and run them one at a time. When tasks are short, the next one is acquired while the
        current one runs and outcomes are reported in the background, so that consecutive tasks are separated
        by no round trip to the backend."""
        settings = self.settings
        healthy = False
        prefetch: asyncio.Task[AcquiredTask | None] | None = None
        reports: set[asyncio.Future[None]] = set()
        try:
            while not self._stopping.is_set():
                if not healthy:
                    healthy = await self._wait_for_worker(worker)
                    if not healthy:
                        break
                acquired = await self._next_task(prefetch)
                prefetch = self._prefetched = None
                if acquired is None:
                    continue
                if self._stopping.is_set():
                    await self._give_back(acquired, "The agent is shutting down")
                    break
                runner = TaskRunner(
                    acquired,
                    settings=settings,
                    backend=self._backend,
                    objects=self._objects,
                    service=self.service,
                    worker=worker,
                )
                if self._last_seconds < settings.prefetch_below:
                    prefetch = self._acquire()
                    prefetch.add_done_callback(self._hold_prefetched)
                started = asyncio.get_running_loop().time()
                outcome = await self._run(runner)
                self._last_seconds = asyncio.get_running_loop().time() - started
                if runner.report is not None and not runner.report.done():
                    reports.add(runner.report)
                    runner.report.add_done_callback(reports.discard)
                # A worker whose call was abandoned (cancelled, timed out) may still be busy with it: wait until
                # it answers again rather than hand it a task it cannot take yet.
                if runner.worker_unhealthy or outcome.kind in (OutcomeKind.CANCELLED, OutcomeKind.TIMEOUT):
                    healthy = False
        finally:
            if prefetch is not None:
                await self._drop_prefetch(prefetch)
            if reports:
                await asyncio.gather(*reports, return_exceptions=True)

    def _hold_prefetched(self, job: asyncio.Task[AcquiredTask | None]) -> None:
        """A prefetched task waits behind the current one: its lease must be kept alive meanwhile."""
        if not job.cancelled() and job.exception() is None:
            self._prefetched = job.result()

    async def _drop_prefetch(self, job: asyncio.Task[AcquiredTask | None]) -> None:
        acquired = None
        try:
            acquired = await job
        except Exception:
            return
        finally:
            self._prefetched = None
        if acquired is not None:
            await self._give_back(acquired, "The agent is shutting down")

    async def _run(self, runner: TaskRunner) -> TaskOutcome:
        self._runner = runner
        job = asyncio.create_task(runner.run(wait_for_report=False), name=f"task {runner.task_id}")
        stopping = asyncio.create_task(self._stopping.wait())
        try:
            await asyncio.wait({job, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not job.done():
                log.info("waiting up to %g s for task %s to end", self.settings.grace_delay, runner.task_id)
                done, _ = await asyncio.wait({job}, timeout=self.settings.grace_delay)
                if not done:
                    runner.release("The agent is shutting down")
            return await job
        finally:
            stopping.cancel()
            self._runner = None

    async def _give_back(self, acquired: AcquiredTask, message: str) -> None:
        try:
            await self._backend.finish(acquired, TaskOutcome(OutcomeKind.RELEASED, message))
        except Exception:
            log.exception("could not give task %s back", acquired.task.task_id)

    async def _heartbeats(self) -> None:
        period = self.settings.heartbeat_seconds
        while not self._closing:
            await asyncio.sleep(period)
            runner, prefetched = self._runner, self._prefetched
            held = [a for a in (runner.acquired if runner else None, prefetched) if a is not None]
            if not held:
                continue
            try:
                cancelled = await asyncio.wait_for(self._backend.heartbeat(held), max(10.0, 5 * period))
            except Exception:
                log.warning("heartbeat failed for %s", ", ".join(a.task.task_id for a in held), exc_info=True)
                continue
            if runner is not None and runner.task_id in cancelled and self._runner is runner:
                log.info("task %s was cancelled", runner.task_id)
                runner.cancel()
