"""Records and helpers the state store's contract modules build their cases from: one session (`SID`) on the
partitions `default` and `gpu`, results and tasks in it, and a change listener that keeps what it hears."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from armonik_core.adapters.queue.base import QueueMessage
from armonik_core.adapters.state.base import StateStore
from armonik_core.domain.changes import Change
from armonik_core.domain.filters import Condition, FieldKind, FieldRef, Filter, Op
from armonik_core.domain.options import TaskOptions
from armonik_core.domain.records import Result, Session, Task
from armonik_core.domain.statuses import EventType, ResultStatus, SessionStatus, TaskStatus
from armonik_core.ids import new_id

SID = "session-1"


def session(session_id: str, partitions: tuple[str, ...] = ("default", "gpu"), **options: Any) -> Session:
    return Session(
        session_id,
        SessionStatus.RUNNING,
        list(partitions),
        TaskOptions(partition_id=partitions[0], max_retries=1, **options),
        time.time(),
    )


async def results(
    store: StateStore, *names: str, completed: bool = False, sid: str = SID, **fields: Any
) -> list[str]:
    status = ResultStatus.COMPLETED if completed else ResultStatus.CREATED
    made = [Result(new_id(), sid, name, status, time.time(), owner_task_id=sid, **fields) for name in names]
    await store.create_results(sid, made)
    return [r.result_id for r in made]


def task(
    outputs: list[str],
    payload: str,
    deps: list[str] = (),  # type: ignore[assignment]
    sid: str = SID,
    **options: Any,
) -> Task:
    task_id = new_id()
    merged = {"partition_id": "default", "max_retries": 1, **options}
    return Task(
        task_id,
        sid,
        TaskStatus.CREATING,
        TaskOptions(**merged),
        payload,
        time.time(),
        list(outputs),
        list(deps),
        [sid],
        initial_task_id=task_id,
    )


async def status_of(store: StateStore, task_id: str) -> TaskStatus:
    return (await store.get_task(task_id)).status


async def result_status(store: StateStore, result_id: str) -> ResultStatus:
    return (await store.get_result(result_id)).status


def where(path: str, kind: FieldKind, op: Op, value: Any, key: str | None = None) -> Filter:
    return Filter.of([Condition(FieldRef(path, key), kind, op, value)])


def ids(messages: list[QueueMessage]) -> list[str]:
    return [m.task_id for m in messages]


class Recorder:
    """A change listener keeping every change it is told of."""

    def __init__(self) -> None:
        self.changes: list[Change] = []

    def __call__(self, changes: list[Change]) -> None:
        self.changes.extend(changes)

    def of(self, kind: EventType) -> list[Change]:
        return [c for c in self.changes if c.kind is kind]


async def settle() -> None:
    """Let the event loop run what the store scheduled on it (listeners are called on the loop)."""
    for _ in range(3):
        await asyncio.sleep(0)
