"""The agent's traffic with its backend: tasks taken ahead, outcomes reported in batches, one call at a time.

A no-op task takes a couple of milliseconds of the worker's time; a round trip to the backend costs about as
much CPU on each side. Paying it per task (take, then report) would double the cost of every task, so:

- the agent holds up to `batch` tasks of its partition when tasks are short (`next_task(ahead)`), and tops
  its queue up once it runs below half, in one call for several tasks;
- an outcome is sent at once when the agent has nothing else queued (a lone task's result is available
  without delay), and that call also waits for the agent's next task, which it would otherwise ask for in a
  call of its own right after; with other tasks queued, an outcome waits up to `report_delay` to share a
  call with the outcomes that follow;
- an acquisition that brought fewer tasks than it asked for found the partition's queue empty: the agent
  does not ask again while it runs them (the outcome of the last one asks), which spares a call that would
  find nothing and competes with the worker for the CPU;
- one call is in flight at most: what accumulates meanwhile leaves with the next one, so the batches grow
  by themselves when the backend is slow and shrink to one task when it is fast;
- a call carries the outcomes and the acquisition together (`ComputeBackend.exchange`).

Every task held here (queued, or finished but not yet reported) keeps its lease alive through `held()`, which
the agent's heartbeats renew. A failed call loses nothing: its tasks' leases run out and the backend gives them
to another agent.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Sequence

from armonik_core.domain.outcomes import OutcomeKind, TaskOutcome
from armonik_core.polling_agent.backend import AcquiredTask, AcquireRequest, ComputeBackend

log = logging.getLogger("armonik.polling_agent")
#: The wait after a failed exchange, doubled at each failure in a row up to the maximum.
FAILURE_BACKOFF = 0.1
MAX_FAILURE_BACKOFF = 5.0

#: Why tasks held ahead are given back when the agent's worker cannot take them.
_CANNOT_RUN = "The agent's worker cannot take a task now"


def tasks_to_hold(last_seconds: float, budget: float, batch: int) -> int:
    """How many tasks an agent holds beyond the one running: as many as fit in `budget` seconds of work at
    the pace of the last task, a batch at most; none after a task that took `budget` or longer. Tasks held
    by a busy agent wait while another agent may be idle: holding a bounded amount of work, rather than a
    whole batch of any short tasks, keeps the end of a session balanced across agents."""
    if budget <= 0 or last_seconds >= budget:
        return 0
    return min(batch - 1, int(budget / max(last_seconds, 1e-9)))


class TaskExchange:
    def __init__(
        self, backend: ComputeBackend, request: AcquireRequest, batch: int = 8, report_delay: float = 0.01
    ) -> None:
        self._backend = backend
        self._request = request
        self._batch = max(1, batch)
        self._report_delay = report_delay
        self._queue: collections.deque[AcquiredTask] = collections.deque()
        self._unreported: list[tuple[AcquiredTask, TaskOutcome]] = []
        #: The tasks whose outcomes the call in flight carries (none: it only waits for tasks).
        self._sending: list[AcquiredTask] = []
        self._flight: asyncio.Task[int] | None = None
        #: Exchanges failed in a row: the next one waits longer (a backend that refuses every call, such as
        #: a gateway refusing this agent's credential, is not called in a tight loop).
        self._failures = 0
        self._flush_timer: asyncio.TimerHandle | None = None
        #: How many tasks to hold beyond the one running (0 when tasks are long).
        self._ahead = 0
        #: The last acquisition brought fewer tasks than asked: the partition's queue was empty then.
        self._drained = False
        #: No more acquisitions (the agent is stopping): outcomes leave without asking for tasks.
        self._stopped = False
        #: No acquisitions until the agent asks for its next task (its worker cannot take one now).
        self._paused = False

    def held(self) -> list[AcquiredTask]:
        """Tasks whose leases this agent must keep alive besides the one running."""
        return [*self._queue, *(a for a, _ in self._unreported), *self._sending]

    async def next_task(self, ahead: int) -> AcquiredTask | None:
        """The next task to run, waiting up to the request's `wait_seconds` for one; None if none came.

        `ahead` > 0 lets the agent hold that many more tasks (short tasks); 0 holds none (long tasks)."""
        self._ahead = min(ahead, self._batch - 1)
        self._paused = False
        long_polled = False
        while True:
            if self._queue:
                task = self._queue.popleft()
                low = len(self._queue) * 2 < self._ahead or (self._ahead and not self._queue)
                if low and not self._drained:
                    self._send(wait=False)
                return task
            if long_polled:
                return None
            flight = self._in_flight()
            if flight is None:
                if self._stopped:
                    return None
                flight = self._send(wait=True)
                long_polled = True
            await self._outlast(flight)

    def report(self, acquired: AcquiredTask, outcome: TaskOutcome, take_next: bool = True) -> None:
        """Queue an outcome for the backend: sent now when the agent has nothing queued, else batched.

        `take_next=False`: the agent cannot run a task until its worker answers again (it is still busy with
        an abandoned call, or not serving): the outcome leaves at once with the tasks held ahead, given
        back, and no task is taken until the agent asks for its next one, so that other agents run them."""
        self._unreported.append((acquired, outcome))
        if not take_next:
            self.give_back_held()
        elif outcome.kind is OutcomeKind.RELEASED or self._stopped:
            self._send(wait=False)
        elif not self._queue:
            self._send(wait=True)  # the agent's next step is to wait for a task: this call does both
        elif len(self._unreported) >= self._batch:
            self._send(wait=False)
        else:
            self._arm_flush()

    def give_back_held(self) -> None:
        """The agent cannot run a task until its worker answers again: the tasks held ahead are given back at
        once, and none is taken until the agent asks for its next one."""
        self._paused = True
        self._give_back_queued(_CANNOT_RUN)
        if self._unreported:
            self._send(wait=False)

    def stop_acquiring(self) -> None:
        """Take no more tasks: the agent is stopping, and outcomes reported from now on do not wait for one.

        A call that only waits for tasks is cancelled rather than waited for (up to the acquisition's wait):
        the agent stops at once. The backend sees the call go; should it have handed tasks to this agent in
        that instant, their leases run out and they go to another agent, as for an agent that died."""
        self._stopped = True
        flight = self._in_flight()
        if flight is not None and not self._sending:  # it carries no outcome: it only waits for tasks
            flight.cancel()

    async def close(self, message: str) -> None:
        """Give back the tasks not run, report what is left and wait for the last call."""
        self.stop_acquiring()
        self._ahead = 0
        while True:
            # A call in flight may still bring tasks: they are given back too, not left to their leases.
            self._give_back_queued(message)
            flight = self._in_flight()
            if flight is None and not self._unreported:
                return
            flight = flight or self._send(wait=False)
            await self._outlast(flight)

    def _in_flight(self) -> asyncio.Task[int] | None:
        """The call in flight, if any (one cancelled before it ran never cleared itself)."""
        if self._flight is not None and self._flight.done():
            self._flight = None
        return self._flight

    @staticmethod
    async def _outlast(flight: asyncio.Task[int]) -> None:
        """Wait for `flight` to end, whether it completes or is cancelled by `stop_acquiring`; a cancellation
        of the waiting task itself goes through."""
        try:
            await asyncio.shield(flight)
        except asyncio.CancelledError:
            cancelling = getattr(asyncio.current_task(), "cancelling", None)  # Python 3.11+
            if not flight.cancelled() or (cancelling is not None and cancelling()):
                raise

    def _give_back_queued(self, message: str) -> None:
        while self._queue:
            self._unreported.append((self._queue.popleft(), TaskOutcome(OutcomeKind.RELEASED, message)))

    # -- calls ---------------------------------------------------------------------------------------------
    def _arm_flush(self) -> None:
        if self._flush_timer is None:
            self._flush_timer = asyncio.get_running_loop().call_later(self._report_delay, self._flush)

    def _flush(self) -> None:
        self._flush_timer = None
        self._send(wait=False)  # if a call is in flight, its end sends what is left

    def _send(self, wait: bool) -> asyncio.Task[int]:
        """Start a call with every unreported outcome and, when the queue is low, an acquisition. A call
        already in flight is returned instead: what accumulates leaves when it ends."""
        flight = self._in_flight()
        if flight is not None:
            return flight
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        finished, self._unreported = self._unreported, []
        self._sending = [acquired for acquired, _ in finished]
        wanted = max(self._ahead + 1 - len(self._queue), 0) if (wait or self._ahead) else 0
        if self._stopped or self._paused:
            wanted, wait = 0, False
        elif wait:
            wanted = max(wanted, 1)
        flight = asyncio.get_running_loop().create_task(self._call(finished, wanted, wait))
        self._flight = flight
        return flight

    async def _call(
        self, finished: Sequence[tuple[AcquiredTask, TaskOutcome]], wanted: int, wait: bool
    ) -> int:
        request = self._request.with_limits(wanted, self._request.wait_seconds if wait else 0.0)
        got: list[AcquiredTask] = []
        try:
            got = await self._backend.exchange(finished, request if wanted else None)
        except asyncio.CancelledError:
            raise
        except Exception:
            ids = ", ".join(a.task.task_id for a, _ in finished) or "none"
            log.exception("exchange with the backend failed (outcomes of: %s)", ids)
            self._failures += 1
            await asyncio.sleep(min(FAILURE_BACKOFF * 2 ** (self._failures - 1), MAX_FAILURE_BACKOFF))
        else:
            self._failures = 0
        finally:
            if self._flight is asyncio.current_task():
                self._sending = []
                self._flight = None
        if wanted:
            self._drained = len(got) < wanted
        self._queue.extend(got)
        if self._paused:  # asked for before the pause: given back as well
            self._give_back_queued(_CANNOT_RUN)
        if self._unreported:
            if not self._queue or len(self._unreported) >= self._batch:
                self._send(wait=False)
            else:
                self._arm_flush()
        return len(got)
