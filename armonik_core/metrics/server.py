"""The exporter's HTTP endpoints, served by Starlette on uvicorn (the web stack of the ingress too).

- `GET /metrics`: the Prometheus text exposition (format 0.0.4, written by `prometheus_client`); 503 when the
  store cannot be read;
- `GET /healthz`, `/liveness`: 200 while the process serves requests;
- `GET /readiness`, `/startup`: 200 when a collection succeeds (cached like `/metrics`), else 503.

`HEAD` is answered like `GET` without the body; other methods get 405. uvicorn keeps connections alive as
Prometheus expects and closes idle ones when stopped. The server runs inside the exporter's own event loop,
next to its other tasks: its signal handling is left to the process (`wait_for_stop_signal`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Generator

import uvicorn
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from armonik_core.metrics.collector import MetricsCollector

log = logging.getLogger("armonik.metrics")

PROMETHEUS_CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4


def metrics_app(collector: MetricsCollector) -> Starlette:
    async def metrics(request: Request) -> Response:
        try:
            text = await collector.metrics_text()
        except Exception:
            log.exception("metrics collection failed")
            return PlainTextResponse("the state store cannot be read\n", 503)
        return Response(text, 200, headers={"Content-Type": PROMETHEUS_CONTENT_TYPE})

    async def alive(request: Request) -> Response:
        return PlainTextResponse("Healthy\n")

    async def ready(request: Request) -> Response:
        try:
            await collector.snapshot()
        except Exception:
            log.warning("not ready: metrics collection failed", exc_info=True)
            return PlainTextResponse("Unhealthy\n", 503)
        return PlainTextResponse("Healthy\n")

    async def not_found(request: Request, exc: Exception) -> Response:
        return PlainTextResponse("not found: try /metrics\n", 404)

    routes = [
        Route("/metrics", metrics),
        Route("/healthz", alive),
        Route("/liveness", alive),
        Route("/readiness", ready),
        Route("/startup", ready),
    ]
    return Starlette(routes=routes, exception_handlers={404: not_found})


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its signal handlers: the process that embeds it handles SIGTERM/SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class MetricsHttpServer:
    def __init__(self, collector: MetricsCollector, host: str, port: int) -> None:
        self._app = metrics_app(collector)
        self._host = host
        self._port = port
        self._server: _EmbeddedServer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> int:
        """Listen; returns the port (the one chosen by the system when asked for port 0)."""
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self._host, self._port))
        except OSError:
            sock.close()
            raise
        config = uvicorn.Config(
            self._app, log_config=None, access_log=False, lifespan="off", timeout_graceful_shutdown=2
        )
        self._server = _EmbeddedServer(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises what stopped it
                raise OSError("the metrics server stopped while starting")
            await asyncio.sleep(0.01)
        return int(sock.getsockname()[1])

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        await self._task
        self._server = self._task = None
