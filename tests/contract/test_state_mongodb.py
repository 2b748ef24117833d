"""What only the MongoDB state store has: upstream's document layout and indexes, exclusivity between two stores
sharing a database (two control planes), which SQLite's single writer makes moot, and its settings from
upstream's variables."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import pytest

from armonik_core.adapters.state import mongodb_schema
from armonik_core.adapters.state.base import StateStore
from armonik_core.adapters.state.mongodb import MongoSettings, MongoStateStore
from armonik_core.config import ConfigurationError, Environment
from armonik_core.domain.outcomes import DataCompletion, OutcomeKind, TaskOutcome
from armonik_core.domain.records import Partition, Task
from armonik_core.domain.statuses import ResultStatus, TaskStatus
from tests.contract.conftest import StateBackend
from tests.contract.state_store_support import SID, ids, results, session, status_of, task


@pytest.fixture
def mongo_backend(state_backend: StateBackend) -> StateBackend:
    if state_backend.name.startswith("sqlite"):
        pytest.skip("MongoDB layout and multi-writer checks")
    return state_backend


def stored(db: Any, collection: str, key: str) -> dict[str, Any]:
    doc = db[collection].find_one({"_id": key})
    assert doc is not None, (collection, key)
    return dict(doc)


async def test_documents_follow_upstream_layout(mongo_backend: StateBackend) -> None:
    store = mongo_backend.open()
    assert isinstance(store, MongoStateStore)
    await store.upsert_partitions([Partition("default")])
    await store.create_session(session(SID, ("default",), options={"a.b": "dotted"}))
    (payload,) = await results(store, "payload", completed=True, opaque_id=b"\x01obj")
    out, dep = await results(store, "out", "dep")
    t = task([out], payload, deps=[dep], options={"$key": "v"})
    await store.submit_tasks(SID, [t])

    db = store._database  # the layout itself is under test
    assert set(db.list_collection_names()) >= {"TaskData", "Result", "SessionData", "PartitionData"}
    doc = stored(db, "TaskData", t.task_id)
    assert (
        doc["SessionId"] == SID and doc["Status"] == int(TaskStatus.PENDING) and doc["PayloadId"] == payload
    )
    assert doc["ExpectedOutputIds"] == [out] and doc["DataDependencies"] == [dep]
    assert doc["RemainingDataDependencies"] == {dep: True} and doc["InitialTaskId"] == t.task_id
    assert doc["Options"]["PartitionId"] == "default" and doc["Options"]["Options"] == {"%24key": "v"}
    assert doc["CreationDate"].microsecond % 1000 == 0 and doc["SubmittedDate"] is None
    assert stored(db, "Result", dep)["DependentTasks"] == [t.task_id]
    assert stored(db, "Result", payload)["OpaqueId"] == b"\x01obj"
    sdoc = stored(db, "SessionData", SID)
    assert sdoc["PartitionIds"] == ["default"] and sdoc["Options"]["Options"] == {"a%2Eb": "dotted"}
    assert (await store.get_session(SID)).options.options == {"a.b": "dotted"}
    assert (await store.get_task(t.task_id)).options.options == {"$key": "v"}
    names = {index["name"] for index in db["TaskData"].list_indexes()}
    assert {
        "SessionId_Status__id",
        "SessionId__id",
        "Options.PartitionId_Status",
        "OwnerPodId",
        "InitialTaskId",
    } <= names
    assert "SessionId_Status__id" in {index["name"] for index in db["Result"].list_indexes()}
    # Indexes are created once per store, idempotently: a second store on the database starts fine.
    await mongo_backend.open().get_session(SID)


async def race(backend: StateBackend, first: Awaitable[Any], second: Awaitable[Any], flip: bool) -> list[Any]:
    """Two calls at once on a real server. mongomock's find_one_and_update is not atomic between threads (it
    selects, then updates by id), so there they run one after the other, in both orders across iterations."""
    if backend.name != "mongomock":
        return list(await asyncio.gather(first, second))
    if flip:
        later = await second
        return [await first, later]
    return [await first, await second]


async def two_stores_with_tasks(
    backend: StateBackend, count: int
) -> tuple[StateStore, StateStore, list[Task]]:
    """Two stores on one database, as two control planes see it, and `count` ready tasks submitted through
    the first: what the races below are run on."""
    first, second = backend.open(), backend.open()
    await first.upsert_partitions([Partition("default")])
    await first.create_session(session(SID, ("default",)))
    (payload,) = await results(first, "payload", completed=True)
    outs = await results(first, *(f"o{i}" for i in range(count)))
    tasks = [task([out], payload) for out in outs]
    await first.submit_tasks(SID, tasks)
    return first, second, tasks


async def test_two_stores_never_give_a_task_to_two_agents(mongo_backend: StateBackend) -> None:
    first, second, tasks = await two_stores_with_tasks(mongo_backend, 20)

    for i, t in enumerate(tasks):  # the same message delivered to two agents, through two control planes
        a, b = await race(
            mongo_backend,
            first.acquire_task(t.task_id, "agent-a", "a"),
            second.acquire_task(t.task_id, "agent-b", "b"),
            flip=i % 2 == 1,
        )
        winners = [x.task.owner_pod_id for x in (a, b) if x.task is not None]
        assert len(winners) >= 1
        stored = await first.get_task(t.task_id)
        assert stored.owner_pod_id in winners and stored.status == TaskStatus.DISPATCHED
        started = await race(
            mongo_backend,
            first.start_task(t.task_id, "agent-a"),
            second.start_task(t.task_id, "agent-b"),
            i % 3 == 0,
        )
        assert started.count(True) == 1


async def test_a_finish_and_a_recovery_never_both_apply(mongo_backend: StateBackend) -> None:
    first, second, tasks = await two_stores_with_tasks(mongo_backend, 10)
    for i, t in enumerate(tasks):
        await first.acquire_task(t.task_id, "agent-a", "a")
        await first.start_task(t.task_id, "agent-a")
        done = TaskOutcome(
            OutcomeKind.SUCCESS, completions=[DataCompletion(t.expected_output_ids[0], 1, b"x")]
        )
        # agent-a reports while agent-b, having received the redelivered message, recovers the task
        finished, recovered = await race(
            mongo_backend,
            first.finish_task(t.task_id, "agent-a", done),
            second.acquire_task(t.task_id, "agent-b", "b"),
            flip=i % 2 == 1,
        )
        final = await first.get_task(t.task_id)
        output = await first.get_result(t.expected_output_ids[0])
        if final.status == TaskStatus.COMPLETED:
            assert recovered.to_enqueue == [] and output.status == ResultStatus.COMPLETED
            assert output.owner_task_id == t.task_id
        else:
            assert final.status == TaskStatus.RETRIED and finished == []
            assert output.status == ResultStatus.CREATED and output.owner_task_id == f"{t.task_id}###1"


async def test_an_interrupted_finish_is_recovered_by_the_next_agent(mongo_backend: StateBackend) -> None:
    """A control plane that died in the middle of `finish_task` left the task claimed (PROCESSED), its output
    handed to a subtask still CREATING: the agent receiving the message again recovers the attempt."""
    store = mongo_backend.open()
    assert isinstance(store, MongoStateStore)
    await store.upsert_partitions([Partition("default")])
    await store.create_session(session(SID, ("default",)))
    (payload,) = await results(store, "payload", completed=True)
    (out,) = await results(store, "out")
    t = task([out], payload, max_retries=2)
    await store.submit_tasks(SID, [t])
    await store.acquire_task(t.task_id, "agent-a", "a")
    await store.start_task(t.task_id, "agent-a")
    orphan = task([out], payload)
    orphan.created_by = t.task_id
    db = store._database  # the state a crash leaves, written as the unit would have
    db["TaskData"].update_one(
        {"_id": t.task_id}, {"$set": {"Status": int(TaskStatus.PROCESSED), "ClaimId": "c1"}}
    )
    orphan.status = TaskStatus.CREATING
    db["TaskData"].insert_one(mongodb_schema.task_to_document(orphan))
    db["Result"].update_one({"_id": out}, {"$set": {"OwnerTaskId": orphan.task_id}})

    ready, held = await store.tasks_in_flight()
    assert [(m.task_id, agent) for m, agent in held] == [(t.task_id, "agent-a")]
    late = TaskOutcome(OutcomeKind.SUCCESS, completions=[DataCompletion(out, 1, b"late")])
    assert await store.finish_task(t.task_id, "agent-a", late) == []  # the dead unit's agent: ignored

    recovered = await store.acquire_task(t.task_id, "agent-b", "b")

    retry_id = f"{t.task_id}###1"
    assert ids(recovered.to_enqueue) == [retry_id] and recovered.task is None
    assert await status_of(store, t.task_id) == TaskStatus.RETRIED
    assert (await store.get_result(out)).owner_task_id == retry_id
    assert await store.get_tasks([orphan.task_id]) == []
    assert await status_of(store, retry_id) == TaskStatus.SUBMITTED


def test_settings_from_upstream_variables() -> None:
    env = Environment(
        {
            "MongoDB__Host": "mongo.local",
            "MongoDB__Port": "27018",
            "MongoDB__User": "user",
            "MongoDB__Password": "secret",
            "MongoDB__DatabaseName": "database",
            "MongoDB__ReplicaSet": "rs0",
            "MongoDB__Tls": "true",
            "MongoDB__AllowInsecureTls": "true",
            "MongoDB__DirectConnection": "true",
            "MongoDB__AuthSource": "admin",
            "MongoDB__ServerSelectionTimeout": "00:00:05",
        }
    )
    settings = MongoSettings.from_env(env)
    assert settings.address == "mongo.local:27018" and settings.database_name == "database"
    assert "secret" not in repr(settings)
    options = settings.client_options()
    assert options["replicaSet"] == "rs0" and options["tls"] and options["tlsInsecure"]
    assert options["directConnection"] and options["authSource"] == "admin"
    assert options["serverSelectionTimeoutMS"] == 5000 and options["username"] == "user"
    assert MongoSettings.from_env(Environment({})).database_name == "ArmoniK"
    uri = "mongodb://u:p@db-0:27017,db-1:27017/database?replicaSet=rs0"
    with_uri = MongoSettings.from_env(
        Environment({"MongoDB__ConnectionString": uri, "MongoDB__Host": "ignored"})
    )
    assert with_uri.address == "db-0:27017,db-1:27017" and "host" not in with_uri.client_options()
    assert with_uri.database(with_uri.connect()) == "database"
    with pytest.raises(ConfigurationError, match="MongoDB__ServerSelectionTimeout"):
        MongoSettings.from_env(Environment({"MongoDB__ServerSelectionTimeout": "soon"}))
    with pytest.raises(ConfigurationError, match="MongoDB__Port"):
        MongoSettings.from_env(Environment({"MongoDB__Port": "0"}))


async def test_an_unreachable_server_is_a_named_error() -> None:
    settings = MongoSettings(host="127.0.0.1", port=1, server_selection_timeout=0.2)
    store = MongoStateStore(settings=settings)
    with pytest.raises(
        Exception,
        match=r"MongoDB at 127\.0\.0\.1:1 \(database ArmoniK\) is unreachable while reading a session",
    ):
        await store.get_session(SID)
    await store.close()
