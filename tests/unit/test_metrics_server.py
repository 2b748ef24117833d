"""The exporter's HTTP server, on a real socket: routes, methods, keep-alive, and failures of the store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import cast

import pytest

from armonik_core.adapters.state.base import StateStore
from armonik_core.domain.filters import Filter, ListQuery
from armonik_core.domain.records import Partition
from armonik_core.domain.statuses import TaskStatus
from armonik_core.metrics import MetricsCollector, parse_text
from armonik_core.metrics.server import MetricsHttpServer


class State:
    def __init__(self) -> None:
        self.fail = False

    async def list_partitions(self, query: ListQuery) -> tuple[int, list[Partition]]:
        if self.fail:
            raise RuntimeError("no database")
        return 1, [Partition(partition_id="default")]

    async def count_tasks_by_status(self, flt: Filter) -> dict[TaskStatus, int]:
        return {TaskStatus.SUBMITTED: 2}


class Served:
    def __init__(self, server: MetricsHttpServer, port: int, state: State) -> None:
        self.server, self.port, self.state = server, port, state

    async def request(self, raw: bytes) -> tuple[int, dict[str, str], bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            writer.write(raw)
            await writer.drain()
            return await read_response(reader)
        finally:
            writer.close()
            await writer.wait_closed()

    async def get(self, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
        return await self.request(
            f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
        )


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    status = int(head[0].split(" ")[1])
    headers = {}
    for line in head[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    body = await reader.readexactly(length) if length else b""
    return status, headers, body


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    state = State()
    collector = MetricsCollector(cast(StateStore, state), cache_validity=0.0)
    server = MetricsHttpServer(collector, "127.0.0.1", 0)
    port = await server.start()
    yield Served(server, port, state)
    await server.stop()


async def test_metrics(served: Served) -> None:
    status, headers, body = await served.get("/metrics")
    assert status == 200
    assert headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    values = parse_text(body.decode())
    assert values["armonik_default_tasks_submitted"] == 2
    assert values["armonik_tasks_queued"] == 2


async def test_query_string_is_ignored(served: Served) -> None:
    status, _, body = await served.get("/metrics?name[]=armonik_tasks_queued")
    assert status == 200 and b"armonik_tasks_queued 2" in body


@pytest.mark.parametrize("path", ["/healthz", "/liveness", "/readiness", "/startup"])
async def test_health_endpoints(served: Served, path: str) -> None:
    status, _, body = await served.get(path)
    assert (status, body) == (200, b"Healthy\n")


async def test_store_failure(served: Served) -> None:
    served.state.fail = True
    assert (await served.get("/metrics"))[0] == 503
    assert (await served.get("/readiness"))[0] == 503
    assert (await served.get("/liveness"))[0] == 200  # alive, just not ready


async def test_head_has_no_body(served: Served) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    writer.write(b"HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    await writer.drain()
    data = await reader.read()  # the server closes after the head: nothing follows it
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert b"content-length: 0" not in head.lower() and b"content-length: " in head.lower()
    assert body == b""


async def test_unknown_path_and_method(served: Served) -> None:
    assert (await served.get("/nothing"))[0] == 404
    status, headers, _ = await served.get("/metrics", method="POST")
    assert status == 405 and {m.strip() for m in headers["allow"].split(",")} == {"GET", "HEAD"}


async def test_malformed_request(served: Served) -> None:
    assert (await served.request(b"hello\r\n\r\n"))[0] == 400


async def test_keep_alive_serves_several_requests_on_one_connection(served: Served) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    try:
        for _ in range(3):
            writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            await writer.drain()
            status, headers, body = await read_response(reader)
            # HTTP/1.1 keeps the connection by default: no `Connection: close`, and the next request is served
            assert status == 200 and headers.get("connection", "keep-alive") == "keep-alive"
            assert b"armonik_tasks_submitted 2" in body
    finally:
        writer.close()
        await writer.wait_closed()


async def test_http_1_0_closes(served: Served) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    writer.write(b"GET /healthz HTTP/1.0\r\n\r\n")
    await writer.drain()
    status, headers, _ = await read_response(reader)
    assert status == 200 and headers["connection"] == "close"
    assert await reader.read() == b""
    writer.close()


async def test_stop_closes_idle_connections(served: Served) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    await read_response(reader)
    await asyncio.wait_for(served.server.stop(), 5)
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
