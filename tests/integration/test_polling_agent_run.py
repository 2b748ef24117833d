"""The polling agent running tasks on a real worker written with the official Python SDK.

The worker is this very file run as a script (`python test_polling_agent_run.py worker`): an
`armonik_worker` process on unix sockets, driven by the JSON payload of each task. The agent runs
in-process against `FakeBackend`, an in-memory ComputeBackend that records what the agent reports, with a
real filesystem object storage. One worker serves the whole module; each test starts its own agent on the
same agent socket.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from armonik.common import Output, TaskDefinition
from armonik.common import TaskOptions as SdkOptions
from armonik.protogen.common import agent_common_pb2 as a
from armonik.worker import TaskHandler

from armonik_core.adapters.objects.filesystem import FilesystemObjectStorage
from armonik_core.domain.options import TaskOptions
from armonik_core.domain.outcomes import OutcomeKind, TaskOutcome
from armonik_core.domain.records import Result, Task
from armonik_core.domain.statuses import ResultStatus, TaskStatus
from armonik_core.ids import new_id
from armonik_core.polling_agent.agent import PollingAgent
from armonik_core.polling_agent.backend import AcquiredTask, ComputeBackend
from armonik_core.polling_agent.inprocess import InProcessAgentStub
from armonik_core.polling_agent.settings import AgentSettings, ChannelSettings
from armonik_core.polling_agent.task_runner import START_REPORT_DELAY

ROOT = Path(__file__).resolve().parents[2]


# -- the worker's processor ------------------------------------------------------------------------------


def outcome_of(call: Any) -> list[str]:
    try:
        call()
        return ["OK", ""]
    except grpc.RpcError as exc:
        return [exc.code().name, exc.details()]


def process(th: TaskHandler) -> Output:
    """The worker's processor, driven by the JSON payload of each task: run by a separate worker process
    (`run_worker`) or by the agent itself (`Worker__Module`, the `inprocess` variant of the tests)."""
    spec = json.loads(th.payload)
    action = spec["action"]
    out = th.expected_results[0] if th.expected_results else ""
    if action == "inspect":
        report = {
            "files": sorted(os.listdir(th.data_folder)),
            "payload_id": th.payload_id,
            "deps": {rid: data.decode() for rid, data in th.data_dependencies.items()},
            "task_id": th.task_id,
            "session_id": th.session_id,
            "token": th.token,
            "folder": th.data_folder,
            "expected": th.expected_results,
            "options": th.task_options.options,
            "max_duration": th.task_options.max_duration.total_seconds(),
            "priority": th.task_options.priority,
            "chunk": th.configuration.data_chunk_max_size,
        }
        th.send_results({out: json.dumps(report).encode()})
        return Output()
    if action == "error":
        return Output(spec["details"])
    if action == "die":  # a poison task: it kills every worker that runs it
        os.kill(os.getpid(), signal.SIGKILL)
    if action == "die_once":  # the first run leaves results, a subtask and an output, then its worker dies
        if not os.path.exists(spec["marker"]):
            open(spec["marker"], "w").close()
            child = th.create_results({"dead-payload": b"from the dead run"})["dead-payload"].result_id
            dead_out = th.create_results_metadata(["dead-out"])["dead-out"].result_id
            th.submit_tasks([TaskDefinition(child, [dead_out])])
            th.send_results({out: b"written by the dead run"})
            os.kill(os.getpid(), signal.SIGKILL)
        th.send_results({out: b"written by the second run"})
        return Output()
    if action == "raise":
        raise RuntimeError("the worker function failed")
    if action == "sleep":
        deadline = time.monotonic() + spec["seconds"]
        while time.monotonic() < deadline and not os.path.exists(spec["marker"]):
            time.sleep(0.02)
        th.send_results({out: b"slept"})
        return Output()
    if action == "subtasks":
        created = th.create_results_metadata(["child-out"])
        payloads = th.create_results({"child-payload": b"child payload data"})
        child_out = created["child-out"].result_id
        child_payload = payloads["child-payload"].result_id
        request_options = SdkOptions(
            max_duration=timedelta(0), priority=1, max_retries=0, options={"level": "request"}
        )
        own = SdkOptions(
            max_duration=timedelta(seconds=7), priority=3, max_retries=1, options={"level": "task"}
        )
        # TaskHandler.submit_tasks cannot send per-task options (armonik 3.29.4 assigns a message field,
        # which protobuf refuses), so the request is built here, as the SDK would.
        creations = [
            # Takes over the parent's output, from the sibling's result.
            a.SubmitTasksRequest.TaskCreation(
                payload_id=child_payload, expected_output_keys=[out], data_dependencies=[child_out]
            ),
            a.SubmitTasksRequest.TaskCreation(
                payload_id=child_payload, expected_output_keys=[child_out], task_options=own.to_message()
            ),
        ]
        reply = th._client.SubmitTasks(
            a.SubmitTasksRequest(
                session_id=th.session_id,
                communication_token=th.token,
                task_options=request_options.to_message(),
                task_creations=creations,
            )
        )
        tasks = list(reply.task_infos)
        report = {
            "tasks": [t.task_id for t in tasks],
            "child_out": child_out,
            "child_payload": child_payload,
        }
        th.create_results({"report": json.dumps(report).encode()})
        return Output()  # the parent's output is delegated: nothing written
    if action == "resource":
        report = {rid: th.get_resource_data(rid).decode() for rid in spec["ids"]}
        report["missing"] = outcome_of(lambda: th.get_resource_data("no-such-result"))
        th.send_results({out: json.dumps(report).encode()})
        return Output()
    if action == "probe":
        stub = th._client

        def notify(token: str, rid: str) -> Any:
            ids = [a.NotifyResultDataRequest.ResultIdentifier(session_id=th.session_id, result_id=rid)]
            return stub.NotifyResultData(a.NotifyResultDataRequest(ids=ids, communication_token=token))

        def submit(partition: str) -> Any:
            creation = a.SubmitTasksRequest.TaskCreation(
                payload_id=th.payload_id,
                expected_output_keys=[out],
                task_options=SdkOptions(
                    max_duration=timedelta(seconds=1), priority=1, max_retries=1, partition_id=partition
                ).to_message(),
            )
            request = a.SubmitTasksRequest(
                session_id=th.session_id, communication_token=th.token, task_creations=[creation]
            )
            return stub.SubmitTasks(request)

        report = {
            "wrong_token": outcome_of(lambda: notify("not-the-token", out)),
            "missing_token": outcome_of(lambda: notify("", out)),
            "missing_file": outcome_of(lambda: notify(th.token, out)),
            "wrong_partition": outcome_of(lambda: submit("elsewhere")),
            "common_data": outcome_of(
                lambda: stub.GetCommonData(a.DataRequest(communication_token=th.token, result_id=out))
            ),
        }
        th.send_results({out: json.dumps(report).encode()})
        return Output()
    return Output(f"unknown action {action}")


def run_worker(gate: str | None) -> None:
    """An SDK worker serving `process`; with `gate`, it reports NOT_SERVING while the file `gate` does not
    exist."""
    from armonik.common.channel import create_channel
    from armonik.protogen.common.worker_common_pb2 import HealthCheckReply
    from armonik.worker import ArmoniKWorker

    def health() -> Any:
        if gate is None or os.path.exists(gate):
            return HealthCheckReply.SERVING
        return HealthCheckReply.NOT_SERVING

    agent = "unix://" + os.environ["ComputePlane__AgentChannel__Address"]
    with create_channel(agent, options=(("grpc.default_authority", "localhost"),)) as channel:
        worker = ArmoniKWorker(channel, process, health_check=health)
        worker.start("unix://" + os.environ["ComputePlane__WorkerChannel__Address"])


# -- the backend -------------------------------------------------------------------------------------------


class FakeBackend(ComputeBackend):
    """Tasks from a queue; records what the agent reports; results in a dict, data in real object storage."""

    def __init__(self, objects: FilesystemObjectStorage) -> None:
        self.objects = objects
        self.queue: asyncio.Queue[AcquiredTask] = asyncio.Queue()
        self.results: dict[str, Result] = {}
        self.acquisitions: list[tuple[str, str, str]] = []
        self.started: list[str] = []
        #: (task id, fetched_at, started_at, when the report arrived) of each start reported.
        self.start_reports: list[tuple[str, float | None, float | None, float]] = []
        self.heartbeats: list[list[str]] = []
        self.finished: list[tuple[str, TaskOutcome]] = []
        self.cancelled: set[str] = set()
        self.requeue_released = True
        #: How long `get_results` takes (a slow store makes the staging of inputs slow).
        self.results_delay = 0.0
        self._done: dict[str, asyncio.Event] = {}

    async def acquire(
        self, partition_id: str, agent_id: str, hostname: str, wait_seconds: float
    ) -> AcquiredTask | None:
        self.acquisitions.append((partition_id, agent_id, hostname))
        try:
            return await asyncio.wait_for(self.queue.get(), wait_seconds)
        except asyncio.TimeoutError:
            return None

    async def start(
        self, acquired: AcquiredTask, fetched_at: float | None = None, started_at: float | None = None
    ) -> None:
        self.started.append(acquired.task.task_id)
        self.start_reports.append((acquired.task.task_id, fetched_at, started_at, time.time()))

    async def heartbeat(self, acquired: Sequence[AcquiredTask]) -> set[str]:
        ids = [a.task.task_id for a in acquired]
        self.heartbeats.append(ids)
        return self.cancelled & set(ids)

    async def finish(self, acquired: AcquiredTask, outcome: TaskOutcome) -> None:
        self.finished.append((acquired.task.task_id, outcome))
        if outcome.kind is OutcomeKind.RELEASED and self.requeue_released:
            self.queue.put_nowait(acquired)
        self._event(acquired.task.task_id).set()

    async def get_results(self, result_ids: Sequence[str], acquired: AcquiredTask) -> list[Result]:
        await asyncio.sleep(self.results_delay)
        return [self.results[rid] for rid in result_ids if rid in self.results]

    # -- helpers for the tests ------------------------------------------------------------------------------
    def _event(self, task_id: str) -> asyncio.Event:
        return self._done.setdefault(task_id, asyncio.Event())

    async def add_data(self, session_id: str, data: bytes) -> str:
        result_id, key = new_id(), new_id()
        await self.objects.put_bytes(key, data)
        self.results[result_id] = Result(
            result_id,
            session_id,
            f"data-{result_id}",
            ResultStatus.COMPLETED,
            time.time(),
            size=len(data),
            opaque_id=key.encode(),
        )
        return result_id

    def add_output(self, session_id: str) -> str:
        result_id = new_id()
        self.results[result_id] = Result(
            result_id, session_id, f"out-{result_id}", ResultStatus.CREATED, time.time()
        )
        return result_id

    async def submit(
        self,
        spec: dict[str, Any],
        *,
        deps: Sequence[bytes] = (),
        outputs: int = 1,
        max_duration: float = 30,
        session_id: str = "",
    ) -> AcquiredTask:
        session_id = session_id or "session-" + new_id()
        payload = await self.add_data(session_id, json.dumps(spec).encode())
        dep_ids = [await self.add_data(session_id, data) for data in deps]
        task_id = new_id()
        output_ids = [self.add_output(session_id) for _ in range(outputs)]
        for rid in output_ids:
            self.results[rid].owner_task_id = task_id
        task = Task(
            task_id=task_id,
            session_id=session_id,
            status=TaskStatus.DISPATCHED,
            options=TaskOptions(max_duration=max_duration, max_retries=1, priority=2, partition_id="default"),
            payload_id=payload,
            created_at=time.time(),
            expected_output_ids=output_ids,
            data_dependencies=dep_ids,
            parent_task_ids=[session_id],
            initial_task_id=task_id,
        )
        session_options = TaskOptions(
            max_duration=60,
            max_retries=2,
            priority=5,
            partition_id="default",
            application_name="app",
            options={"session": "s", "level": "session"},
        )
        acquired = AcquiredTask(task, session_options, ["default", "other"], lease=f"lease-{task_id}")
        self.queue.put_nowait(acquired)
        return acquired

    def forget(self, task_id: str) -> None:
        """Wait for the next outcome of the task from now on (a released task runs again)."""
        self._done.pop(task_id, None)

    async def outcome(self, acquired: AcquiredTask, timeout: float = 10) -> TaskOutcome:
        task_id = acquired.task.task_id
        await asyncio.wait_for(self._event(task_id).wait(), timeout)
        return [outcome for tid, outcome in self.finished if tid == task_id][-1]

    async def data(self, outcome: TaskOutcome, result_id: str) -> bytes:
        [completion] = [c for c in outcome.completions if c.result_id == result_id]
        data = await self.objects.get_bytes(completion.opaque_id.decode())
        assert completion.size == len(data)
        return data


# -- fixtures ----------------------------------------------------------------------------------------------


@dataclass
class Sockets:
    directory: Path

    @property
    def agent(self) -> Path:
        return self.directory / "agent.sock"

    @property
    def worker(self) -> Path:
        return self.directory / "worker.sock"


def start_worker(sockets: Sockets, gate: Path | None = None) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "ComputePlane__WorkerChannel__Address": str(sockets.worker),
        "ComputePlane__AgentChannel__Address": str(sockets.agent),
    }
    args = [sys.executable, __file__, "worker"] + ([str(gate)] if gate else [])
    with open(sockets.directory / "worker.log", "ab") as log:
        return subprocess.Popen(args, env=env, stdout=log, stderr=log, cwd=ROOT)


def stop_worker(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(10)


@pytest.fixture(scope="module")
def sockets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sockets]:
    found = Sockets(tmp_path_factory.mktemp("pa"))
    process = start_worker(found)
    yield found
    stop_worker(process)


def agent_settings(tmp_path: Path, sockets: Sockets, **overrides: Any) -> AgentSettings:
    values: dict[str, Any] = {
        "partition_id": "default",
        "shared_cache_folder": tmp_path / "shared",
        "agent_id": "agent-test",
        "hostname": "host-test",
        "grace_delay": 0.5,
        "heartbeat_seconds": 0.1,
        "acquire_wait": 0.1,
        "worker_channel": ChannelSettings(str(sockets.worker)),
        "agent_channel": ChannelSettings(str(sockets.agent)),
        "worker_check_retries": 3,
        "worker_check_delay": 0.1,
        "worker_check_timeout": 5.0,
        "data_directory": tmp_path / "data",
        "data_chunk_max_size": 4096,
    }
    values.update(overrides)
    return AgentSettings(**values)


@dataclass
class Running:
    agent: PollingAgent
    backend: FakeBackend
    settings: AgentSettings
    job: asyncio.Task[None]
    in_process: bool = False

    @property
    def shared(self) -> Path:
        return self.settings.shared_cache_folder

    async def idle(self, timeout: float = 5) -> None:
        """Until the agent is done with its task (its folder removed, which goes with reporting the outcome)."""
        deadline = time.monotonic() + timeout
        while self.agent.current_task_id is not None:
            assert time.monotonic() < deadline, "the agent is still busy"
            await asyncio.sleep(0.01)

    async def stop(self, timeout: float = 10) -> None:
        self.agent.stop()
        await asyncio.wait_for(self.job, timeout)


async def start_agent(settings: AgentSettings, processor: Any = None) -> Running:
    """An agent calling the worker process, or with `processor` the processor itself (in-process)."""
    objects = FilesystemObjectStorage(settings.objects_directory, fsync=False)
    backend = FakeBackend(objects)
    agent = PollingAgent(settings, backend, objects, processor)
    job = asyncio.create_task(agent.run())
    await asyncio.wait_for(agent.serving.wait(), 10)
    return Running(agent, backend, settings, job, processor is not None)


#: How the agent runs the processor: through the worker process, or in its own process (`Worker__Module`).
WORKER_MODES = ("worker", "inprocess")


@pytest.fixture(params=WORKER_MODES)
async def running(request: pytest.FixtureRequest, tmp_path: Path, sockets: Sockets) -> AsyncIterator[Running]:
    started = await start_agent(
        agent_settings(tmp_path, sockets), process if request.param == "inprocess" else None
    )
    yield started
    await started.stop()


def files_left(shared: Path) -> list[Path]:
    """Files left in the shared cache folder (the agent keeps its own, emptied, data folders there, and the
    emptied files it keeps for the next inputs)."""
    return [
        path for path in shared.rglob("*") if not path.is_dir() and not path.parent.name.endswith("-spare")
    ]


def spare_files(running: Running) -> list[Path]:
    folder = running.shared / f".{running.settings.agent_id}-{os.getpid()}-spare"
    return sorted(path for path in folder.iterdir() if path.is_file()) if folder.exists() else []


def spare_folders(running: Running) -> list[Path]:
    folder = running.shared / f".{running.settings.agent_id}-{os.getpid()}-spare"
    return sorted(path for path in folder.iterdir() if path.is_dir()) if folder.exists() else []


# -- tests -------------------------------------------------------------------------------------------------


async def test_inputs_are_staged_and_notified_outputs_become_objects(running: Running) -> None:
    backend = running.backend
    acquired = await backend.submit({"action": "inspect"}, deps=[b"first input", b"second input"])
    task = acquired.task
    outcome = await backend.outcome(acquired)
    assert outcome.kind is OutcomeKind.SUCCESS, outcome.message
    assert [c.result_id for c in outcome.completions] == task.expected_output_ids
    report = json.loads(await backend.data(outcome, task.expected_output_ids[0]))

    # Every input was a file named by its result id before Process was called.
    assert report["files"] == sorted([task.payload_id, *task.data_dependencies])
    assert report["deps"] == dict(zip(task.data_dependencies, ["first input", "second input"], strict=True))
    # Every field of the ProcessRequest.
    assert report["task_id"] == task.task_id
    assert report["session_id"] == task.session_id
    assert report["payload_id"] == task.payload_id
    assert report["expected"] == task.expected_output_ids
    assert Path(report["folder"]).parent == running.shared
    assert report["max_duration"] == 30 and report["priority"] == 2
    assert report["chunk"] == 4096
    # The folder is `<SharedCacheFolder>/<communication token>`, as upstream lays it out (PymoniK builds paths
    # from it), removed afterwards; the output file became the object.
    assert Path(report["folder"]) == running.shared / report["token"]
    await running.idle()
    assert not Path(report["folder"]).exists()
    # A short task reports its start with its outcome rather than in a round trip of its own.
    assert backend.started == []
    assert outcome.started_at is not None and abs(outcome.started_at - time.time()) < 60
    # Inputs staged, then the worker called, then its answer: the agent's own times, in that order.
    assert outcome.fetched_at is not None and outcome.processed_at is not None
    assert outcome.fetched_at <= outcome.started_at <= outcome.processed_at <= time.time()
    assert backend.acquisitions[0] == ("default", "agent-test", "host-test")
    assert not outcome.created_results and not outcome.subtasks


async def test_the_files_of_a_task_become_the_input_files_of_the_next(running: Running) -> None:
    """Emptied and kept, not unlinked: see `SpareFiles`. The next task reads its own data, and nothing of
    the longer data the same files held before."""
    backend = running.backend
    first = await backend.submit({"action": "inspect"}, deps=[b"a long first input" * 100, b"second input"])
    assert (await backend.outcome(first)).kind is OutcomeKind.SUCCESS
    await running.idle()
    kept = spare_files(running)
    assert len(kept) == 3 and all(path.stat().st_size == 0 for path in kept)  # the payload and both inputs
    # The data folder too, emptied, for the next task's token.
    [folder] = spare_folders(running)
    assert list(folder.iterdir()) == []
    folder_inode = folder.stat().st_ino
    inodes = {path.stat().st_ino for path in kept}

    following = await backend.submit({"action": "inspect"}, deps=[b"short", b"x"])
    outcome = await backend.outcome(following)
    assert outcome.kind is OutcomeKind.SUCCESS, outcome.message
    report = json.loads(await backend.data(outcome, following.task.expected_output_ids[0]))
    assert report["deps"] == dict(zip(following.task.data_dependencies, ["short", "x"], strict=True))
    assert Path(report["folder"]).name == report["token"]
    await running.idle()
    assert [path.stat().st_ino for path in spare_folders(running)] == [folder_inode]
    assert {path.stat().st_ino for path in spare_files(running)} == inodes, "the same files, kept again"


async def test_worker_side_results_and_subtasks(running: Running) -> None:
    backend = running.backend
    acquired = await backend.submit({"action": "subtasks"})
    parent = acquired.task
    outcome = await backend.outcome(acquired)
    assert outcome.kind is OutcomeKind.SUCCESS, outcome.message

    created = {r.name: r for r in outcome.created_results}
    assert set(created) == {"child-out", "child-payload", "report"}
    assert all(r.created_by == parent.task_id and r.session_id == parent.session_id for r in created.values())
    assert all(r.status == ResultStatus.CREATED for r in created.values())
    report = json.loads(await backend.data(outcome, created["report"].result_id))
    child_out, child_payload = report["child_out"], report["child_payload"]
    assert (child_out, child_payload) == (created["child-out"].result_id, created["child-payload"].result_id)
    assert await backend.data(outcome, child_payload) == b"child payload data"
    # Only data that was sent is completed: the parent's output is delegated, child-out is to come.
    assert {c.result_id for c in outcome.completions} == {child_payload, created["report"].result_id}

    delegate, producer = outcome.subtasks
    assert report["tasks"] == [delegate.task_id, producer.task_id]
    assert delegate.expected_output_ids == parent.expected_output_ids
    assert delegate.data_dependencies == [child_out]
    assert producer.expected_output_ids == [child_out]
    for sub in outcome.subtasks:
        assert sub.payload_id == child_payload
        assert sub.parent_task_ids == [parent.session_id, parent.task_id]
        assert sub.created_by == parent.task_id
        assert sub.initial_task_id == sub.task_id
        assert sub.status == TaskStatus.CREATING
    # Request options over session defaults, then the task's own on top.
    assert delegate.options == TaskOptions(
        max_duration=60,
        max_retries=2,
        priority=1,
        partition_id="default",
        application_name="app",
        options={"session": "s", "level": "request"},
    )
    assert producer.options == TaskOptions(
        max_duration=7,
        max_retries=1,
        priority=3,
        partition_id="default",
        application_name="app",
        options={"session": "s", "level": "task"},
    )


async def test_output_error_is_an_error_with_the_details(running: Running) -> None:
    acquired = await running.backend.submit({"action": "error", "details": "bad input: 42"})
    outcome = await running.backend.outcome(acquired)
    assert (outcome.kind, outcome.message) == (OutcomeKind.ERROR, "bad input: 42")
    assert not outcome.completions


async def test_exception_in_the_worker_is_a_crash(running: Running) -> None:
    acquired = await running.backend.submit({"action": "raise"})
    outcome = await running.backend.outcome(acquired)
    assert outcome.kind is OutcomeKind.CRASH
    assert outcome.message.startswith("Worker returned error INTERNAL: ")


async def test_a_task_longer_than_max_duration_times_out(running: Running, tmp_path: Path) -> None:
    marker = tmp_path / "wake-up"
    acquired = await running.backend.submit(
        {"action": "sleep", "seconds": 5, "marker": str(marker)}, max_duration=0.4
    )
    began = time.monotonic()
    outcome = await running.backend.outcome(acquired)
    elapsed = time.monotonic() - began
    marker.touch()  # free the worker
    assert outcome.kind is OutcomeKind.TIMEOUT, outcome.message
    assert "DEADLINE_EXCEEDED" in outcome.message
    assert elapsed < 3


async def test_a_long_task_reports_its_start_with_the_agents_own_times(
    running: Running, tmp_path: Path
) -> None:
    """A task still running after a moment has its start reported on its own, a little after the worker was
    called: the report carries when the inputs were staged and the worker called, not the moment it left."""
    marker = tmp_path / "never"
    acquired = await running.backend.submit({"action": "sleep", "seconds": 0.5, "marker": str(marker)})
    outcome = await running.backend.outcome(acquired)
    assert outcome.kind is OutcomeKind.SUCCESS
    [(task_id, fetched_at, started_at, reported_at)] = running.backend.start_reports
    assert task_id == acquired.task.task_id
    assert fetched_at is not None and started_at is not None
    assert fetched_at <= started_at < reported_at
    assert reported_at - started_at >= 0.05, "the report leaves a moment after the start it records"


async def test_a_start_due_while_the_inputs_are_staged_waits_for_the_workers_call(
    running: Running, tmp_path: Path
) -> None:
    """Staging slower than START_REPORT_DELAY: the task is reported started once the worker has it (as
    upstream, after its inputs are fetched), with the times of that call, not when the report came due."""
    running.backend.results_delay = 3 * START_REPORT_DELAY
    submitted = time.time()
    acquired = await running.backend.submit(
        {"action": "sleep", "seconds": 0.5, "marker": str(tmp_path / "no")}
    )
    outcome = await running.backend.outcome(acquired)
    running.backend.results_delay = 0.0
    assert outcome.kind is OutcomeKind.SUCCESS
    [(_, fetched_at, started_at, reported_at)] = running.backend.start_reports
    assert fetched_at is not None and started_at is not None and outcome.processed_at is not None
    assert submitted + 3 * START_REPORT_DELAY <= fetched_at <= started_at <= reported_at
    assert outcome.processed_at - started_at >= 0.5


async def test_cancellation_seen_in_a_heartbeat_cancels_the_run(running: Running, tmp_path: Path) -> None:
    marker = tmp_path / "wake-up"
    acquired = await running.backend.submit({"action": "sleep", "seconds": 5, "marker": str(marker)})
    deadline = time.monotonic() + 5
    while acquired.task.task_id not in running.backend.started and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.2)
    assert [acquired.task.task_id] in running.backend.heartbeats
    running.backend.cancelled.add(acquired.task.task_id)
    began = time.monotonic()
    outcome = await running.backend.outcome(acquired)
    assert time.monotonic() - began < 1.0
    marker.touch()
    assert outcome.kind is OutcomeKind.CANCELLED
    await running.idle()
    assert files_left(running.shared) == []
    assert spare_files(running) == [], "a worker still busy may use its files: they are not kept"


async def test_an_agent_takes_no_task_while_its_worker_is_busy_with_a_cancelled_one(
    running: Running, tmp_path: Path
) -> None:
    """The worker goes on with a cancelled task until it returns; a task taken meanwhile would wait for it
    while another agent could run it."""
    marker = tmp_path / "wake-up"
    long = await running.backend.submit({"action": "sleep", "seconds": 5, "marker": str(marker)})
    deadline = time.monotonic() + 5
    while long.task.task_id not in running.backend.started and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    running.backend.cancelled.add(long.task.task_id)
    assert (await running.backend.outcome(long)).kind is OutcomeKind.CANCELLED

    quick = await running.backend.submit({"action": "inspect"})
    await asyncio.sleep(0.5)
    assert running.backend.queue.qsize() == 1, "the agent took a task its worker cannot run yet"
    marker.touch()  # the worker returns from the cancelled task: the agent takes the next one
    assert (await running.backend.outcome(quick)).kind is OutcomeKind.SUCCESS


async def test_get_resource_data(running: Running) -> None:
    backend = running.backend
    session_id = "session-" + new_id()
    first = await backend.add_data(session_id, b"resource one")
    second = await backend.add_data(session_id, b"resource two")
    acquired = await backend.submit({"action": "resource", "ids": [first, second]}, session_id=session_id)
    outcome = await backend.outcome(acquired)
    assert outcome.kind is OutcomeKind.SUCCESS, outcome.message
    report = json.loads(await backend.data(outcome, acquired.task.expected_output_ids[0]))
    assert report[first] == "resource one" and report[second] == "resource two"
    assert report["missing"][0] == "NOT_FOUND"


async def test_protocol_errors_reach_the_worker(running: Running) -> None:
    acquired = await running.backend.submit({"action": "probe"})
    outcome = await running.backend.outcome(acquired)
    assert outcome.kind is OutcomeKind.SUCCESS, outcome.message
    report = json.loads(await running.backend.data(outcome, acquired.task.expected_output_ids[0]))
    assert report["wrong_token"] == ["INVALID_ARGUMENT", "Wrong communication token"]
    assert report["missing_token"] == ["INVALID_ARGUMENT", "Missing communication token"]
    code, details = report["missing_file"]
    assert code == "INVALID_ARGUMENT" and acquired.task.expected_output_ids[0] in details
    assert report["wrong_partition"][0] == "FAILED_PRECONDITION"
    assert report["common_data"][0] == "UNIMPLEMENTED"
    assert not outcome.subtasks


async def test_the_agent_api_refuses_calls_between_tasks(running: Running) -> None:
    from armonik.protogen.worker.agent_service_pb2_grpc import AgentStub

    request = a.DataRequest(communication_token="t", result_id="r")
    if running.in_process:  # no server: the stub an in-process worker's TaskHandler calls, from a thread
        stub = InProcessAgentStub(running.agent.service, asyncio.get_running_loop())
        with pytest.raises(grpc.RpcError) as info:
            await asyncio.to_thread(stub.GetResourceData, request)
    else:
        async with grpc.aio.insecure_channel(running.settings.agent_channel.target) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await AgentStub(channel).GetResourceData(request)
    assert (info.value.code(), info.value.details()) == (  # type: ignore[attr-defined]
        grpc.StatusCode.UNAVAILABLE,
        "No task is accepting request",
    )


async def test_missing_input_data_is_an_error_and_the_worker_is_not_called(running: Running) -> None:
    backend = running.backend
    acquired = await backend.submit({"action": "inspect"}, deps=[b"lost"])
    # Removed from the backend before the agent gets to it.
    del backend.results[acquired.task.data_dependencies[0]]
    outcome = await backend.outcome(acquired)
    assert outcome.kind is OutcomeKind.ERROR
    assert acquired.task.data_dependencies[0] in outcome.message
    await running.idle()
    assert files_left(running.shared) == []


async def test_shutdown_releases_a_task_still_running_after_the_grace_delay(
    tmp_path: Path, sockets: Sockets
) -> None:
    from armonik_core.polling_agent.__main__ import serve

    settings = agent_settings(tmp_path, sockets, grace_delay=0.3)
    objects = FilesystemObjectStorage(settings.objects_directory, fsync=False)
    backend = FakeBackend(objects)
    backend.requeue_released = False
    marker = tmp_path / "wake-up"
    acquired = await backend.submit({"action": "sleep", "seconds": 5, "marker": str(marker)})
    job = asyncio.create_task(serve(settings, backend, objects))
    deadline = time.monotonic() + 5
    while acquired.task.task_id not in backend.started and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert acquired.task.task_id in backend.started  # so `serve` has installed its signal handlers
    await asyncio.sleep(0.1)
    os.kill(os.getpid(), signal.SIGTERM)
    began = time.monotonic()
    await asyncio.wait_for(job, 5)
    marker.touch()
    assert time.monotonic() - began < 2
    [(task_id, outcome)] = backend.finished
    assert (task_id, outcome.kind) == (acquired.task.task_id, OutcomeKind.RELEASED)
    assert not settings.agent_channel.socket_path.exists()  # type: ignore[union-attr]
    assert not any(settings.shared_cache_folder.iterdir())


async def test_shutdown_lets_a_task_end_within_the_grace_delay(tmp_path: Path, sockets: Sockets) -> None:
    running = await start_agent(agent_settings(tmp_path, sockets, grace_delay=5))
    marker = tmp_path / "wake-up"
    acquired = await running.backend.submit({"action": "sleep", "seconds": 0.5, "marker": str(marker)})
    while acquired.task.task_id not in running.backend.started:
        await asyncio.sleep(0.02)
    running.agent.stop()
    await asyncio.sleep(0.1)
    await running.backend.submit({"action": "inspect"})  # not taken any more
    await asyncio.wait_for(running.job, 5)
    assert [(tid, o.kind) for tid, o in running.backend.finished] == [
        (acquired.task.task_id, OutcomeKind.SUCCESS)
    ]
    assert not running.settings.agent_channel.socket_path.exists()  # type: ignore[union-attr]


async def test_the_agent_waits_for_a_healthy_worker_and_gives_tasks_back_meanwhile(tmp_path: Path) -> None:
    own = Sockets(tmp_path)
    gate = tmp_path / "serving"
    gate.touch()
    worker = start_worker(own, gate)
    try:
        # Validity 0: the health check right before each task, as upstream (not the one started early).
        running = await start_agent(agent_settings(tmp_path, own, worker_check_validity=0))
        try:
            first = await running.backend.submit({"action": "inspect"})
            assert (await running.backend.outcome(first)).kind is OutcomeKind.SUCCESS

            gate.unlink()  # the worker stops serving: the next task goes back, the agent waits
            second = await running.backend.submit({"action": "inspect"})
            released = await running.backend.outcome(second)
            assert released.kind is OutcomeKind.RELEASED
            await asyncio.sleep(0.3)
            acquisitions = len(running.backend.acquisitions)
            await asyncio.sleep(0.3)
            assert len(running.backend.acquisitions) == acquisitions  # not acquiring while unhealthy
            running.backend.forget(second.task.task_id)

            gate.touch()
            outcome = await running.backend.outcome(second)
            assert outcome.kind is OutcomeKind.SUCCESS, outcome.message
        finally:
            await running.stop()
    finally:
        stop_worker(worker)


def test_the_command_refuses_an_invalid_configuration(tmp_path: Path) -> None:
    env = {**os.environ, "ComputePlane__WorkerChannel__SocketType": "carrier-pigeon"}
    done = subprocess.run(
        [sys.executable, "-m", "armonik_core.polling_agent"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert b"ComputePlane__WorkerChannel__SocketType" in done.stderr


if __name__ == "__main__" and sys.argv[1:2] == ["worker"]:
    run_worker(sys.argv[2] if len(sys.argv) > 2 else None)
