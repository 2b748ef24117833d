"""What the object storage fault tests share: streams that let a fault happen before their last part, fast
retries, unique names, and a private redis-server."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator

from tests.support import unavailable

MIB = 1 << 20

#: Fail fast: one retry, 10 ms later (the defaults, 5 retries 500 ms apart, are for production).
RETRIES, PAUSE_MS = 1, 10


async def stream(*parts: bytes, fault: asyncio.Event | None = None) -> AsyncIterator[bytes]:
    """Yield `parts`; before the last one, set `fault` and give the test's fault a moment to happen."""
    for index, part in enumerate(parts):
        if index == len(parts) - 1 and fault is not None:
            fault.set()
            await asyncio.sleep(0.2)
        yield part


def multipart_stream(fault: asyncio.Event) -> AsyncIterator[bytes]:
    """7 MiB in three chunks, so that the fault happens after the first 5 MiB part was uploaded (the
    second chunk makes the part full with more to come) and before the last part."""
    return stream(b"a" * (5 * MIB), b"b" * MIB, b"c" * MIB, fault=fault)


def unique_bucket() -> str:
    return f"faults-{uuid.uuid4().hex[:12]}"


@contextlib.contextmanager
def redis_server(port: int, *arguments: str) -> Iterator[subprocess.Popen[bytes]]:
    """A redis-server process keeping nothing on disk, once it accepts connections on `port` (which
    `arguments` tell it to listen on, with `--port` or `--tls-port`)."""
    binary = shutil.which("redis-server")
    if binary is None:
        unavailable("redis-server is not installed", "redis-server is not installed; CI must have it")
    command = [binary, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", *arguments]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"redis-server {' '.join(arguments)} did not start") from None
                time.sleep(0.05)
        yield process
    finally:
        process.terminate()
        process.wait(10)


def unique_prefix() -> str:
    return f"faults-{uuid.uuid4().hex[:12]}"
