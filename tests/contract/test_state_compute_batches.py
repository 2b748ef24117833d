"""Acquisitions and outcomes by the batch (`acquire_tasks`, `finish_tasks`), on every state backend: a batch
gives each request what the single call would have given, in the same order, and leaves the same records,
events and queued messages; a request that fails holds back no other.

Each case is built twice in one store, in two sessions of its own: once applied call by call, once as a batch.
What each left is then written with the ids replaced by the names of their roles, and the two compared."""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from armonik_core.adapters.state.base import StateStore, TaskAcquisition
from armonik_core.domain.changes import Change
from armonik_core.domain.errors import FailedPrecondition
from armonik_core.domain.options import TaskOptions
from armonik_core.domain.outcomes import DataCompletion, OutcomeKind, TaskOutcome
from armonik_core.domain.records import Partition, Result, Session, Task
from armonik_core.domain.sessions import SessionAction
from armonik_core.domain.statuses import ResultStatus, SessionStatus, TaskStatus
from tests.contract.conftest import StateBackend

_made = itertools.count()


def _new_id() -> str:
    """Ids in the order they are made (those of `armonik_core.ids` made in the same millisecond are not):
    the two builds of a case then list their records, and the stores their changes, in the same order."""
    return f"{next(_made):08d}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def store(state_backend: StateBackend) -> StateStore:
    state = state_backend.open()
    await state.upsert_partitions([Partition("default")])
    return state


@dataclass
class Case:
    """One build of a case: its sessions, and every id it made by the name of its role."""

    store: StateStore
    sessions: list[str] = field(default_factory=list)
    ids: dict[str, str] = field(default_factory=dict)
    heard: list[Change] = field(default_factory=list)

    def __getitem__(self, role: str) -> str:
        return self.ids[role]

    async def session(self, role: str) -> str:
        sid = self.ids[role] = _new_id()
        options = TaskOptions(partition_id="default", max_retries=1)
        await self.store.create_session(
            Session(sid, SessionStatus.RUNNING, ["default"], options, time.time())
        )
        self.sessions.append(sid)
        return sid

    async def results(self, sid: str, *roles: str, completed: bool = False) -> None:
        status = ResultStatus.COMPLETED if completed else ResultStatus.CREATED
        made = [Result(_new_id(), sid, role, status, time.time()) for role in roles]
        await self.store.create_results(sid, made)
        self.ids.update((role, r.result_id) for role, r in zip(roles, made, strict=True))

    async def submit(
        self, sid: str, role: str, deps: tuple[str, ...] = (), retries: int = 1, payload: str = "payload"
    ) -> Task:
        """A task `role` reading `payload` and `deps`, producing `role.out` (made here)."""
        await self.results(sid, f"{role}.out")
        task_id = self.ids[role] = _new_id()
        made = Task(
            task_id,
            sid,
            TaskStatus.CREATING,
            TaskOptions(partition_id="default", max_retries=retries),
            self.ids[payload],
            time.time(),
            [self.ids[f"{role}.out"]],
            [self.ids[d] for d in deps],
            [sid],
            initial_task_id=task_id,
        )
        await self.store.submit_tasks(sid, [made])
        return made

    async def running(self, sid: str, role: str, agent: str = "agent-1", payload: str = "payload") -> None:
        await self.submit(sid, role, payload=payload)
        assert (await self.store.acquire_task(self.ids[role], agent, "host-1")).task is not None
        assert await self.store.start_task(self.ids[role], agent)

    def role(self, made: str) -> str:
        return next(role for role, known in self.ids.items() if known == made)

    def listen(self) -> None:
        self.store.add_listener(self.heard.extend)

    def named(self, value: Any) -> str:
        """`value` written out with every id of the case replaced by its role."""
        text = repr(value)
        for role, made in sorted(self.ids.items(), key=lambda item: -len(item[1])):
            text = text.replace(made, role)
        return text

    async def left(self) -> str:
        """What the case left: its tasks (retries included), results, events and queued tasks, by role."""
        self.store.remove_listener(self.heard.extend)
        task_ids = [*self.ids.values(), *(f"{made}###1" for made in self.ids.values())]
        tasks = sorted(
            (t.task_id, t.status.name, t.owner_pod_id, t.pod_hostname, t.error, t.retry_of_ids)
            for t in await self.store.get_tasks(task_ids)
        )
        results = sorted(
            (r.result_id, r.status.name, r.owner_task_id, r.size, r.opaque_id)
            for r in await self.store.get_results(list(self.ids.values()))
        )
        events = [
            (c.kind.name, c.entity_id, c.status, c.previous_owner, c.current_owner)
            for c in self.heard
            if c.session_id in self.sessions
        ]
        queued = sorted(m.task_id for m in await self.store.pending_outbox() if m.session_id in self.sessions)
        return self.named({"tasks": tasks, "results": results, "events": events, "outbox": queued})


