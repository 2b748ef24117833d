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
  answers that the task was cancelled, the run is cancelled (the worker's call too);
- a worker that dies with the task in hand does not cost that task a retry at once: the agent keeps the task
  (its lease renewed), waits for the worker to answer again and runs the task once more (`_run_again`).

`stop()` (SIGTERM/SIGINT in `__main__`) stops acquiring; a running task gets `grace_delay` seconds to end
on its own, after which it is released (queued again, no retry counted); a second `stop()` releases it at
once. The server stops, the socket file
is removed, and `run()` returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil

import grpc
from armonik.protogen.worker.agent_service_pb2_grpc import add_AgentServicer_to_server

from armonik_core.adapters.objects.base import ObjectStorage
from armonik_core.domain.outcomes import OutcomeKind, TaskOutcome
from armonik_core.polling_agent.agent_service import AgentService
from armonik_core.polling_agent.backend import AcquiredTask, AcquireRequest, ComputeBackend
from armonik_core.polling_agent.exchange import TaskExchange, tasks_to_hold
from armonik_core.polling_agent.inprocess import InProcessWorker, Processor, load_processor
from armonik_core.polling_agent.settings import AgentSettings
from armonik_core.polling_agent.spare_files import SpareFiles
from armonik_core.polling_agent.task_runner import TaskRunner
from armonik_core.polling_agent.worker_client import Worker, WorkerClient

log = logging.getLogger("armonik.polling_agent")

SERVER_OPTIONS = [
    ("grpc.max_receive_message_length", -1),
    ("grpc.max_send_message_length", -1),
    ("grpc.so_reuseport", 0),
]

#: Pause after a failed acquisition (backend unreachable) before trying again.
ACQUIRE_ERROR_PAUSE = 1.0


class PollingAgent:
    def __init__(
        self,
        settings: AgentSettings,
        backend: ComputeBackend,
        objects: ObjectStorage,
        processor: Processor | None = None,
    ) -> None:
        self.settings = settings
        self._backend = backend
        self._objects = objects
        self.service = AgentService(backend, objects)
        self._stopping = asyncio.Event()
        #: Set once the Agent server listens (tests and supervisors wait on it).
        self.serving = asyncio.Event()
        self._runner: TaskRunner | None = None
        self._exchange = TaskExchange(
            backend,
            AcquireRequest(
                settings.partition_id, settings.agent_id, settings.hostname, settings.acquire_wait
            ),
            batch=settings.message_batch_size,
            report_delay=settings.report_delay,
        )
        #: How long the last task took; the first one is assumed long (no prefetch before knowing).
        self._last_seconds = float("inf")
        self._server: grpc.aio.Server | None = None
        self._closing = False
        #: When the last heartbeat that renewed the leases was sent (event loop time).
        self._renewed_at = float("-inf")
        #: An in-process worker's processor (`Worker__Module`), or None for a separate worker process.
        self._processor = processor
        if processor is None and settings.worker_module:
            self._processor = load_processor(settings.worker_module)
        #: Set when the agent stopped because its in-process worker is stuck: the process should restart.
        self.restart_requested = False
        # Named after the process too: agents of several deployments may share a folder such as /cache/shared.
        self._spares = SpareFiles(settings.shared_cache_folder / f".{settings.agent_id}-{os.getpid()}-spare")

    @property
    def current_task_id(self) -> str | None:
        runner = self._runner
        return runner.task_id if runner is not None else None

    def stop(self) -> None:
        """Stop acquiring and shut down (the current task gets the grace delay)."""
        if not self._stopping.is_set():
            log.info("stop requested")
            self._stopping.set()
            self._exchange.stop_acquiring()
            if self._runner is not None:
                self._arm_grace_delay(self._runner)
        elif self._runner is not None:
            # Asked again (a second SIGTERM or Ctrl-C): do not wait for the grace delay.
            self._runner.release("The agent is shutting down")

    async def run(self) -> None:
        """Serve and process tasks until `stop()`."""
        worker: Worker
        if self._processor is not None:
            # Nothing to serve: the worker calls the Agent API directly (see `inprocess`).
            worker = InProcessWorker(
                self._processor, self.service, self._objects, self.settings.worker_module or "processor"
            )
            self.serving.set()
        else:
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
            shutil.rmtree(self._spares.folder, ignore_errors=True)
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
    async def _wait_for_worker(self, worker: Worker) -> bool:
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
            if isinstance(worker, InProcessWorker):
                log.error(
                    "the in-process worker is still running a task it was told to abandon after %d checks: "
                    "stopping the agent, for its supervisor to restart it",
                    settings.worker_check_retries,
                )
                self.restart_requested = True
                self.stop()
                break
            log.error(
                "worker %s is not healthy after %d checks; still waiting",
                worker.target,
                settings.worker_check_retries * rounds,
            )
        return False

    async def _next_task(self) -> AcquiredTask | None:
        settings = self.settings
        ahead = tasks_to_hold(self._last_seconds, settings.prefetch_below, settings.message_batch_size)
        try:
            return await self._exchange.next_task(ahead)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("could not acquire a task")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), ACQUIRE_ERROR_PAUSE)
            return None

    async def _loop(self, worker: Worker) -> None:
        """Take tasks and run them one at a time.

        When tasks are short, tasks are taken several at a time ahead of the running one and outcomes are
        reported in batches, in the background (`TaskExchange`): consecutive tasks are separated by no round
        trip to the backend, and a round trip serves several tasks."""
        healthy = False
        try:
            while not self._stopping.is_set():
                if not healthy:
                    healthy = await self._wait_for_worker(worker)
                    if not healthy:
                        break
                acquired = await self._next_task()
                if acquired is None:
                    continue
                if self._stopping.is_set():
                    self._exchange.report(
                        acquired, TaskOutcome(OutcomeKind.RELEASED, "The agent is shutting down")
                    )
                    break
                runner = self._runner_for(acquired, worker)
                started = asyncio.get_running_loop().time()
                outcome = await self._run(runner)
                if runner.worker_died:  # the error path's one branch: the task is run once more
                    runner, again = await self._run_again(worker, runner, outcome, started)
                    if again is None:  # its lease was lost meanwhile: the task is no longer this agent's
                        healthy = False
                        continue
                    outcome = again
                self._last_seconds = asyncio.get_running_loop().time() - started
                # A worker whose call was abandoned (cancelled, timed out) may still be busy with it: wait until
                # it answers again rather than hand it a task it cannot take yet, and take none meanwhile
                # (another agent runs it).
                if runner.worker_unhealthy or outcome.kind in (OutcomeKind.CANCELLED, OutcomeKind.TIMEOUT):
                    healthy = False
                self._exchange.report(acquired, outcome, take_next=healthy)
        finally:
            await self._exchange.close("The agent is shutting down")

    def _runner_for(self, acquired: AcquiredTask, worker: Worker) -> TaskRunner:
        return TaskRunner(
            acquired,
            settings=self.settings,
            backend=self._backend,
            objects=self._objects,
            service=self.service,
            worker=worker,
            spares=self._spares,
        )

    async def _run(self, runner: TaskRunner) -> TaskOutcome:
        """Run the task in this coroutine (no task or watcher per run); `stop()` arms the grace delay."""
        self._runner = runner
        if self._stopping.is_set():
            self._arm_grace_delay(runner)
        try:
            return await runner.run(report=False)
        finally:
            self._runner = None

    async def _run_again(
        self, worker: Worker, dead: TaskRunner, crash: TaskOutcome, taken_at: float
    ) -> tuple[TaskRunner, TaskOutcome | None]:
        """The worker died with the task in hand: run the task once more on the restarted worker.

        A worker killed from outside (out of memory for another reason, a node drained, an operator) costs
        the task nothing; a task that kills every worker it runs on dies twice, and that second death is the
        crash reported (a retry used, as upstream). The second run is a fresh run: a new communication token
        and data folder, inputs staged again, a full `max_duration`; nothing of the dead run is kept (its
        outcome carried its created results, subtasks and files, and is dropped; objects it stored were
        deleted). Returns the runner whose worker state counts and the outcome to report: the crash when the
        worker does not answer within one round of health checks, RELEASED when the agent stops meanwhile,
        None when the task's lease was presumably lost (not renewed for `lease_seconds`): the backend may
        have given the task away, and it is dropped without a report."""
        settings = self.settings
        self._exchange.give_back_held()  # the tasks taken ahead go to other agents meanwhile
        again = self._runner_for(dead.acquired, worker)
        # Held as the current run: heartbeats renew its lease, a cancellation or the agent's stop reaches it.
        self._runner = again
        if self._stopping.is_set():
            self._arm_grace_delay(again)
        try:
            log.warning("worker %s died with task %s: waiting to run it again", worker.target, again.task_id)
            back = await worker.wait_healthy(
                settings.worker_check_retries,
                settings.worker_check_delay,
                settings.worker_check_timeout,
                self._stopping,
            )
            loop = asyncio.get_running_loop()
            if loop.time() - max(self._renewed_at, taken_at) > self._backend.lease_seconds:
                log.warning("task %s dropped: its lease was not renewed in time", again.task_id)
                return dead, None
            if not back:
                if self._stopping.is_set():
                    return dead, TaskOutcome(OutcomeKind.RELEASED, "The agent is shutting down")
                return dead, crash
            log.info("worker %s is back: running task %s again", worker.target, again.task_id)
            return again, await again.run(report=False)
        finally:
            self._runner = None

    def _arm_grace_delay(self, runner: TaskRunner) -> None:
        log.info("waiting up to %g s for task %s to end", self.settings.grace_delay, runner.task_id)

        def expire() -> None:
            if self._runner is runner:
                runner.release("The agent is shutting down")

        asyncio.get_running_loop().call_later(self.settings.grace_delay, expire)

    async def _heartbeats(self) -> None:
        period = self.settings.heartbeat_seconds
        while not self._closing:
            await asyncio.sleep(period)
            runner = self._runner
            held = ([runner.acquired] if runner else []) + self._exchange.held()
            if not held:
                continue
            sent = asyncio.get_running_loop().time()
            try:
                cancelled = await asyncio.wait_for(self._backend.heartbeat(held), max(10.0, 5 * period))
            except Exception:
                log.warning("heartbeat failed for %s", ", ".join(a.task.task_id for a in held), exc_info=True)
                continue
            self._renewed_at = sent
            if runner is not None and runner.task_id in cancelled and self._runner is runner:
                log.info("task %s was cancelled", runner.task_id)
                runner.cancel()
