"""An Events stream is woken only by changes of its own session of the kinds it asked for.

Driven on a real SQLite store: the stream's generator runs as the server would run it, and commits of other
sessions, and of kinds the stream did not ask for, must leave its inbox empty."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from armonik.protogen.common import events_common_pb2 as pb
from armonik.protogen.common.events_common_pb2 import EventsEnum

from armonik_core.adapters.state.base import ResultCompletion
from armonik_core.adapters.state.sqlite import SqliteStateStore
from armonik_core.control_plane.events import EventsService
from armonik_core.domain.options import TaskOptions
from armonik_core.domain.records import Partition, Result, Session
from armonik_core.domain.statuses import ResultStatus, SessionStatus


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStateStore]:
    store = SqliteStateStore(tmp_path / "state.db", synchronous="NORMAL")
    await store.upsert_partitions([Partition("default")])
    for session_id in ("mine", "other"):
        await store.create_session(
            Session(session_id, SessionStatus.RUNNING, ["default"], TaskOptions(partition_id="default"), 1.0)
        )
    yield store
    await store.close()


async def new_result(store: SqliteStateStore, session_id: str) -> str:
    result = Result(str(uuid.uuid4()), session_id, "r", ResultStatus.CREATED, time.time())
    await store.create_results(session_id, [result])
    return result.result_id


async def complete(store: SqliteStateStore, session_id: str, result_id: str) -> None:
    await store.complete_results(session_id, [ResultCompletion(result_id, 1, b"key")])


async def test_a_stream_wakes_only_for_its_session_and_the_kinds_it_wants(store: SqliteStateStore) -> None:
    service = EventsService(SimpleNamespace(state=store))  # type: ignore[arg-type]
    request = pb.EventSubscriptionRequest(
        session_id="mine", returned_events=[EventsEnum.EVENTS_ENUM_RESULT_STATUS_UPDATE]
    )
    stream = service.GetEvents(request, SimpleNamespace())  # type: ignore[arg-type]
    first: asyncio.Future[Any] = asyncio.ensure_future(stream.__anext__())
    await asyncio.sleep(0.05)  # subscribed, replayed (nothing: no NEW_RESULT wanted), now waiting
    (sub,) = service._by_session["mine"]

    theirs = await new_result(store, "other")
    await complete(store, "other", theirs)
    mine = await new_result(store, "mine")  # a NEW_RESULT: a kind this stream did not ask for
    await asyncio.sleep(0.05)
    assert sub.inbox.qsize() == 0 and not first.done()

    await complete(store, "mine", mine)
    event = await asyncio.wait_for(first, 5)
    assert event.result_status_update.result_id == mine
    assert event.result_status_update.status == ResultStatus.COMPLETED
    # The client goes away while the stream waits: the server cancels the handler.
    waiting = asyncio.ensure_future(stream.__anext__())
    await asyncio.sleep(0.01)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert "mine" not in service._by_session, "a cancelled stream leaves nothing behind"
