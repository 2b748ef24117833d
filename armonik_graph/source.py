"""Where a session's graph comes from: the official API only (Tasks, Results and Events services).

The pages and events are kept as the protobuf messages the stubs return (no conversion to the SDK's objects,
which costs more than the parsing for a million tasks), so any ArmoniK cluster serves them, upstream's included.

`LiveGraph` keeps a `SessionGraph` current without ever reading the session again: it subscribes to the
session's events first and buffers them, lists the tasks and results page by page, applies the buffered
events (idempotent and order-free, see `model`), then applies each new event as it arrives. A change made
while the pages are read is thus seen at least once, by the listing or by the stream.

Events carry no timestamps, and the time an event arrives is not the time of the change: an agent reports a
task's start (PROCESSING) only once it has been running for a moment (a short task reports it with its
outcome), so the arrival of PROCESSING is late by that delay, and outcomes reported in batches arrive
together. A task that ends while followed therefore has its times read back from its record
(`ListTasksDetailed` by id, `TIMES_BATCH` ids a request, at most `MAX_TIMES_FETCHED` tasks a batch of events):
its started_at, processed_at and ended_at are the store's, as a rebuild would give them.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
from armonik.common import Result, Task
from armonik.protogen.client.events_service_pb2_grpc import EventsStub
from armonik.protogen.client.results_service_pb2_grpc import ResultsStub
from armonik.protogen.client.tasks_service_pb2_grpc import TasksStub
from armonik.protogen.common.events_common_pb2 import EventsEnum, EventSubscriptionRequest
from armonik.protogen.common.results_common_pb2 import ListResultsRequest
from armonik.protogen.common.sort_direction_pb2 import SortDirection
from armonik.protogen.common.task_status_pb2 import TaskStatus
from armonik.protogen.common.tasks_common_pb2 import GetTaskRequest, ListTasksRequest

from armonik_graph.model import SessionGraph

log = logging.getLogger("armonik_graph")

#: Rows asked per page: large pages keep the round trips few; a server may cap it (then pages are smaller).
PAGE_SIZE = 1000
#: Error outputs fetched per batch of events (see `LiveGraph._fetch_errors`).
MAX_ERRORS_FETCHED = 100
#: Ended tasks whose recorded times are read back per batch of events, and ids per request (see `LiveGraph`).
MAX_TIMES_FETCHED = 2000
TIMES_BATCH = 200
#: Statuses a task ends in (its record then holds every timestamp of the run).
_ENDED = frozenset(
    {
        TaskStatus.TASK_STATUS_COMPLETED,
        TaskStatus.TASK_STATUS_ERROR,
        TaskStatus.TASK_STATUS_TIMEOUT,
        TaskStatus.TASK_STATUS_CANCELLED,
        TaskStatus.TASK_STATUS_RETRIED,
    }
)
_ERRORS = frozenset(
    {TaskStatus.TASK_STATUS_ERROR, TaskStatus.TASK_STATUS_TIMEOUT, TaskStatus.TASK_STATUS_RETRIED}
)
ALL_EVENTS = [
    EventsEnum.EVENTS_ENUM_NEW_TASK,
    EventsEnum.EVENTS_ENUM_TASK_STATUS_UPDATE,
    EventsEnum.EVENTS_ENUM_NEW_RESULT,
    EventsEnum.EVENTS_ENUM_RESULT_STATUS_UPDATE,
    EventsEnum.EVENTS_ENUM_RESULT_OWNER_UPDATE,
]


class ApiSource:
    """Pages, events and single tasks of one cluster, through the official gRPC stubs."""

    def __init__(self, channel: grpc.Channel, page_size: int = PAGE_SIZE) -> None:
        self.channel = channel
        self.page_size = page_size
        self._tasks = TasksStub(channel)
        self._results = ResultsStub(channel)
        self._events = EventsStub(channel)

    def task_pages(self, session_id: str) -> Iterator[list[Any]]:
        """`TaskDetailed` pages of the session, by task id, with their error output."""
        filters = (Task.session_id == session_id).to_message()
        sort = ListTasksRequest.Sort(field=Task.id.field, direction=SortDirection.SORT_DIRECTION_ASC)
        return self._pages(
            lambda page: self._tasks.ListTasksDetailed(
                ListTasksRequest(
                    page=page, page_size=self.page_size, filters=filters, sort=sort, with_errors=True
                )
            ),
            "tasks",
        )

    def tasks_by_id(self, task_ids: list[str]) -> list[Any]:
        """`TaskDetailed` records of these tasks (one request: the ids are few, see `TIMES_BATCH`)."""
        if not task_ids:
            return []
        wanted = Task.id == task_ids[0]
        for task_id in task_ids[1:]:
            wanted = wanted | (Task.id == task_id)
        sort = ListTasksRequest.Sort(field=Task.id.field, direction=SortDirection.SORT_DIRECTION_ASC)
        request = ListTasksRequest(page=0, page_size=len(task_ids), filters=wanted.to_message(), sort=sort)
        return list(self._tasks.ListTasksDetailed(request).tasks)

    def result_pages(self, session_id: str) -> Iterator[list[Any]]:
        """`ResultRaw` pages of the session, by result id."""
        filters = (Result.session_id == session_id).to_message()
        sort = ListResultsRequest.Sort(
            field=Result.result_id.field, direction=SortDirection.SORT_DIRECTION_ASC
        )
        return self._pages(
            lambda page: self._results.ListResults(
                ListResultsRequest(page=page, page_size=self.page_size, filters=filters, sort=sort)
            ),
            "results",
        )

    def _pages(self, read: Callable[[int], Any], rows: str) -> Iterator[list[Any]]:
        """The rows (the field `rows` of the answers `read(page)` gives) page by page, from the first page until
        an empty one or the last of the listing's total."""
        page = 0
        while True:
            response = read(page)
            found = getattr(response, rows)
            if found:
                yield list(found)
            page += 1
            if not found or page * self.page_size >= response.total:
                return

    def subscribe(self, session_id: str) -> Any:
        """The session's event stream (a gRPC call: iterate it, `cancel()` it)."""
        return self._events.GetEvents(
            EventSubscriptionRequest(session_id=session_id, returned_events=ALL_EVENTS)
        )

    def task_error(self, task_id: str) -> str:
        """The error output of one task (for a failure learnt from an event, which carries no message)."""
        task = self._tasks.GetTask(GetTaskRequest(task_id=task_id)).task
        return str(task.output.error or task.status_message)


