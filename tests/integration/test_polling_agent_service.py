"""The Agent API of the polling agent, called over a real unix socket as a worker would call it.

A task run is bound by hand (no worker here): what is checked is the protocol itself (tokens, sessions,
data files, what a subtask may name, how options merge) and what the run buffers for the outcome.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import grpc
import pytest
from armonik.protogen.common import agent_common_pb2 as pb
from armonik.protogen.common import objects_pb2
from armonik.protogen.worker.agent_service_pb2_grpc import AgentStub, add_AgentServicer_to_server
from google.protobuf.duration_pb2 import Duration

from armonik_core.adapters.objects.filesystem import FilesystemObjectStorage
from armonik_core.domain.options import TaskOptions
from armonik_core.domain.outcomes import TaskOutcome
from armonik_core.domain.records import Result, Task
from armonik_core.domain.statuses import ResultStatus, TaskStatus
from armonik_core.polling_agent.agent_service import AgentService, TaskRun
from armonik_core.polling_agent.backend import AcquiredTask, ComputeBackend
from tests.integration.agent_harness import session_options

SESSION = "session-1"
TOKEN = "the-token"


class ResultsOnly(ComputeBackend):
    """A backend that only knows results (all the Agent API asks of it)."""

    def __init__(self) -> None:
        self.results: dict[str, Result] = {}

    async def acquire(
        self, partition_id: str, agent_id: str, hostname: str, wait_seconds: float
    ) -> AcquiredTask | None:
        raise AssertionError("the Agent API never acquires tasks")

    async def start(
        self, acquired: AcquiredTask, fetched_at: float | None = None, started_at: float | None = None
    ) -> None:
        raise AssertionError("the Agent API never starts tasks")

    async def heartbeat(self, acquired: Sequence[AcquiredTask]) -> set[str]:
        raise AssertionError("the Agent API never sends heartbeats")

    async def finish(self, acquired: AcquiredTask, outcome: TaskOutcome) -> None:
        raise AssertionError("the Agent API never finishes tasks: the task runner does")

    async def get_results(self, result_ids: Sequence[str], acquired: AcquiredTask) -> list[Result]:
        return [self.results[rid] for rid in result_ids if rid in self.results]


@dataclass
class Env:
    service: AgentService
    backend: ResultsOnly
    objects: FilesystemObjectStorage
    stub: AgentStub
    run: TaskRun

    @property
    def folder(self) -> Path:
        return self.run.data_folder

    def add_result(
        self, result_id: str, status: ResultStatus, data: bytes | None = None, session: str = SESSION
    ) -> None:
        key = f"key-{result_id}"
        if data is not None:
            self.objects.path_of(key).parent.mkdir(parents=True, exist_ok=True)
            self.objects.path_of(key).write_bytes(data)
        self.backend.results[result_id] = Result(
            result_id,
            session,
            result_id,
            status,
            time.time(),
            opaque_id=key.encode() if data is not None else b"",
        )


def parent_task() -> AcquiredTask:
    task = Task(
        task_id="parent",
        session_id=SESSION,
        status=TaskStatus.PROCESSING,
        options=TaskOptions(max_duration=30, partition_id="default"),
        payload_id="in-payload",
        created_at=time.time(),
        expected_output_ids=["out-1", "out-2"],
        data_dependencies=["in-dep"],
        parent_task_ids=[SESSION, "grandparent"],
        initial_task_id="parent",
    )
    defaults = session_options(session="s", shared="from-session")
    return AcquiredTask(task, defaults, ["default", "gpu"], lease="lease-1")


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    backend = ResultsOnly()
    objects = FilesystemObjectStorage(tmp_path / "objects", fsync=False)
    service = AgentService(backend, objects)
    server = grpc.aio.server()
    add_AgentServicer_to_server(service, server)
    socket = tmp_path / "agent.sock"
    server.add_insecure_port(f"unix://{socket}")
    await server.start()
    folder = tmp_path / "shared" / TOKEN
    folder.mkdir(parents=True)
    run = TaskRun(parent_task(), TOKEN, folder)
    service.bind(run)
    async with grpc.aio.insecure_channel(f"unix://{socket}") as channel:
        yield Env(service, backend, objects, AgentStub(channel), run)
    await server.stop(None)


async def refused(call: object) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call  # type: ignore[misc]
    return info.value.code(), info.value.details() or ""


def notify(ids: list[str], token: str = TOKEN, session: str = SESSION) -> pb.NotifyResultDataRequest:
    return pb.NotifyResultDataRequest(
        ids=[pb.NotifyResultDataRequest.ResultIdentifier(session_id=session, result_id=rid) for rid in ids],
        communication_token=token,
    )


def creation(
    payload: str, outputs: list[str], deps: list[str] | None = None, **options: object
) -> pb.SubmitTasksRequest.TaskCreation:
    item = pb.SubmitTasksRequest.TaskCreation(
        payload_id=payload, expected_output_keys=outputs, data_dependencies=deps or []
    )
    if options:
        item.task_options.CopyFrom(objects_pb2.TaskOptions(**options))  # type: ignore[arg-type]
    return item


def submit(
    *creations: pb.SubmitTasksRequest.TaskCreation, options: objects_pb2.TaskOptions | None = None
) -> pb.SubmitTasksRequest:
    return pb.SubmitTasksRequest(
        session_id=SESSION, communication_token=TOKEN, task_creations=creations, task_options=options
    )


# -- tokens ------------------------------------------------------------------------------------------------


async def test_every_call_checks_the_token(env: Env) -> None:
    calls = [
        lambda token: env.stub.NotifyResultData(notify(["out-1"], token=token)),
        lambda token: env.stub.CreateResultsMetaData(
            pb.CreateResultsMetaDataRequest(
                session_id=SESSION, communication_token=token, results=[{"name": "a"}]
            )
        ),
        lambda token: env.stub.CreateResults(
            pb.CreateResultsRequest(session_id=SESSION, communication_token=token, results=[{"name": "a"}])
        ),
        lambda token: env.stub.SubmitTasks(
            pb.SubmitTasksRequest(session_id=SESSION, communication_token=token, task_creations=[])
        ),
        lambda token: env.stub.GetResourceData(pb.DataRequest(communication_token=token, result_id="in-dep")),
    ]
    for call in calls:
        assert await refused(call("")) == (grpc.StatusCode.INVALID_ARGUMENT, "Missing communication token")
        assert await refused(call("nope")) == (grpc.StatusCode.INVALID_ARGUMENT, "Wrong communication token")
    env.service.unbind()
    for call in calls:
        assert await refused(call(TOKEN)) == (grpc.StatusCode.UNAVAILABLE, "No task is accepting request")
    assert not env.run.created and not env.run.subtasks and not env.run.notified


async def test_common_and_direct_data_are_not_implemented(env: Env) -> None:
    request = pb.DataRequest(communication_token=TOKEN, result_id="in-dep")
    assert (await refused(env.stub.GetCommonData(request)))[0] == grpc.StatusCode.UNIMPLEMENTED
    assert (await refused(env.stub.GetDirectData(request)))[0] == grpc.StatusCode.UNIMPLEMENTED


# -- results -----------------------------------------------------------------------------------------------


async def test_notify_needs_the_file_and_an_owned_result(env: Env) -> None:
    code, details = await refused(env.stub.NotifyResultData(notify(["out-1"])))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert str(env.folder / "out-1") in details
    (env.folder / "foreign").write_bytes(b"x")
    code, details = await refused(env.stub.NotifyResultData(notify(["foreign"])))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "foreign" in details
    code, _ = await refused(env.stub.NotifyResultData(notify(["../escape"])))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert not env.run.notified

    (env.folder / "out-1").write_bytes(b"one")
    (env.folder / "out-2").write_bytes(b"two")
    reply = await env.stub.NotifyResultData(notify(["out-2", "out-1"]))
    assert list(reply.result_ids) == ["out-2", "out-1"]
    assert list(env.run.notified) == ["out-2", "out-1"]


async def test_created_results_are_buffered_and_stored_data_is_in_object_storage(env: Env) -> None:
    meta = await env.stub.CreateResultsMetaData(
        pb.CreateResultsMetaDataRequest(
            session_id=SESSION, communication_token=TOKEN, results=[{"name": "a"}, {"name": "b"}]
        )
    )
    assert [r.name for r in meta.results] == ["a", "b"]
    assert all(r.session_id == SESSION and r.status == ResultStatus.CREATED for r in meta.results)
    assert all(r.created_at.seconds > 0 for r in meta.results)
    assert meta.results[0].result_id != meta.results[1].result_id

    with_data = await env.stub.CreateResults(
        pb.CreateResultsRequest(
            session_id=SESSION, communication_token=TOKEN, results=[{"name": "c", "data": b"payload bytes"}]
        )
    )
    created_id = with_data.results[0].result_id
    assert with_data.results[0].name == "c"
    assert set(env.run.created) == {r.result_id for r in meta.results} | {created_id}
    assert all(r.created_by == "parent" for r in env.run.created.values())
    stored = env.run.stored[created_id]
    assert stored.size == len(b"payload bytes")
    assert await env.objects.get_bytes(stored.opaque_id.decode()) == b"payload bytes"

    # A created result may be notified (its file written); one created with data may not be notified again.
    (env.folder / meta.results[0].result_id).write_bytes(b"a-data")
    await env.stub.NotifyResultData(notify([meta.results[0].result_id]))
    (env.folder / created_id).write_bytes(b"again")
    code, _ = await refused(env.stub.NotifyResultData(notify([created_id])))
    assert code == grpc.StatusCode.INVALID_ARGUMENT

    other = pb.CreateResultsMetaDataRequest(
        session_id="other", communication_token=TOKEN, results=[{"name": "x"}]
    )
    assert (await refused(env.stub.CreateResultsMetaData(other)))[0] == grpc.StatusCode.INVALID_ARGUMENT


# -- subtasks ----------------------------------------------------------------------------------------------


async def test_subtasks_merge_options_chain_parents_and_may_take_over_the_parents_output(env: Env) -> None:
    meta = await env.stub.CreateResultsMetaData(
        pb.CreateResultsMetaDataRequest(
            session_id=SESSION, communication_token=TOKEN, results=[{"name": "mid"}]
        )
    )
    mid = meta.results[0].result_id
    request_options = objects_pb2.TaskOptions(priority=1, options={"shared": "from-request", "req": "r"})
    reply = await env.stub.SubmitTasks(
        submit(
            # Produces an intermediate result from the parent's own inputs.
            creation("in-payload", [mid], ["in-dep"]),
            # Takes over the parent's output (delegation), waiting for its sibling's result.
            creation(
                "in-payload",
                ["out-1"],
                [mid],
                max_duration=Duration(seconds=7),
                priority=9,
                partition_id="gpu",
                options={"task": "t"},
            ),
            options=request_options,
        )
    )
    assert len(reply.task_infos) == 2
    first, second = env.run.subtasks
    assert [info.task_id for info in reply.task_infos] == [first.task_id, second.task_id]
    assert list(reply.task_infos[1].expected_output_ids) == ["out-1"]
    assert list(reply.task_infos[1].data_dependencies) == [mid]
    assert reply.task_infos[1].payload_id == "in-payload"
    for task in (first, second):
        assert task.status == TaskStatus.CREATING
        assert task.session_id == SESSION
        assert task.parent_task_ids == [SESSION, "grandparent", "parent"]
        assert task.created_by == "parent"
        assert task.initial_task_id == task.task_id
    # Request options over session defaults; unset numbers fall back; maps are unioned.
    assert first.options == replace(session_options(session="s", shared="from-request", req="r"), priority=1)
    # Task options over request options over session defaults.
    assert second.options == replace(
        session_options(session="s", shared="from-request", req="r", task="t"),
        max_duration=7,
        priority=9,
        partition_id="gpu",
    )
    assert env.run.claimed == {mid: first.task_id, "out-1": second.task_id}

    # An output has one producer: neither another subtask nor the parent may produce it now.
    code, details = await refused(env.stub.SubmitTasks(submit(creation("in-payload", ["out-1"]))))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "out-1" in details
    assert len(env.run.subtasks) == 2
    (env.folder / "out-1").write_bytes(b"too late")
    code, details = await refused(env.stub.NotifyResultData(notify(["out-1"])))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and second.task_id in details


async def test_subtasks_may_use_existing_results_of_the_session(env: Env) -> None:
    env.add_result("client-data", ResultStatus.COMPLETED, b"c")
    env.add_result("client-output", ResultStatus.CREATED)
    await env.stub.SubmitTasks(submit(creation("client-data", ["client-output"], ["in-dep"])))
    assert env.run.subtasks[0].expected_output_ids == ["client-output"]


@pytest.mark.parametrize(
    ("build", "code", "fragment"),
    [
        (
            lambda: submit(creation("in-payload", ["out-2"], partition_id="elsewhere")),
            "FAILED_PRECONDITION",
            "elsewhere",
        ),
        (
            lambda: submit(creation("in-payload", ["out-2"], ["unknown-result"])),
            "NOT_FOUND",
            "unknown-result",
        ),
        (lambda: submit(creation("unknown-payload", ["out-2"])), "NOT_FOUND", "unknown-payload"),
        (lambda: submit(creation("in-payload", ["unknown-output"])), "NOT_FOUND", "unknown-output"),
        (lambda: submit(creation("in-payload", ["out-2"], ["aborted"])), "FAILED_PRECONDITION", "aborted"),
        (lambda: submit(creation("in-payload", ["other-session"])), "NOT_FOUND", "other-session"),
        (
            lambda: submit(creation("in-payload", ["owned-elsewhere"])),
            "FAILED_PRECONDITION",
            "owned-elsewhere",
        ),
        (lambda: submit(creation("", ["out-2"])), "INVALID_ARGUMENT", "payload"),
        (lambda: submit(creation("in-payload", [])), "INVALID_ARGUMENT", "output"),
        (
            lambda: pb.SubmitTasksRequest(
                session_id="other",
                communication_token=TOKEN,
                task_creations=[creation("in-payload", ["out-2"])],
            ),
            "INVALID_ARGUMENT",
            "other",
        ),
    ],
)
async def test_invalid_subtasks_are_refused_and_nothing_is_buffered(
    env: Env, build: object, code: str, fragment: str
) -> None:
    env.add_result("aborted", ResultStatus.ABORTED)
    env.add_result("other-session", ResultStatus.CREATED, session="session-2")
    env.backend.results["owned-elsewhere"] = Result(
        "owned-elsewhere", SESSION, "", ResultStatus.CREATED, 0.0, owner_task_id="another-task"
    )
    status, details = await refused(env.stub.SubmitTasks(build()))  # type: ignore[operator]
    assert status.name == code
    assert fragment in details
    assert not env.run.subtasks and not env.run.claimed


async def test_an_output_already_produced_cannot_be_delegated(env: Env) -> None:
    (env.folder / "out-2").write_bytes(b"done")
    await env.stub.NotifyResultData(notify(["out-2"]))
    code, _ = await refused(env.stub.SubmitTasks(submit(creation("in-payload", ["out-2"]))))
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    # ... but may be a subtask's input.
    await env.stub.SubmitTasks(submit(creation("in-payload", ["out-1"], ["out-2"])))


# -- data --------------------------------------------------------------------------------------------------


async def test_get_resource_data_writes_the_file(env: Env) -> None:
    env.add_result("stored", ResultStatus.COMPLETED, b"stored data")
    env.add_result("pending", ResultStatus.CREATED)
    env.add_result("elsewhere", ResultStatus.COMPLETED, b"x", session="session-2")
    env.add_result("lost", ResultStatus.COMPLETED)
    env.backend.results["lost"].opaque_id = b"no-such-object"

    reply = await env.stub.GetResourceData(pb.DataRequest(communication_token=TOKEN, result_id="stored"))
    assert reply.result_id == "stored"
    assert (env.folder / "stored").read_bytes() == b"stored data"

    for result_id, code in [
        ("unknown", grpc.StatusCode.NOT_FOUND),
        ("elsewhere", grpc.StatusCode.NOT_FOUND),
        ("lost", grpc.StatusCode.NOT_FOUND),
        ("pending", grpc.StatusCode.FAILED_PRECONDITION),
    ]:
        status, details = await refused(
            env.stub.GetResourceData(pb.DataRequest(communication_token=TOKEN, result_id=result_id))
        )
        assert (status, result_id in details) == (code, True)

    # Data created by this very task is served too.
    created = await env.stub.CreateResults(
        pb.CreateResultsRequest(
            session_id=SESSION, communication_token=TOKEN, results=[{"name": "n", "data": b"own"}]
        )
    )
    own = created.results[0].result_id
    await env.stub.GetResourceData(pb.DataRequest(communication_token=TOKEN, result_id=own))
    assert (env.folder / own).read_bytes() == b"own"


async def test_create_results_after_the_run_ended_leaves_nothing_behind(env: Env, tmp_path: Path) -> None:
    env.service.unbind()
    request = pb.CreateResultsRequest(
        session_id=SESSION, communication_token=TOKEN, results=[{"name": "late"}]
    )
    assert (await refused(env.stub.CreateResults(request)))[0] == grpc.StatusCode.UNAVAILABLE
    assert not [p for p in (tmp_path / "objects").rglob("*") if p.is_file()]
