"""The console's tables and actions: sessions, tasks, results, partitions, applications, through the official API.

Filtering, sorting and paging are the API's own (`List*` requests with `filters`, `sort`, `page`, `page_size`):
the console never loads a whole table to slice it, so a session of a million tasks pages like a small one. Rows
are the API's messages as JSON (`MessageToDict`, field names as in the protos), so the page shows what the
Admin GUI and the CLI see. Filters are built with the SDK's filter objects (`armonik.common`) where the SDK has
them, by hand for applications (the SDK has none).

Actions change the cluster, so they are POSTs that must carry the `x-armonik-console` header: a page of another
origin cannot send it without a CORS preflight, which the console never grants (no cross-site request forgery
through a browser that can reach the console). The API's errors come back with its status and message.

    GET  /api/tables/{sessions|tasks|results|partitions|applications}?page=&page_size=&sort=&order=&status=
         &id=&exact=&session=&application=
    POST /api/sessions/{id}/{cancel|pause|resume|close|purge|delete}
    POST /api/tasks/{id}/cancel
    GET  /api/tasks/{id}                      task detail (timestamps, status message, output, retries, pod)
    GET  /api/results/{id}/data               the result's bytes, streamed from DownloadResultData
    GET  /api/health                          HealthChecksService.CheckHealth
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
from armonik.common import Partition, Result, ResultStatus, Session, SessionStatus, Task, TaskStatus
from armonik.common.filter import Filter
from armonik.protogen.client.applications_service_pb2_grpc import ApplicationsStub
from armonik.protogen.client.health_checks_service_pb2_grpc import HealthChecksServiceStub
from armonik.protogen.client.partitions_service_pb2_grpc import PartitionsStub
from armonik.protogen.client.results_service_pb2_grpc import ResultsStub
from armonik.protogen.client.sessions_service_pb2_grpc import SessionsStub
from armonik.protogen.client.tasks_service_pb2_grpc import TasksStub
from armonik.protogen.common import (
    applications_common_pb2,
    applications_fields_pb2,
    applications_filters_pb2,
    filters_common_pb2,
    health_checks_common_pb2,
    partitions_common_pb2,
    results_common_pb2,
    sessions_common_pb2,
    tasks_common_pb2,
)
from armonik.protogen.common.sort_direction_pb2 import SortDirection
from google.protobuf.json_format import MessageToDict
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

#: The header an action must carry (see the module notes).
ACTION_HEADER = "x-armonik-console"
MAX_PAGE_SIZE = 500
SESSION_ACTIONS = ("cancel", "pause", "resume", "close", "purge", "delete")

#: gRPC status of an API error -> the HTTP status the console answers with.
HTTP_STATUS = {
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}


class BadQuery(ValueError):
    """A query string the console cannot turn into a request: a 400 with this message."""


@dataclass(frozen=True)
class Query:
    """What the page asks of a table."""

    page: int = 0
    page_size: int = 50
    sort: str = ""
    descending: bool = True
    status: str = ""
    id: str = ""
    exact: bool = False
    session: str = ""
    application: str = ""

    @staticmethod
    def parse(params: Any) -> Query:
        try:
            page, size = int(params.get("page", "0")), int(params.get("page_size", "50"))
        except ValueError as exc:
            raise BadQuery("page and page_size must be whole numbers") from exc
        if page < 0 or not 1 <= size <= MAX_PAGE_SIZE:
            raise BadQuery(f"page must be >= 0 and page_size between 1 and {MAX_PAGE_SIZE}")
        order = params.get("order", "desc")
        if order not in ("asc", "desc"):
            raise BadQuery("order must be asc or desc")
        return Query(
            page=page,
            page_size=size,
            sort=params.get("sort", ""),
            descending=order == "desc",
            status=params.get("status", "").strip().upper(),
            id=params.get("id", "").strip(),
            exact=params.get("exact", "") in ("1", "true"),
            session=params.get("session", "").strip(),
            application=params.get("application", "").strip(),
        )

    @property
    def direction(self) -> int:
        return SortDirection.SORT_DIRECTION_DESC if self.descending else SortDirection.SORT_DIRECTION_ASC


def _status(enum: Any, name: str) -> Any:
    value = getattr(enum, name, None)
    if value is None or not isinstance(value, int):
        raise BadQuery(f"unknown status {name!r}")
    return value


def _both(left: Filter | None, right: Filter | None) -> Filter | None:
    if left is None or right is None:
        return left if right is None else right
    return left & right


def _id_filter(field: Any, query: Query) -> Filter | None:
    if not query.id:
        return None
    return field == query.id if query.exact else field.contains(query.id)


def _sort_field(fields: dict[str, Any], query: Query, default: str) -> Any:
    name = query.sort or default
    if name not in fields:
        raise BadQuery(f"cannot sort by {name!r}: one of {', '.join(sorted(fields))}")
    return fields[name].field


def _rows(messages: Any) -> list[dict[str, Any]]:
    return [MessageToDict(m, preserving_proto_field_name=True) for m in messages]


SESSION_SORT = {"created_at": Session.created_at, "session_id": Session.session_id, "status": Session.status}
TASK_SORT = {
    "created_at": Task.created_at,
    "task_id": Task.id,
    "status": Task.status,
    "ended_at": Task.ended_at,
    "started_at": Task.started_at,
}
RESULT_SORT = {
    "created_at": Result.created_at,
    "result_id": Result.result_id,
    "status": Result.status,
    "name": Result.name,
}
PARTITION_SORT = {"partition_id": Partition.id, "priority": Partition.priority}
APPLICATION_FIELDS = {
    "name": applications_fields_pb2.APPLICATION_RAW_ENUM_FIELD_NAME,
    "version": applications_fields_pb2.APPLICATION_RAW_ENUM_FIELD_VERSION,
    "namespace": applications_fields_pb2.APPLICATION_RAW_ENUM_FIELD_NAMESPACE,
    "service": applications_fields_pb2.APPLICATION_RAW_ENUM_FIELD_SERVICE,
}


def _application_filters(query: Query) -> Any:
    if not query.application:
        return applications_filters_pb2.Filters()
    field = applications_fields_pb2.ApplicationField(
        application_field=applications_fields_pb2.ApplicationRawField(field=APPLICATION_FIELDS["name"])
    )
    condition = applications_filters_pb2.FilterField(
        field=field,
        filter_string=filters_common_pb2.FilterString(
            value=query.application, operator=filters_common_pb2.FILTER_STRING_OPERATOR_CONTAINS
        ),
    )
    return applications_filters_pb2.Filters(
        **{"or": [applications_filters_pb2.FiltersAnd(**{"and": [condition]})]}
    )


@dataclass(frozen=True)
class _Table:
    """A table listed by a `List*` call: its request type, the answer's repeated field, the fields it sorts on
    and the one it sorts on by default."""

    request: Any
    rows: str
    sorts: dict[str, Any]
    default_sort: str


_SESSIONS = _Table(sessions_common_pb2.ListSessionsRequest, "sessions", SESSION_SORT, "created_at")
_TASKS = _Table(tasks_common_pb2.ListTasksRequest, "tasks", TASK_SORT, "created_at")
_RESULTS = _Table(results_common_pb2.ListResultsRequest, "results", RESULT_SORT, "created_at")
_PARTITIONS = _Table(
    partitions_common_pb2.ListPartitionsRequest, "partitions", PARTITION_SORT, "partition_id"
)


def _listing(
    call: Callable[[Any], Any], table: _Table, where: Filter | None, query: Query, **extra: Any
) -> dict[str, Any]:
    """One page of `table` through `call`."""
    answer = call(
        table.request(
            page=query.page,
            page_size=query.page_size,
            filters=where.to_message() if where is not None else None,
            sort=table.request.Sort(
                field=_sort_field(table.sorts, query, table.default_sort), direction=query.direction
            ),
            **extra,
        )
    )
    return {"total": answer.total, "rows": _rows(getattr(answer, table.rows))}


class Tables:
    """The blocking calls behind the console's tables and actions (run in Starlette's thread pool)."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.sessions = SessionsStub(channel)
        self.tasks = TasksStub(channel)
        self.results = ResultsStub(channel)
        self.partitions = PartitionsStub(channel)
        self.applications = ApplicationsStub(channel)
        self.health = HealthChecksServiceStub(channel)

    def list_sessions(self, query: Query) -> dict[str, Any]:
        where = _both(
            _id_filter(Session.session_id, query), self._maybe(Session.status, SessionStatus, query)
        )
        return _listing(self.sessions.ListSessions, _SESSIONS, where, query)

    def list_tasks(self, query: Query) -> dict[str, Any]:
        where = _both(_id_filter(Task.id, query), self._maybe(Task.status, TaskStatus, query))
        where = _both(where, Task.session_id == query.session if query.session else None)
        where = _both(
            where, Task.options.application_name.contains(query.application) if query.application else None
        )
        return _listing(self.tasks.ListTasksDetailed, _TASKS, where, query, with_errors=True)

    def list_results(self, query: Query) -> dict[str, Any]:
        where = _both(_id_filter(Result.result_id, query), self._maybe(Result.status, ResultStatus, query))
        where = _both(where, Result.session_id == query.session if query.session else None)
        return _listing(self.results.ListResults, _RESULTS, where, query)

    def list_partitions(self, query: Query) -> dict[str, Any]:
        return _listing(self.partitions.ListPartitions, _PARTITIONS, _id_filter(Partition.id, query), query)

    def list_applications(self, query: Query) -> dict[str, Any]:
        name = query.sort or "name"
        if name not in APPLICATION_FIELDS:
            raise BadQuery(f"cannot sort by {name!r}: one of {', '.join(sorted(APPLICATION_FIELDS))}")
        field = applications_fields_pb2.ApplicationField(
            application_field=applications_fields_pb2.ApplicationRawField(field=APPLICATION_FIELDS[name])
        )
        request = applications_common_pb2.ListApplicationsRequest(
            page=query.page,
            page_size=query.page_size,
            filters=_application_filters(query),
            sort=applications_common_pb2.ListApplicationsRequest.Sort(
                fields=[field], direction=query.direction
            ),
        )
        answer = self.applications.ListApplications(request)
        return {"total": answer.total, "rows": _rows(answer.applications)}

    @staticmethod
    def _maybe(field: Any, enum: Any, query: Query) -> Filter | None:
        return field == _status(enum, query.status) if query.status else None

    def session_action(self, session_id: str, action: str) -> dict[str, Any]:
        calls: dict[str, tuple[Callable[[Any], Any], Callable[..., Any]]] = {
            "cancel": (self.sessions.CancelSession, sessions_common_pb2.CancelSessionRequest),
            "pause": (self.sessions.PauseSession, sessions_common_pb2.PauseSessionRequest),
            "resume": (self.sessions.ResumeSession, sessions_common_pb2.ResumeSessionRequest),
            "close": (self.sessions.CloseSession, sessions_common_pb2.CloseSessionRequest),
            "purge": (self.sessions.PurgeSession, sessions_common_pb2.PurgeSessionRequest),
            "delete": (self.sessions.DeleteSession, sessions_common_pb2.DeleteSessionRequest),
        }
        call, request = calls[action]
        return MessageToDict(call(request(session_id=session_id)), preserving_proto_field_name=True)

    def cancel_task(self, task_id: str) -> dict[str, Any]:
        answer = self.tasks.CancelTasks(tasks_common_pb2.CancelTasksRequest(task_ids=[task_id]))
        return {"tasks": _rows(answer.tasks)}

    def task(self, task_id: str) -> dict[str, Any]:
        answer = self.tasks.GetTask(tasks_common_pb2.GetTaskRequest(task_id=task_id))
        return MessageToDict(answer.task, preserving_proto_field_name=True)

    def check_health(self) -> dict[str, Any]:
        answer = self.health.CheckHealth(health_checks_common_pb2.CheckHealthRequest())
        return MessageToDict(answer, preserving_proto_field_name=True)

    def download(self, result_id: str) -> tuple[str, Iterator[bytes]]:
        """The result's name and its bytes (the first chunk already read, so that an error is an answer, not a
        broken stream)."""
        result = self.results.GetResult(results_common_pb2.GetResultRequest(result_id=result_id)).result
        stream = self.results.DownloadResultData(
            results_common_pb2.DownloadResultDataRequest(session_id=result.session_id, result_id=result_id)
        )
        first = next(stream, None)

        def chunks() -> Iterator[bytes]:
            if first is not None:
                yield first.data_chunk
            for chunk in stream:
                yield chunk.data_chunk

        return result.name or result_id, chunks()


