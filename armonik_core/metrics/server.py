"""A small HTTP/1.1 server (asyncio streams, standard library only) for the exporter's few endpoints.

- `GET /metrics`: the Prometheus text exposition (format 0.0.4); 503 when the store cannot be read;
- `GET /healthz`, `/liveness`: 200 while the process serves requests;
- `GET /readiness`, `/startup`: 200 when a collection succeeds (cached like `/metrics`), else 503.

`HEAD` is answered like `GET` without the body. Connections are kept alive (Prometheus reuses them) until
the client closes, asks to close, or stays idle for `IDLE_TIMEOUT` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from armonik_core.metrics.collector import MetricsCollector

log = logging.getLogger("armonik.metrics")

IDLE_TIMEOUT = 30.0
MAX_HEADER_BYTES = 16 * 1024
PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
}


@dataclass(slots=True)
class Response:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"


class MetricsHttpServer:
    def __init__(self, collector: MetricsCollector, host: str, port: int) -> None:
        self._collector = collector
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        """Listen; returns the port (the one chosen by the system when asked for port 0)."""
        self._server = await asyncio.start_server(
            self._serve_connection, self._host, self._port, limit=MAX_HEADER_BYTES
        )
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            while await self._serve_request(reader, writer):
                pass
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.TimeoutError):
            pass
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve_request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Answer one request; whether to keep the connection for another."""
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), IDLE_TIMEOUT)
        except asyncio.IncompleteReadError as exc:
            if exc.partial.strip():
                await self._write(writer, "GET", Response(400, b"incomplete request\n"), keep_alive=False)
            return False
        except asyncio.LimitOverrunError:
            await self._write(writer, "GET", Response(431, b"request head too large\n"), keep_alive=False)
            return False
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            await self._write(writer, "GET", Response(400, b"malformed request line\n"), keep_alive=False)
            return False
        method, target, version = parts
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip().lower()
        length = headers.get("content-length", "0")
        if length.isdigit() and int(length) > 0:
            await reader.readexactly(int(length))  # no endpoint takes a body: read it past
        connection = headers.get("connection", "")
        keep_alive = connection != "close" if version == "HTTP/1.1" else connection == "keep-alive"
        response = await self._route(method, target.split("?", 1)[0])
        await self._write(writer, method, response, keep_alive)
        return keep_alive

    async def _route(self, method: str, path: str) -> Response:
        if method not in ("GET", "HEAD"):
            return Response(405, b"only GET and HEAD\n")
        if path == "/metrics":
            try:
                text = await self._collector.metrics_text()
            except Exception:
                log.exception("metrics collection failed")
                return Response(503, b"the state store cannot be read\n")
            return Response(200, text.encode("utf-8"), PROMETHEUS_CONTENT_TYPE)
        if path in ("/healthz", "/liveness"):
            return Response(200, b"Healthy\n")
        if path in ("/readiness", "/startup"):
            try:
                await self._collector.snapshot()
            except Exception:
                log.warning("not ready: metrics collection failed", exc_info=True)
                return Response(503, b"Unhealthy\n")
            return Response(200, b"Healthy\n")
        return Response(404, b"not found: try /metrics\n")

    @staticmethod
    async def _write(writer: asyncio.StreamWriter, method: str, response: Response, keep_alive: bool) -> None:
        head = (
            f"HTTP/1.1 {response.status} {_REASONS[response.status]}\r\n"
            f"Content-Type: {response.content_type}\r\n"
            f"Content-Length: {len(response.body)}\r\n"
            f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n"
        )
        if response.status == 405:
            head += "Allow: GET, HEAD\r\n"
        writer.write((head + "\r\n").encode("latin-1"))
        if method != "HEAD":
            writer.write(response.body)
        await writer.drain()