def rebuild(source: ApiSource, session_id: str) -> SessionGraph:
    """The session's graph from its pages (a snapshot; `LiveGraph` also follows it)."""
    graph = SessionGraph(session_id)
    for page in source.task_pages(session_id):
        graph.add_task_records(page)
    for page in source.result_pages(session_id):
        graph.add_result_records(page)
    return graph


def fill_errors(graph: SessionGraph, source: ApiSource, nodes: list[int]) -> None:
    """Fetch the error message of failed tasks the graph learnt of from events only."""
    for node in nodes:
        if node not in graph.errors and graph.is_task(node):
            try:
                graph.errors[node] = source.task_error(graph.ids[node])
            except grpc.RpcError as exc:
                graph.errors[node] = f"(error output unavailable: {exc.code().name})"


class LiveGraph:
    """A `SessionGraph` rebuilt once, then kept current from the session's events (see the module notes).

    Readers take `lock` while they read `graph`; `version` counts the events applied, and `changed` is
    notified after each batch, so that a view can wait for the next change.
    """

    def __init__(self, source: ApiSource, session_id: str, subscribe_wait: float = 2.0) -> None:
        self.source = source
        self.session_id = session_id
        self.graph = SessionGraph(session_id)
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.version = 0
        self.ready = threading.Event()
        self.error: BaseException | None = None
        #: times the stream broke and the graph was rebuilt
        self.reconnects = 0
        self._subscribe_wait = subscribe_wait
        self._buffer: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._call: Any = None
        self._threads: list[threading.Thread] = []
        self._stopped = threading.Event()

    def start(self) -> LiveGraph:
        """Subscribe, then rebuild and follow in the background; `ready` is set once rebuilt."""
        self._subscribe()
        worker = threading.Thread(
            target=self._in_context(self._run), name="armonik-graph-follow", daemon=True
        )
        self._threads.append(worker)
        worker.start()
        return self

    def _subscribe(self) -> None:
        self._buffer = queue.SimpleQueue()
        self._call = self.source.subscribe(self.session_id)
        reader = threading.Thread(
            target=self._in_context(self._read),
            args=(self._call, self._buffer),
            name="armonik-graph-events",
            daemon=True,
        )
        self._threads.append(reader)
        reader.start()

    @staticmethod
    def _in_context(run: Callable[..., None]) -> Callable[..., None]:
        """`run` in a copy of the starting thread's context: a channel's interceptors that read context
        variables (who the calls are made for) see the same values in the background threads."""
        return functools.partial(contextvars.copy_context().run, run)

    def wait_ready(self, timeout: float | None = None) -> bool:
        done = self.ready.wait(timeout)
        if self.error is not None:
            raise self.error
        return done

    def stop(self) -> None:
        self._stopped.set()
        if self._call is not None:
            self._call.cancel()
        self._buffer.put(None)
        for thread in self._threads:
            thread.join(5)

    def __enter__(self) -> LiveGraph:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_for(self, predicate: Callable[[SessionGraph], bool], timeout: float) -> bool:
        """Block until `predicate(graph)` holds (checked under the lock after each batch of events)."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while not (self.ready.is_set() and predicate(self.graph)):
                left = deadline - time.monotonic()
                if left <= 0 or self.error is not None:
                    return False
                self.changed.wait(min(left, 0.5))
            return True

    # -- background ---------------------------------------------------------------------------------------------
    def _read(self, call: Any, buffer: queue.SimpleQueue[Any]) -> None:
        try:
            for event in call:
                buffer.put(event)
        except grpc.RpcError as exc:
            if not self._stopped.is_set() and exc.code() != grpc.StatusCode.CANCELLED:
                log.warning("event stream of session %s ended: %s", self.session_id, exc.details())
        finally:
            buffer.put(None)

    def _run(self) -> None:
        """Rebuild, follow; when the stream breaks (a restarted control plane), subscribe and rebuild again."""
        while not self._stopped.is_set():
            try:
                if self._call is None:
                    self._subscribe()
                self._wait_subscribed()
                fresh = rebuild(self.source, self.session_id)
                with self.changed:
                    self.graph = fresh
                    self._drain(block=False)
                    self.ready.set()
                    self.changed.notify_all()
                while not self._stopped.is_set() and self._drain(block=True):
                    pass
            except grpc.RpcError as exc:
                if not self.ready.is_set():  # never rebuilt: the caller must know (wrong endpoint, ...)
                    self._fail(exc)
                    return
                log.warning(
                    "session %s: %s; subscribing and rebuilding again", self.session_id, exc.details()
                )
            except BaseException as exc:  # surfaced by wait_ready / wait_for
                self._fail(exc)
                return
            if self._call is not None:
                self._call.cancel()
                self._call = None
            if not self._stopped.is_set():
                self.reconnects += 1
                self._stopped.wait(1.0)

    def _fail(self, exc: BaseException) -> None:
        self.error = exc
        self.ready.set()
        with self.changed:
            self.changed.notify_all()

    def _wait_subscribed(self) -> None:
        """Until the server answered the subscription (its headers), so that the listing starts after it."""
        done = threading.Event()
        self._call.add_done_callback(lambda _: done.set())

        def headers() -> None:
            self._call.initial_metadata()
            done.set()

        waiter = threading.Thread(target=headers, daemon=True)
        waiter.start()
        done.wait(self._subscribe_wait)

    def _drain(self, block: bool) -> bool:
        """Apply what the buffer holds (waiting for one event when `block`); False once the stream ended."""
        events = []
        try:
            if block:
                events.append(self._buffer.get(timeout=0.5))
            while True:
                events.append(self._buffer.get_nowait())
        except queue.Empty:
            pass
        ended = any(e is None for e in events)
        live = [e for e in events if e is not None]
        if live:
            records = self._ended_records(live)  # read first: a task shows as ended with its recorded times
            with self.changed:
                failed = self._apply(live, records)
            self._fetch_errors(failed)
        return not ended

    def _apply(self, events: list[Any], records: list[Any]) -> list[str]:
        """Apply a batch, then the records of the tasks that ended in it; returns the tasks that failed in it
        (their error output is not in events)."""
        failed = []
        for event in events:
            self.graph.apply_event(event)  # stamped with the time it is applied: events carry none
            if (
                event.WhichOneof("update") == "task_status_update"
                and event.task_status_update.status in _ERRORS
            ):
                failed.append(event.task_status_update.task_id)
        self.graph.add_task_times(records)
        self.version += len(events)
        self.changed.notify_all()
        return failed

    def _ended_records(self, events: list[Any]) -> list[Any]:
        """The records of the tasks that end in this batch of events (at most `MAX_TIMES_FETCHED`: beyond, a
        mass of completions keeps the times its events were applied), read outside the lock."""
        ended = [
            e.task_status_update.task_id
            for e in events
            if e.WhichOneof("update") == "task_status_update" and e.task_status_update.status in _ENDED
        ]
        wanted = list(dict.fromkeys(ended))[:MAX_TIMES_FETCHED]
        records: list[Any] = []
        for first in range(0, len(wanted), TIMES_BATCH):
            try:
                records += self.source.tasks_by_id(wanted[first : first + TIMES_BATCH])
            except grpc.RpcError as exc:
                log.info("times of %d ended tasks unavailable: %s", len(wanted), exc.details())
                break
        return records

    def _fetch_errors(self, task_ids: list[str]) -> None:
        """The error outputs of tasks that just failed, fetched one by one outside the lock (at most
        `MAX_ERRORS_FETCHED` a batch: a mass failure is read from the listing of a rebuild instead)."""
        found = {}
        for task_id in task_ids[:MAX_ERRORS_FETCHED]:
            try:
                found[task_id] = self.source.task_error(task_id)
            except grpc.RpcError as exc:
                log.info("error output of task %s unavailable: %s", task_id, exc.details())
        if found:
            with self.changed:
                for task_id, message in found.items():
                    node = self.graph.index(task_id)
                    if node is not None:
                        self.graph.errors[node] = message
                self.changed.notify_all()
