"""How the polling agent's exchange with its backend spends round trips (`TaskExchange`).

The backend here is an in-memory `ComputeBackend` that records every `exchange` call: what it reported,
how many tasks it asked for and whether it was allowed to wait for them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

from armonik_core.domain.options import TaskOptions
from armonik_core.domain.outcomes import OutcomeKind, TaskOutcome
from armonik_core.domain.records import Result, Task
from armonik_core.domain.statuses import TaskStatus
from armonik_core.polling_agent.backend import AcquiredTask, AcquireRequest, ComputeBackend
from armonik_core.polling_agent.exchange import TaskExchange, tasks_to_hold

REQUEST = AcquireRequest("default", "agent-1", "host", wait_seconds=0.5)


def acquired(number: int) -> AcquiredTask:
    task = Task(
        task_id=f"t{number}",
        session_id="s",
        status=TaskStatus.DISPATCHED,
        options=TaskOptions(max_duration=10, max_retries=1, priority=1, partition_id="default"),
        payload_id=f"payload-{number}",
        created_at=time.time(),
    )
    return AcquiredTask(task, task.options, ["default"], lease=f"lease-{number}")


@dataclass
class Call:
    reported: list[str]
    wanted: int
    wait: float


class RecordingBackend(ComputeBackend):
    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.queued: list[AcquiredTask] = []
        self.arrived = asyncio.Event()

    def add(self, *tasks: AcquiredTask) -> None:
        self.queued.extend(tasks)
        self.arrived.set()

    async def exchange(
        self, finished: Sequence[tuple[AcquiredTask, TaskOutcome]], request: AcquireRequest | None
    ) -> list[AcquiredTask]:
        call = Call(
            [a.task.task_id for a, _ in finished],
            request.max_tasks if request else 0,
            request.wait_seconds if request else 0.0,
        )
        self.calls.append(call)
        if request is None:
            return []
        if not self.queued and request.wait_seconds:
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), request.wait_seconds)
            except asyncio.TimeoutError:
                return []
        got, self.queued = self.queued[: request.max_tasks], self.queued[request.max_tasks :]
        return got

    async def acquire(
        self, partition_id: str, agent_id: str, hostname: str, wait_seconds: float
    ) -> AcquiredTask | None:
        raise AssertionError("the exchange goes through exchange()")

    async def start(
        self, acquired: AcquiredTask, fetched_at: float | None = None, started_at: float | None = None
    ) -> None:
        raise AssertionError("not used")

    async def heartbeat(self, acquired: Sequence[AcquiredTask]) -> set[str]:
        return set()

    async def finish(self, acquired: AcquiredTask, outcome: TaskOutcome) -> None:
        raise AssertionError("the exchange goes through exchange()")

    async def get_results(self, result_ids: Sequence[str], acquired: AcquiredTask) -> list[Result]:
        return []


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


SUCCESS = TaskOutcome(OutcomeKind.SUCCESS)


async def one_task_taken() -> tuple[RecordingBackend, TaskExchange, AcquiredTask]:
    """An exchange (batches of 8) whose agent took the one task queued, t1."""
    backend = RecordingBackend()
    exchange = TaskExchange(backend, REQUEST, batch=8)
    backend.add(acquired(1))
    first = await exchange.next_task(ahead=7)
    assert first is not None and first.task.task_id == "t1"
    return backend, exchange, first


async def test_a_lone_outcome_and_the_wait_for_the_next_task_share_one_call() -> None:
    backend, exchange, first = await one_task_taken()
    exchange.report(first, SUCCESS)
    waiting = asyncio.ensure_future(exchange.next_task(ahead=7))
    await settle()
    backend.add(acquired(2))
    second = await asyncio.wait_for(waiting, 2)
    assert second is not None and second.task.task_id == "t2"
    # The outcome of t1 went out with a waiting acquisition: no separate call to report it, then wait.
    assert backend.calls[1:] == [Call(["t1"], 8, REQUEST.wait_seconds)]
    await exchange.close("done")


async def test_a_reported_task_is_held_until_its_call_returns() -> None:
    backend, exchange, first = await one_task_taken()
    exchange.report(first, SUCCESS)
    await settle()
    assert [a.task.task_id for a in exchange.held()] == ["t1"]
    backend.add(acquired(2))
    second = await asyncio.wait_for(exchange.next_task(ahead=7), 2)
    assert second is not None
    assert exchange.held() == []
    await exchange.close("done")


async def test_no_top_up_after_an_acquisition_that_drained_the_queue() -> None:
    backend, exchange, _ = await one_task_taken()  # asked for up to 8, got 1: nothing else is queued
    await settle()
    assert len(backend.calls) == 1, "a top-up right after a short acquisition would find nothing"
    await exchange.close("done")


async def test_a_full_acquisition_is_topped_up_once_the_agent_runs_low() -> None:
    backend = RecordingBackend()
    exchange = TaskExchange(backend, REQUEST, batch=4)
    backend.add(*(acquired(n) for n in range(10)))
    taken = [await exchange.next_task(ahead=3)]  # 4 asked, 4 got
    await settle()
    assert len(backend.calls) == 1
    taken += [await exchange.next_task(ahead=3), await exchange.next_task(ahead=3)]  # one left: below half
    await settle()
    assert len(backend.calls) == 2
    assert backend.calls[1] == Call([], 3, 0.0)
    assert all(t is not None for t in taken)
    await exchange.close("done")


async def test_queued_outcomes_share_a_call_and_leave_after_the_report_delay() -> None:
    backend = RecordingBackend()
    exchange = TaskExchange(backend, REQUEST, batch=8, report_delay=0.05)
    backend.add(*(acquired(n) for n in range(8)))
    first = await exchange.next_task(ahead=7)
    second = await exchange.next_task(ahead=7)
    assert first is not None and second is not None
    exchange.report(first, SUCCESS)
    exchange.report(second, SUCCESS)
    await settle()
    assert len(backend.calls) == 1, "outcomes wait while other tasks are queued"
    await asyncio.sleep(0.1)
    assert backend.calls[1].reported == ["t0", "t1"]
    assert backend.calls[1].wait == 0.0, "an agent with tasks queued does not wait for more"
    await exchange.close("done")


async def test_closing_gives_back_tasks_that_arrive_during_the_close() -> None:
    backend, exchange, first = await one_task_taken()
    exchange.report(first, SUCCESS)  # its call waits for the next task
    await settle()
    closing = asyncio.ensure_future(exchange.close("stopping"))
    await settle()
    backend.add(acquired(2))  # the waiting call brings t2 back while the exchange closes
    await asyncio.wait_for(closing, 2)
    released = [c for c in backend.calls if "t2" in c.reported]
    assert released, "a task that came back during the close must be given back, not left to its lease"
    assert released[-1].wanted == 0
    assert exchange.held() == []


async def test_a_released_outcome_leaves_at_once_without_waiting() -> None:
    backend, exchange, first = await one_task_taken()
    exchange.report(first, TaskOutcome(OutcomeKind.RELEASED, "stopping"))
    await settle()
    assert backend.calls[-1].reported == ["t1"]
    assert backend.calls[-1].wait == 0.0
    await exchange.close("done")


async def test_an_agent_that_stops_reports_without_asking_for_another_task() -> None:
    backend, exchange, first = await one_task_taken()
    exchange.stop_acquiring()
    backend.add(acquired(2))
    exchange.report(first, SUCCESS)
    await exchange.close("stopping")
    assert backend.calls[-1] == Call(["t1"], 0, 0.0)
    assert backend.queued and backend.queued[0].task.task_id == "t2", "t2 stays in the queue for others"


def test_an_agent_holds_as_much_work_as_its_budget_and_never_more_than_a_batch() -> None:
    assert tasks_to_hold(0.002, budget=0.5, batch=8) == 7  # tiny tasks: a batch, less the running one
    assert tasks_to_hold(0.1, budget=0.5, batch=8) == 5  # half a second of work at 0.1 s a task
    assert tasks_to_hold(0.3, budget=0.5, batch=8) == 1
    assert tasks_to_hold(0.5, budget=0.5, batch=8) == 0  # as long as the budget: holds nothing
    assert tasks_to_hold(float("inf"), budget=0.5, batch=8) == 0  # the first task: its length is unknown
    assert tasks_to_hold(0.0, budget=0.5, batch=1) == 0  # batches of one: never ahead
    assert tasks_to_hold(0.001, budget=0.0, batch=8) == 0  # prefetching disabled


async def test_an_agent_that_cannot_run_tasks_gives_back_those_held_and_takes_none_until_it_asks() -> None:
    backend = RecordingBackend()
    exchange = TaskExchange(backend, REQUEST, batch=4)
    backend.add(*(acquired(n) for n in range(4)))
    first = await exchange.next_task(ahead=3)  # t0 runs, t1..t3 held ahead
    assert first is not None
    backend.add(acquired(4))
    exchange.report(first, TaskOutcome(OutcomeKind.CANCELLED, "cancelled"), take_next=False)
    await settle()
    assert backend.calls[-1] == Call(["t0", "t1", "t2", "t3"], 0, 0.0)
    assert exchange.held() == []
    assert [t.task.task_id for t in backend.queued] == ["t4"], "no task taken while the worker is busy"

    # The worker answers again: the agent asks for its next task, and takes one.
    following = await asyncio.wait_for(exchange.next_task(ahead=3), 2)
    assert following is not None and following.task.task_id == "t4"
    await exchange.close("done")


class RefusingBackend(RecordingBackend):
    """A backend that refuses every exchange, as a gateway refuses an agent with a wrong credential."""

    async def exchange(
        self, finished: Sequence[tuple[AcquiredTask, TaskOutcome]], request: AcquireRequest | None
    ) -> list[AcquiredTask]:
        self.calls.append(
            Call([a.task.task_id for a, _ in finished], request.max_tasks if request else 0, 0.0)
        )
        raise ConnectionError("refused")


async def test_exchanges_failing_in_a_row_wait_longer_and_longer() -> None:
    backend = RefusingBackend()
    exchange = TaskExchange(backend, REQUEST, batch=8)
    started = time.monotonic()
    while time.monotonic() - started < 1.6:
        assert await exchange.next_task(ahead=0) is None
    # 0.1 + 0.2 + 0.4 + 0.8 s of waits: five calls in 1.6 s, where a tight loop would make thousands
    assert 3 <= len(backend.calls) <= 6, len(backend.calls)


async def test_a_stop_cancels_the_wait_for_tasks_and_the_close_returns_at_once() -> None:
    backend = RecordingBackend()
    exchange = TaskExchange(backend, AcquireRequest("default", "agent-1", "host", wait_seconds=30), batch=8)
    waiting = asyncio.ensure_future(exchange.next_task(ahead=7))
    await settle()
    assert backend.calls == [Call([], 8, 30)], "the idle agent waits for tasks"
    started = time.monotonic()
    exchange.stop_acquiring()
    assert await asyncio.wait_for(waiting, 1) is None
    await asyncio.wait_for(exchange.close("stopping"), 1)
    assert time.monotonic() - started < 0.5, "a stop does not wait out the acquisition's 30 s"
    assert len(backend.calls) == 1, "nothing else is sent: there was nothing to report"
    backend.add(acquired(1))
    assert backend.queued, "the task that arrives after the stop stays in the queue for other agents"


async def test_a_stop_waits_for_a_call_that_carries_outcomes() -> None:
    backend, exchange, first = await one_task_taken()
    exchange.report(first, SUCCESS)  # the outcome travels with the wait for the next task
    await settle()
    exchange.stop_acquiring()
    await settle()
    closing = asyncio.ensure_future(exchange.close("stopping"))
    backend.add(acquired(2))  # the call returns, with t2, which the close gives back
    await asyncio.wait_for(closing, 2)
    assert backend.calls[1].reported == ["t1"], "the outcome was not dropped by the stop"
    assert any("t2" in c.reported for c in backend.calls[2:])
