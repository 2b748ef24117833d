"""An in-process worker's data goes between its processor and object storage directly, with no files.

A separate worker reads its inputs from files the agent stages in the task's data folder and writes its
outputs there, for the agent to move into object storage. A processor the agent runs itself
(`inprocess.InProcessWorker`) gets `DirectTaskHandler` instead of the SDK's `TaskHandler`: the same class,
with the same attributes and methods, whose data calls reach the agent's object storage instead of files:

- `payload` and `data_dependencies` read each input's object when the processor first asks for it (an input
  it never reads is never read), in its own thread when the storage is local files (`ObjectStorage.blocking_io`:
  no thread switch, no file staged then read back). A storage behind a network client (Redis, S3) belongs to
  the agent's event loop: the runner reads the small inputs there before the call, with what it needs anyway
  (`TaskRunner._stage`), since a read through the loop from the processor's thread adds two thread switches
  to the read's round trip (a small Redis object: 125 us of CPU a read against 90 on the loop, measured
  here); larger ones are read through the loop when asked for, so that a large input the processor does not
  need costs nothing, and one it reads is held once, as the SDK's `payload` holds it.
- `send_results` stores each result's bytes as a new object (a fresh key under the run's prefix, as
  `new_object_keys` gives a file's output), after the checks NotifyResultData applies (the task's expected
  outputs or results it created, in its session, not handed to a subtask), and records it in the run as data
  received (`TaskRun.stored`): completed with the outcome, deleted with a run that fails. A result sent again
  keeps its key, and gets the new data.
- `data_folder` is made on first use only (`TaskRun.ensure_folder`), for a processor that writes or reads
  files of its own there, and by GetResourceData, which writes the file it fetches, as PymoniK expects.

An input missing from object storage raises `FileNotFoundError` in the processor, as a missing file would,
and is recorded on the run: the run is then an ERROR, as when staging finds an input missing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Mapping
from datetime import timedelta
from typing import Any, TypeVar

import grpc
from armonik.common import TaskOptions as SdkTaskOptions
from armonik.protogen.common.objects_pb2 import Configuration
from armonik.worker import TaskHandler
from armonik.worker.taskhandler import LazyLoadDict

from armonik_core.adapters.objects.base import ObjectNotFound, ObjectStorage
from armonik_core.domain.options import TaskOptions
from armonik_core.domain.outcomes import DataCompletion
from armonik_core.polling_agent.agent_service import AgentService, TaskRun, new_object_keys, refusal

T = TypeVar("T")


def rpc_error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    """The error a gRPC call with this status raises (an `grpc.RpcError` with `code()` and `details()`)."""
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details)


def answered(name: str, method: Callable[..., T], *args: Any) -> T:
    """`method(*args)`, the work of Agent call `name` run in the caller's thread; a refusal raises the
    `grpc.RpcError` a remote worker would get."""
    try:
        return method(*args)
    except Exception as exc:
        raise rpc_error(*refusal(name, exc)) from None


class ObjectAccess:
    """The agent's object storage from the processor's thread: in that thread for local files, through the
    agent's event loop otherwise (the storage's client belongs to it)."""

    def __init__(self, objects: ObjectStorage, loop: asyncio.AbstractEventLoop) -> None:
        self._objects = objects
        self._loop = loop

    def _on_loop(self, work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, self._loop).result()

    def read(self, key: str) -> bytes:
        if self._objects.blocking_io:
            return self._objects.read_blocking(key)
        return self._on_loop(self._objects.get_bytes(key))

    def write(self, key: str, data: bytes) -> int:
        if self._objects.blocking_io:
            return self._objects.write_blocking(key, data)
        return self._on_loop(self._objects.put_bytes(key, data))

    def delete(self, keys: list[str]) -> None:
        self._on_loop(self._objects.delete(keys))


class _Inputs(LazyLoadDict):
    """`data_dependencies` as the SDK offers it (keys listed without reading anything, each value read on
    first access and kept), read from object storage."""

    def __init__(self, ids: list[str], read: Callable[[str], bytes]) -> None:
        super().__init__("", ids)
        self._read = read

    def __getitem__(self, key: Any) -> bytes:
        if key not in self._data:
            raise KeyError(key)
        data = self._data[key]
        if data is None:
            data = self._data[key] = self._read(key)
        return data


def sdk_options(options: TaskOptions) -> SdkTaskOptions:
    """The SDK's `TaskOptions` of `options`, equal in every field and type to what the SDK's `TaskHandler`
    parses back from the ProcessRequest a separate worker gets (`TaskOptions.from_message`): the duration
    goes through the same integer seconds and nanoseconds, truncated to microseconds toward zero."""
    seconds = int(options.max_duration)
    nanos = int(round((options.max_duration - seconds) * 1e9))
    micros = nanos // 1000 if nanos >= 0 else -(-nanos // 1000)
    return SdkTaskOptions(
        max_duration=timedelta(seconds=seconds, microseconds=micros),
        max_retries=options.max_retries,
        priority=options.priority,
        partition_id=options.partition_id,
        application_name=options.application_name,
        application_version=options.application_version,
        application_namespace=options.application_namespace,
        application_service=options.application_service,
        engine_type=options.engine_type,
        options=dict(options.options),
    )


class DirectTaskHandler(TaskHandler):
    """The SDK's `TaskHandler`, its data read from and written to object storage (see the module).

    Its attributes are set from the run itself, to the values the SDK's `__init__` would read from the
    task's ProcessRequest: that request, built for the processor only to be parsed back at once, cost a no-op
    task more than a tenth of the agent's work on it."""

    def __init__(
        self,
        run: TaskRun,
        agent_client: Any,
        service: AgentService,
        objects: ObjectAccess,
        chunk_size: int,
    ) -> None:
        task = run.task
        self._client = agent_client
        self.session_id: str = task.session_id
        self.task_id: str = task.task_id
        self.task_options: SdkTaskOptions = sdk_options(task.options)
        self.token: str = run.token
        self.expected_results: list[str] = list(task.expected_output_ids)
        self.configuration: Configuration = Configuration(data_chunk_max_size=chunk_size)
        self.payload_id: str = task.payload_id
        self._folder = run.folder_name
        self._service = service
        self._objects = objects
        self._payload: bytes | None = None
        self.data_dependencies: Mapping[str, bytes] = _Inputs(list(task.data_dependencies), self._input)
        self._run = run

    @property  # type: ignore[override]
    def data_folder(self) -> str:
        """The task's data folder, made when first asked for (a processor that uses none costs none)."""
        self._run.ensure_folder()
        return self._folder

    @data_folder.setter
    def data_folder(self, value: str) -> None:
        self._folder = value

    @property
    def payload(self) -> bytes:
        if self._payload is None:
            self._payload = self._input(self.payload_id)
        return self._payload

    def _input(self, result_id: str) -> bytes:
        run = self._run
        prefetched = run.prefetched.pop(result_id, None)
        if prefetched is not None:
            return prefetched
        key = run.input_keys.get(result_id)
        if key is None:  # not an input of this task: what opening a file of that name would say
            raise FileNotFoundError(f"{result_id} is not an input of task {self.task_id}")
        try:
            return self._objects.read(key)
        except ObjectNotFound as exc:
            run.lost_input = f"Input data unavailable: object {exc} is missing from storage"
            raise FileNotFoundError(f"The data of input {result_id} is missing from object storage") from None

    def send_results(self, results_data: dict[str, bytes | bytearray]) -> None:
        run = answered(
            "NotifyResultData", self._service.check_sent, self.token, self.session_id, results_data
        )
        completions: list[DataCompletion] = []
        try:
            for result_id, data in results_data.items():
                sent = run.stored.get(result_id) if result_id in run.sent else None
                key = sent.opaque_id.decode() if sent else new_object_keys(1, run.acquired.object_prefix)[0]
                size = self._objects.write(key, data if isinstance(data, bytes) else bytes(data))
                completions.append(DataCompletion(result_id, size, key.encode()))
        finally:
            # What was stored is recorded even when a later write failed: a failed run deletes it.
            try:
                answered("NotifyResultData", self._service.record_sent, run, completions)
            except grpc.RpcError:  # the run is over: nobody else deletes these
                self._objects.delete([c.opaque_id.decode() for c in completions])
                raise