def _error(exc: BaseException) -> JSONResponse:
    if isinstance(exc, BadQuery):
        return JSONResponse({"error": str(exc)}, status_code=400)
    assert isinstance(exc, grpc.RpcError)
    code = exc.code()  # type: ignore[attr-defined]
    details = exc.details()  # type: ignore[attr-defined]
    return JSONResponse(
        {"error": f"{code.name}: {details}", "code": code.name}, status_code=HTTP_STATUS.get(code, 502)
    )


async def _answer(fn: Callable[..., Any], *args: Any) -> Response:
    try:
        return JSONResponse(await run_in_threadpool(fn, *args))
    except (BadQuery, grpc.RpcError) as exc:
        return _error(exc)


def _is_action(request: Request) -> bool:
    return request.headers.get(ACTION_HEADER) == "1"


def _forbidden() -> JSONResponse:
    return JSONResponse(
        {"error": f"an action needs the {ACTION_HEADER} header (sent by the console's page)"}, 403
    )


def routes(tables: Tables) -> list[Route]:
    """The console's routes for the tables, actions, task detail, downloads and health."""
    listings: dict[str, Callable[[Query], dict[str, Any]]] = {
        "sessions": tables.list_sessions,
        "tasks": tables.list_tasks,
        "results": tables.list_results,
        "partitions": tables.list_partitions,
        "applications": tables.list_applications,
    }

    async def table(request: Request) -> Response:
        listing = listings.get(request.path_params["kind"])
        if listing is None:
            return JSONResponse({"error": f"no table {request.path_params['kind']!r}"}, 404)
        try:
            query = Query.parse(request.query_params)
        except BadQuery as exc:
            return _error(exc)
        return await _answer(listing, query)

    async def session_action(request: Request) -> Response:
        action = request.path_params["action"]
        if action not in SESSION_ACTIONS:
            return JSONResponse(
                {"error": f"no session action {action!r}: one of {', '.join(SESSION_ACTIONS)}"}, 404
            )
        if not _is_action(request):
            return _forbidden()
        return await _answer(tables.session_action, request.path_params["session_id"], action)

    async def task_cancel(request: Request) -> Response:
        if not _is_action(request):
            return _forbidden()
        return await _answer(tables.cancel_task, request.path_params["task_id"])

    async def task_detail(request: Request) -> Response:
        return await _answer(tables.task, request.path_params["task_id"])

    async def health(request: Request) -> Response:
        return await _answer(tables.check_health)

    async def download(request: Request) -> Response:
        try:
            name, chunks = await run_in_threadpool(tables.download, request.path_params["result_id"])
        except grpc.RpcError as exc:
            return _error(exc)
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        return StreamingResponse(
            chunks,
            media_type="application/octet-stream",
            headers={"Content-Disposition": f'attachment; filename="{safe}"'},
        )

    return [
        Route("/api/tables/{kind}", table),
        Route("/api/sessions/{session_id}/{action}", session_action, methods=["POST"]),
        Route("/api/tasks/{task_id}/cancel", task_cancel, methods=["POST"]),
        Route("/api/tasks/{task_id}", task_detail),
        Route("/api/results/{result_id}/data", download),
        Route("/api/health", health),
    ]
