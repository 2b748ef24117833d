"""Events service: the current state of a session's tasks and results, then every change, forever.

The subscription to the store's change feed starts before the replay, so a change committed during the
replay is never missed (it may be seen twice: once replayed, once live, which clients tolerate since an
event carries a full status). The stream ends only when the client cancels it: the official SDK takes a
normal end of stream as "everything arrived".
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from types import SimpleNamespace
from typing import Any, TypeAlias

import grpc
from armonik.protogen.client.events_service_pb2_grpc import EventsServicer
from armonik.protogen.common import events_common_pb2 as pb

from armonik_core.control_plane import filters
from armonik_core.control_plane.context import Backends, ClientService, Ctx
from armonik_core.control_plane.errors import streaming
from armonik_core.domain.changes import Change
from armonik_core.domain.filters import Condition, FieldKind, FieldRef, Filter, ListQuery, Op, compile_matcher
from armonik_core.domain.records import Result, Task
from armonik_core.domain.statuses import EventType

Response: TypeAlias = pb.EventSubscriptionResponse
PAGE = 1000

_TASK_EVENTS = {EventType.NEW_TASK, EventType.TASK_STATUS_UPDATE}
#: Fields a change carries without loading the record: a filter on them is evaluated at once.
_CHANGE_FIELDS = {"session_id", "status", "task_id", "result_id"}


def new_task_event(task: Task) -> Response:
    new_task = Response.NewTask(
        task_id=task.task_id,
        payload_id=task.payload_id,
        origin_task_id=task.created_by,
        status=int(task.status),  # type: ignore[arg-type]
        expected_output_keys=task.expected_output_ids,
        data_dependencies=task.data_dependencies,
        retry_of_ids=task.retry_of_ids,
        parent_task_ids=task.parent_task_ids,
    )
    return Response(session_id=task.session_id, new_task=new_task)


def new_result_event(result: Result) -> Response:
    status = int(result.status)
    new_result = Response.NewResult(
        result_id=result.result_id,
        owner_id=result.owner_task_id,
        status=status,  # type: ignore[arg-type]
    )
    return Response(session_id=result.session_id, new_result=new_result)


def change_event(change: Change) -> Response:
    if change.kind is EventType.NEW_TASK and isinstance(change.record, Task):
        return new_task_event(change.record)
    if change.kind is EventType.NEW_RESULT and isinstance(change.record, Result):
        return new_result_event(change.record)
    update: dict[str, Any]
    if change.kind is EventType.TASK_STATUS_UPDATE:
        update = {
            "task_status_update": Response.TaskStatusUpdate(task_id=change.entity_id, status=change.status)
        }
    elif change.kind is EventType.RESULT_STATUS_UPDATE:
        update = {
            "result_status_update": Response.ResultStatusUpdate(
                result_id=change.entity_id, status=change.status
            )
        }
    else:
        owners = {"previous_owner_id": change.previous_owner, "current_owner_id": change.current_owner}
        update = {"result_owner_update": Response.ResultOwnerUpdate(result_id=change.entity_id, **owners)}
    return Response(session_id=change.session_id, **update)


def _fields_of(flt: Filter) -> set[str]:
    return {c.field.path for conj in flt.any_of for c in conj}


def _named_ids(flt: Filter, field: str) -> list[str] | None:
    """The ids a filter names when it is nothing but `field == id` alternatives, which is how the SDK waits
    for results (`wait_for_result_availability`): the replay then looks those records up by key, on the
    event loop, instead of listing the session (a count and a page on a reader thread) for each wait."""
    ids = []
    for conjunction in flt.any_of:
        if len(conjunction) != 1:
            return None
        (condition,) = conjunction
        if condition.field.path != field or condition.op is not Op.EQ or not isinstance(condition.value, str):
            return None
        ids.append(condition.value)
    return list(dict.fromkeys(ids)) or None


def _scoped(session_id: str, flt: Filter) -> Filter:
    """The filter restricted to one session (added to every conjunction of the DNF)."""
    in_session = Condition(FieldRef("session_id"), FieldKind.STRING, Op.EQ, session_id)
    if flt.is_empty:
        return Filter.of([in_session])
    return Filter(tuple((in_session, *conj) for conj in flt.any_of))


class _Subscription:
    def __init__(self, request: pb.EventSubscriptionRequest) -> None:
        self.session_id = request.session_id
        wanted = {EventType(int(e)) for e in request.returned_events if int(e) != 0}
        self.wanted = wanted or set(EventType) - {EventType.UNSPECIFIED}
        self.task_filter = filters.task_filter(request.tasks_filters)
        self.result_filter = filters.result_filter(request.results_filters)
        self.task_matcher = compile_matcher(self.task_filter)
        self.result_matcher = compile_matcher(self.result_filter)
        #: Whether a change carries every field the filter reads (no need to load the record).
        self.tasks_need_records = not _fields_of(self.task_filter) <= _CHANGE_FIELDS
        self.results_need_records = not _fields_of(self.result_filter) <= _CHANGE_FIELDS
        #: Batches of changes; None when the server shuts down.
        self.inbox: asyncio.Queue[list[Change] | None] = asyncio.Queue()

    def relevant(self, changes: Iterable[Change]) -> list[Change]:
        """The changes of its session (all of `changes` are) of the kinds the subscription wants."""
        return [c for c in changes if c.kind in self.wanted]


class EventsService(ClientService, EventsServicer):
    """Streams are indexed by session: the store's commits reach only the streams of the sessions they
    touch, and a stream wakes up only for a change it wants. Every stream listening to every commit made
    each waiting client cost the control plane a wake-up per commit of any session."""

    def __init__(self, backends: Backends) -> None:
        super().__init__(backends)
        self._by_session: dict[str, set[_Subscription]] = {}
        backends.state.add_listener(self._deliver)

    def shutdown(self) -> None:
        """End every open stream with UNAVAILABLE, so clients reconnect instead of waiting out the grace
        period; an error and not a normal end, which the SDK would take for "everything arrived"."""
        for subs in self._by_session.values():
            for sub in subs:
                sub.inbox.put_nowait(None)

    def _deliver(self, changes: list[Change]) -> None:
        if not self._by_session:
            return
        touched: dict[str, list[Change]] = {}
        for change in changes:
            if change.session_id in self._by_session:
                touched.setdefault(change.session_id, []).append(change)
        for session_id, session_changes in touched.items():
            for sub in self._by_session[session_id]:
                relevant = sub.relevant(session_changes)
                if relevant:
                    sub.inbox.put_nowait(relevant)

    @streaming
    async def GetEvents(self, request: pb.EventSubscriptionRequest, context: Ctx) -> AsyncIterator[Response]:
        await self._b.state.get_session(request.session_id)
        sub = _Subscription(request)
        self._by_session.setdefault(sub.session_id, set()).add(sub)
        try:
            async for event in self._replay(sub):
                yield event
            while True:
                changes = await sub.inbox.get()
                if changes is None:
                    await context.abort(grpc.StatusCode.UNAVAILABLE, "The control plane is shutting down")
                    return
                for event in await self._filtered(sub, changes):
                    yield event
        finally:
            subs = self._by_session.get(sub.session_id)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._by_session[sub.session_id]

    async def _replay(self, sub: _Subscription) -> AsyncIterator[Response]:
        state = self._b.state
        if EventType.NEW_TASK in sub.wanted:
            async for task in self._existing(
                sub, sub.task_filter, "task_id", state.get_tasks, state.list_tasks
            ):
                yield new_task_event(task)
        if EventType.NEW_RESULT in sub.wanted:
            async for result in self._existing(
                sub, sub.result_filter, "result_id", state.get_results, state.list_results
            ):
                yield new_result_event(result)

    async def _existing(
        self, sub: _Subscription, flt: Filter, id_field: str, get_fn: Any, list_fn: Any
    ) -> AsyncIterator[Any]:
        """The session's records the filter selects: looked up by key when it only names ids."""
        ids = _named_ids(flt, id_field)
        if ids is None:
            async for record in self._pages(list_fn, _scoped(sub.session_id, flt)):
                yield record
            return
        for record in await get_fn(ids):
            if record.session_id == sub.session_id:
                yield record

    @staticmethod
    async def _pages(list_fn: Any, flt: Filter) -> AsyncIterator[Any]:
        page = 0
        while True:
            total, items = await list_fn(ListQuery(filter=flt, page=page, page_size=PAGE))
            for item in items:
                yield item
            page += 1
            if page * PAGE >= total or not items:
                return

    async def _filtered(self, sub: _Subscription, changes: list[Change]) -> list[Response]:
        """Changes passing the subscription's filters, loading full records only when a filter needs them."""
        records = await self._records_for(sub, changes)
        events = []
        for change in changes:
            is_task = change.kind in _TASK_EVENTS
            matcher = sub.task_matcher if is_task else sub.result_matcher
            record = records.get(change.entity_id) or _view_of(change, is_task)
            if record is not None and matcher(record):
                events.append(change_event(change))
        return events

    async def _records_for(self, sub: _Subscription, changes: list[Change]) -> dict[str, Any]:
        records: dict[str, Any] = {}
        task_ids = [c.entity_id for c in changes if c.kind is EventType.TASK_STATUS_UPDATE]
        result_ids = [
            c.entity_id
            for c in changes
            if c.kind in (EventType.RESULT_STATUS_UPDATE, EventType.RESULT_OWNER_UPDATE)
        ]
        if task_ids and sub.tasks_need_records:
            records.update({t.task_id: t for t in await self._b.state.get_tasks(task_ids)})
        if result_ids and sub.results_need_records:
            records.update({r.result_id: r for r in await self._b.state.get_results(result_ids)})
        for change in changes:
            if change.record is not None:
                records[change.entity_id] = change.record
        return records


def _view_of(change: Change, is_task: bool) -> SimpleNamespace:
    """The fields a change carries, shaped like the record a filter expects."""
    key = "task_id" if is_task else "result_id"
    view = SimpleNamespace(session_id=change.session_id, status=change.status, **{key: change.entity_id})
    if change.kind is EventType.RESULT_OWNER_UPDATE:
        view.owner_task_id = change.current_owner
    return view