async def both_ways(
    store: StateStore,
    build: Callable[[Case], Awaitable[list[Any]]],
    single: Callable[[StateStore, Any], Awaitable[Any]],
    batch: Callable[[StateStore, list[Any]], Awaitable[list[Any]]],
    answer: Callable[[Any], Any],
) -> tuple[Case, list[Any]]:
    """Build the case twice, apply its requests call by call to one and as a batch to the other, and check
    that both gave the same answers and left the same: returns the batch's case and answers."""
    seen = []
    for by_batch in (False, True):
        case = Case(store)
        requests = await build(case)
        case.listen()
        answers = await batch(store, requests) if by_batch else [await single(store, r) for r in requests]
        seen.append((case, answers, case.named([answer(a) for a in answers]), await case.left()))
    (_, _, single_answers, single_left), (case, answers, batch_answers, batch_left) = seen
    assert batch_answers == single_answers
    assert batch_left == single_left
    return case, answers


def queued(messages: Any) -> Any:
    return [m.task_id for m in messages] if isinstance(messages, list) else type(messages).__name__


def given(acquisition: Any) -> Any:
    if not isinstance(acquisition, TaskAcquisition):
        return type(acquisition).__name__
    task, session = acquisition.task, acquisition.session
    return (
        None if task is None else (task.task_id, task.status.name, task.owner_pod_id, task.pod_hostname),
        None if session is None else session.session_id,
        [m.task_id for m in acquisition.to_enqueue],
        [r.result_id for r in acquisition.inputs],
    )


async def finish_each(store: StateStore, request: tuple[str, str, TaskOutcome]) -> Any:
    return await store.finish_task(*request)


async def finish_all(store: StateStore, requests: list[tuple[str, str, TaskOutcome]]) -> list[Any]:
    return await store.finish_tasks(requests)


async def acquire_each(store: StateStore, request: tuple[str, str, str]) -> Any:
    return await store.acquire_task(*request)


async def acquire_all(store: StateStore, requests: list[tuple[str, str, str]]) -> list[Any]:
    return await store.acquire_tasks(requests)


def success(case: Case, role: str, **fields: Any) -> TaskOutcome:
    done = DataCompletion(case[f"{role}.out"], 3, f"obj-{role}".encode())
    return TaskOutcome(OutcomeKind.SUCCESS, completions=[done], **fields)


async def test_mixed_outcomes_in_one_batch_are_recorded_as_one_by_one(store: StateStore) -> None:
    """Successes, a failure, a crash retried, a release, a cancelled task's success, a result created by the
    run, an outcome from an agent that does not hold the task and one for a task that does not exist."""

    async def build(case: Case) -> list[tuple[str, str, TaskOutcome]]:
        sid = await case.session("session")
        await case.results(sid, "payload", completed=True)
        for role in ("ok", "ok2", "err", "crash", "rel", "foreign", "made", "cancelling"):
            await case.running(sid, role)
        await case.submit(sid, "joint", deps=("ok.out", "ok2.out"))
        await case.submit(sid, "after", deps=("ok.out",))
        await case.submit(sid, "err.next", deps=("err.out",))
        await store.cancel_tasks([case["cancelling"]])
        extra = Result(_new_id(), sid, "extra", ResultStatus.CREATED, time.time(), created_by=case["made"])
        case.ids["extra"] = extra.result_id
        made = success(case, "made", created_results=[extra])
        made.completions.append(DataCompletion(extra.result_id, 1, b"obj-extra"))
        case.ids["missing"] = _new_id()
        return [
            (case["ok"], "agent-1", success(case, "ok")),
            (case["err"], "agent-1", TaskOutcome(OutcomeKind.ERROR, message="boom")),
            (case["ok2"], "agent-1", success(case, "ok2", started_at=time.time())),
            (case["crash"], "agent-1", TaskOutcome(OutcomeKind.CRASH, message="lost")),
            (case["rel"], "agent-1", TaskOutcome(OutcomeKind.RELEASED)),
            (case["foreign"], "impostor", success(case, "foreign")),
            (case["missing"], "agent-1", TaskOutcome(OutcomeKind.SUCCESS)),
            (case["made"], "agent-1", made),
            (case["cancelling"], "agent-1", success(case, "cancelling")),
        ]

    case, answers = await both_ways(store, build, finish_each, finish_all, queued)

    assert case.named([queued(a) for a in answers]) == repr(
        [["after"], [], ["joint"], ["crash###1"], ["rel"], [], [], [], []]
    )
    statuses = {case.role(t.task_id): t.status for t in await store.get_tasks(list(case.ids.values()))}
    assert statuses == {
        "ok": TaskStatus.COMPLETED,
        "ok2": TaskStatus.COMPLETED,
        "made": TaskStatus.COMPLETED,
        "err": TaskStatus.ERROR,
        "err.next": TaskStatus.ERROR,
        "crash": TaskStatus.RETRIED,
        "rel": TaskStatus.SUBMITTED,
        "foreign": TaskStatus.PROCESSING,
        "cancelling": TaskStatus.CANCELLED,
        "joint": TaskStatus.SUBMITTED,
        "after": TaskStatus.SUBMITTED,
    }
    assert (await store.get_result(case["extra"])).status == ResultStatus.COMPLETED
    assert (await store.get_result(case["foreign.out"])).status == ResultStatus.CREATED


