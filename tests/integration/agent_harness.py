"""A real polling agent run in-process against `FakeBackend`, an in-memory ComputeBackend that records what the
agent reports, with a real filesystem object storage, calling a worker process (`agent_worker`) or its
processor in-process. The `sockets` and `running` fixtures (conftest) start them."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tests.integration.agent_worker as agent_worker
from armonik_core.adapters.objects.base import ObjectStorage
from armonik_core.adapters.objects.filesystem import FilesystemObjectStorage
from armonik_core.domain.options import TaskOptions
from armonik_core.domain.outcomes import OutcomeKind, TaskOutcome
from armonik_core.domain.records import Result, Task
from armonik_core.domain.statuses import ResultStatus, TaskStatus
from armonik_core.ids import new_id
from armonik_core.polling_agent.agent import PollingAgent
from armonik_core.polling_agent.backend import AcquiredTask, ComputeBackend
from armonik_core.polling_agent.settings import AgentSettings, ChannelSettings

ROOT = Path(__file__).resolve().parents[2]


def session_options(**options: str) -> TaskOptions:
    """The defaults of the sessions the agent tests' tasks belong to: what a task or a request leaves unset
    falls back to them."""
    # max_duration, max_retries, priority, partition_id, application_name
    return TaskOptions(60, 2, 5, "default", "app", options=options)


class FakeBackend(ComputeBackend):
    """Tasks from a queue; records what the agent reports; results in a dict, data in real object storage."""

    def __init__(self, objects: ObjectStorage) -> None:
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
        defaults = session_options(session="s", level="session")
        acquired = AcquiredTask(task, defaults, ["default", "other"], lease=f"lease-{task_id}")
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
    args = [sys.executable, agent_worker.__file__, "worker"] + ([str(gate)] if gate else [])
    with open(sockets.directory / "worker.log", "ab") as log:
        return subprocess.Popen(args, env=env, stdout=log, stderr=log, cwd=ROOT)


def stop_worker(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(10)


def serving_worker(directory: Path) -> Iterator[Sockets]:
    """A worker process serving on sockets in `directory`, killed afterwards."""
    found = Sockets(directory)
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


async def start_agent(
    settings: AgentSettings, processor: Any = None, objects: ObjectStorage | None = None
) -> Running:
    """An agent calling the worker process, or with `processor` the processor itself (in-process); its
    objects in files, or in `objects`."""
    objects = objects or FilesystemObjectStorage(settings.objects_directory, fsync=False)
    backend = FakeBackend(objects)
    agent = PollingAgent(settings, backend, objects, processor)
    job = asyncio.create_task(agent.run())
    await asyncio.wait_for(agent.serving.wait(), 10)
    return Running(agent, backend, settings, job, processor is not None)


#: How the agent runs the processor: through the worker process, or in its own process (`Worker__Module`).
WORKER_MODES = ("worker", "inprocess")


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
