"""The graph console's web application (Starlette): the live graph of a session and why a result is not ready.

Starlette because it is the project's web stack (small, async, served by uvicorn); the page is plain HTML, CSS
and JavaScript shipped inside this package (`static/`), so nothing is fetched from outside at run time and no
node toolchain is needed. The JSON endpoints return the library's own reports (`to_dict()`), the picture is the
library's SVG: the CLI, the console and the tests see the same answers.

One `LiveGraph` per session viewed is kept (rebuilt once, then following the session's events), at most
`max_live` of them, the least recently viewed stopped first. Behind a front end that calls the cluster as
each viewer (the ingress under authentication), `viewer` names the one being served: graphs are then kept
per viewer and session, each followed with its viewer's rights, never shown to another. The library calls block, so they run in
Starlette's thread pool.

    GET /                                      the page
    GET /api/sessions                          the latest sessions (id, status, creation)
    GET /api/sessions/{id}/summary             counts per status and level, the frontier, the event count
    GET /api/sessions/{id}/graph.svg[?result=] the picture (of the subgraph behind a result)
    GET /api/sessions/{id}/graph.json          nodes and edges
    GET /api/sessions/{id}/critical-path       after a run
    GET /api/sessions/{id}/throughput          tasks started and ended over time, their latency
    GET /api/results/{id}/blocking             why a result is not ready
    ... and the tables, actions, task detail, downloads and health of `tables.py`.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Hashable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
from armonik.client import ArmoniKSessions
from armonik.common import Direction, Session
from armonik.protogen.client.results_service_pb2_grpc import ResultsStub
from armonik.protogen.common.results_common_pb2 import GetResultRequest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from armonik_graph.analysis import ancestors, blocking, summary
from armonik_graph.console.tables import Tables, routes
from armonik_graph.critical import critical_path, throughput
from armonik_graph.export import write_json, write_svg
from armonik_graph.source import ApiSource, LiveGraph, fill_errors
from armonik_graph.views import frontier

STATIC = Path(__file__).resolve().parent / "static"


class NotFound(LookupError):
    """A session or result the cluster does not know."""


class Graphs:
    """The live graphs of the sessions being viewed (see the module notes)."""

    def __init__(
        self,
        source: ApiSource,
        max_live: int = 16,
        ready_timeout: float = 120.0,
        viewer: Callable[[], Hashable] = lambda: None,
    ) -> None:
        self.source = source
        self.max_live = max_live
        self.ready_timeout = ready_timeout
        self.viewer = viewer
        self._live: OrderedDict[tuple[Hashable, str], LiveGraph] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, session_id: str) -> LiveGraph:
        key = (self.viewer(), session_id)
        with self._lock:
            live = self._live.get(key)
            if live is not None:
                self._live.move_to_end(key)
            else:
                live = LiveGraph(self.source, session_id).start()
                self._live[key] = live
                while len(self._live) > self.max_live:
                    self._live.popitem(last=False)[1].stop()
        try:
            live.wait_ready(self.ready_timeout)
            if not len(live.graph):
                raise NotFound(f"session {session_id} has no task and no result (unknown session?)")
        except BaseException:  # not kept: the next request tries again
            with self._lock:
                if self._live.get(key) is live:
                    del self._live[key]
            live.stop()
            raise
        return live

    def stop(self) -> None:
        with self._lock:
            for live in self._live.values():
                live.stop()
            self._live.clear()


def _session_row(session: Session) -> dict[str, Any]:
    return {
        "session_id": session.session_id,
        "status": getattr(session.status, "name", str(session.status)),
        "created_at": session.created_at.isoformat() if session.created_at else None,
    }


def create_app(
    source: ApiSource, max_live: int = 16, viewer: Callable[[], Hashable] = lambda: None
) -> Starlette:
    graphs = Graphs(source, max_live, viewer=viewer)
    sessions = ArmoniKSessions(source.channel)
    results = ResultsStub(source.channel)

    def list_sessions() -> list[dict[str, Any]]:
        _, page = sessions.list_sessions(
            page_size=50, sort_field=Session.created_at, sort_direction=Direction.DESC
        )
        return [_session_row(s) for s in page]

    def session_summary(session_id: str) -> dict[str, Any]:
        live = graphs.get(session_id)
        with live.lock:
            return {
                **summary(live.graph).to_dict(),
                "frontier": frontier(live.graph).to_dict(),
                "version": live.version,
                "nodes": len(live.graph),
            }

    def session_svg(session_id: str, result: str | None) -> str:
        live = graphs.get(session_id)
        out = io.StringIO()
        with live.lock:
            nodes = ancestors(live.graph, result) if result else None
            write_svg(live.graph, out, nodes)
        return out.getvalue()

    def session_json(session_id: str) -> str:
        live = graphs.get(session_id)
        out = io.StringIO()
        with live.lock:
            write_json(live.graph, out)
        return out.getvalue()

    def session_critical_path(session_id: str) -> dict[str, Any]:
        live = graphs.get(session_id)
        with live.lock:
            return critical_path(live.graph).to_dict()

    def session_throughput(session_id: str) -> dict[str, Any]:
        live = graphs.get(session_id)
        with live.lock:
            return throughput(live.graph).to_dict()

    def result_blocking(result_id: str, stuck_after: float) -> dict[str, Any]:
        try:
            session_id = results.GetResult(GetResultRequest(result_id=result_id)).result.session_id
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                raise NotFound(f"result {result_id} not found") from exc
            raise
        live = graphs.get(session_id)
        with live.lock:
            report = blocking(live.graph, result_id, stuck_after=stuck_after)
            missing = [live.graph.index(t.task_id) for t in report.doomed_by if t.error is None]
        fill_errors(live.graph, source, [n for n in missing if n is not None])
        with live.lock:
            for state in report.doomed_by:
                node = live.graph.index(state.task_id)
                state.error = state.error or (live.graph.errors.get(node) if node is not None else None)
        return {**report.to_dict(), "session_id": session_id}

    def svg(text: str) -> Response:
        return Response(text, media_type="image/svg+xml")

    def raw_json(text: str) -> Response:
        return Response(text, media_type="application/json")

    async def call(render: Callable[[Any], Response], fn: Callable[..., Any], *args: Any) -> Response:
        """Run a blocking library call in the thread pool; its answer rendered, or the error as JSON."""
        try:
            return render(await run_in_threadpool(fn, *args))
        except (NotFound, KeyError) as exc:
            return JSONResponse({"error": str(exc.args[0]) if exc.args else str(exc)}, status_code=404)
        except grpc.RpcError as exc:
            return JSONResponse({"error": f"{exc.code().name}: {exc.details()}"}, status_code=502)

    async def index(_: Request) -> Response:
        return FileResponse(STATIC / "index.html")

    async def api_sessions(_: Request) -> Response:
        return await call(JSONResponse, list_sessions)

    async def api_summary(request: Request) -> Response:
        return await call(JSONResponse, session_summary, request.path_params["session_id"])

    async def api_svg(request: Request) -> Response:
        result = request.query_params.get("result") or None
        return await call(svg, session_svg, request.path_params["session_id"], result)

    async def api_json(request: Request) -> Response:
        return await call(raw_json, session_json, request.path_params["session_id"])

    async def api_critical(request: Request) -> Response:
        return await call(JSONResponse, session_critical_path, request.path_params["session_id"])

    async def api_throughput(request: Request) -> Response:
        return await call(JSONResponse, session_throughput, request.path_params["session_id"])

    async def api_blocking(request: Request) -> Response:
        try:
            stuck_after = float(request.query_params.get("stuck_after", "60"))
        except ValueError:
            return JSONResponse({"error": "stuck_after must be a number of seconds"}, status_code=400)
        return await call(JSONResponse, result_blocking, request.path_params["result_id"], stuck_after)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        await run_in_threadpool(graphs.stop)

    app = Starlette(
        routes=[
            Route("/", index),
            Route("/api/sessions", api_sessions),
            Route("/api/sessions/{session_id}/summary", api_summary),
            Route("/api/sessions/{session_id}/graph.svg", api_svg),
            Route("/api/sessions/{session_id}/graph.json", api_json),
            Route("/api/sessions/{session_id}/critical-path", api_critical),
            Route("/api/sessions/{session_id}/throughput", api_throughput),
            Route("/api/results/{result_id}/blocking", api_blocking),
            *routes(Tables(source.channel)),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ],
        lifespan=lifespan,
    )
    # A mounting application runs no lifespan of ours: it stops the live graphs itself (`state.graphs.stop`).
    app.state.graphs = graphs
    return app