async def test_a_batch_of_successes_releases_each_dependent_once(store: StateStore) -> None:
    """A task waiting on outputs of several runs of the batch is released by the last of them, once; one
    waiting on an output of the batch and another still to come stays pending."""

    async def build(case: Case) -> list[tuple[str, str, TaskOutcome]]:
        sid = await case.session("session")
        await case.results(sid, "payload", completed=True)
        for role in ("first", "second", "third", "elsewhere"):
            await case.running(sid, role)
        await case.submit(sid, "both", deps=("first.out", "second.out"))
        await case.submit(sid, "after-first", deps=("first.out",))
        await case.submit(sid, "after-third", deps=("third.out",))
        await case.submit(sid, "waits-more", deps=("first.out", "elsewhere.out"))
        return [(case[role], "agent-1", success(case, role)) for role in ("first", "second", "third")]

    case, answers = await both_ways(store, build, finish_each, finish_all, queued)

    assert case.named([queued(a) for a in answers]) == repr([["after-first"], ["both"], ["after-third"]])
    assert (await store.get_task(case["waits-more"])).status == TaskStatus.PENDING
    assert (await store.get_task(case["both"])).status == TaskStatus.SUBMITTED


async def test_mixed_acquisitions_in_one_batch_are_given_as_one_by_one(store: StateStore) -> None:
    """Tasks taken (with their inputs), a task whose session is paused, a lost agent's task retried, a
    cancelled task, a finished one, and one that does not exist."""

    async def build(case: Case) -> list[tuple[str, str, str]]:
        sid = await case.session("session")
        await case.results(sid, "payload", "dep", completed=True)
        await case.running(sid, "lost", agent="dead-agent")
        await case.running(sid, "cancelling")
        await store.cancel_tasks([case["cancelling"]])
        await case.running(sid, "done")
        assert await store.finish_task(case["done"], "agent-1", success(case, "done")) == []
        await case.submit(sid, "take")
        await case.submit(sid, "take-dep", deps=("dep",))
        paused = await case.session("paused-session")
        await case.results(paused, "paused-payload", completed=True)
        await case.running(paused, "paused", payload="paused-payload")
        await store.apply_session_action(paused, SessionAction.PAUSE)
        case.ids["missing"] = _new_id()
        roles = ("take", "lost", "paused", "take-dep", "cancelling", "done", "missing")
        return [(case[role], "agent-1", "host-2") for role in roles]

    case, answers = await both_ways(store, build, acquire_each, acquire_all, given)

    by_id = sorted(("payload", "dep"), key=lambda role: case[role])  # the inputs in the order of their ids
    taken = [
        (task, session, enqueued, sorted(inputs)) for task, session, enqueued, inputs in map(given, answers)
    ]
    assert case.named(taken) == repr(
        [
            (("take", "DISPATCHED", "agent-1", "host-2"), "session", [], ["payload"]),
            (None, None, ["lost###1"], []),
            (None, None, [], []),
            (("take-dep", "DISPATCHED", "agent-1", "host-2"), "session", [], by_id),
            (None, None, [], []),
            (None, None, [], []),
            (None, None, [], []),
        ]
    )
    statuses = {role: (await store.get_task(case[role])).status for role in ("lost", "paused", "cancelling")}
    assert statuses == {
        "lost": TaskStatus.RETRIED,
        "paused": TaskStatus.PAUSED,
        "cancelling": TaskStatus.CANCELLED,
    }


async def test_a_request_that_fails_holds_back_no_other(store: StateStore) -> None:
    """A success naming a result the task neither owns nor created is refused; the batch's other outcomes
    are recorded all the same."""
    case = Case(store)
    sid = await case.session("session")
    await case.results(sid, "payload", completed=True)
    for role in ("ok", "bad", "ok2"):
        await case.running(sid, role)
    stray = DataCompletion(case["ok.out"], 1, b"obj-stray")
    bad = TaskOutcome(OutcomeKind.SUCCESS, completions=[stray, *success(case, "bad").completions])

    answers = await store.finish_tasks(
        [
            (case["ok"], "agent-1", success(case, "ok")),
            (case["bad"], "agent-1", bad),
            (case["ok2"], "agent-1", success(case, "ok2")),
        ]
    )

    assert answers[0] == [] and answers[2] == []
    assert isinstance(answers[1], FailedPrecondition)
    assert [(await store.get_task(case[r])).status for r in ("ok", "bad", "ok2")] == [
        TaskStatus.COMPLETED,
        TaskStatus.PROCESSING,
        TaskStatus.COMPLETED,
    ]
    assert (await store.get_result(case["ok.out"])).opaque_id == b"obj-ok"
