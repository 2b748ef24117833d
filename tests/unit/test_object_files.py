"""How a backend without files of its own (Redis, S3) stages a task's inputs and stores its outputs: the
generic `ObjectStorage.export_to_file` and `import_file`. Small files, a short task's usual inputs and
outputs, are read and written on the spot: a thread hop per file cost an agent on Redis about a tenth of its
CPU per task."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Collection
from pathlib import Path
from typing import Any

import pytest

from armonik_core.adapters.objects import base
from armonik_core.adapters.objects.base import ObjectNotFound, ObjectStorage


class DictStorage(ObjectStorage):
    """The smallest complete backend: objects in a dictionary, streamed in chunks as asked."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    async def put(self, key: str, chunks: AsyncIterable[bytes]) -> int:
        self.objects[key] = b"".join([chunk async for chunk in chunks])
        return len(self.objects[key])

    async def get(self, key: str, chunk_size: int) -> AsyncIterator[bytes]:
        if key not in self.objects:
            raise ObjectNotFound(key)
        data = self.objects[key]
        for start in range(0, len(data), chunk_size):
            yield data[start : start + chunk_size]

    async def size(self, key: str) -> int | None:
        return len(self.objects[key]) if key in self.objects else None

    async def delete(self, keys: Collection[str]) -> None:
        for key in keys:
            self.objects.pop(key, None)


@pytest.fixture
def thread_hops(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every function the generic file code sends to a thread."""
    hops: list[Any] = []
    original = asyncio.to_thread

    async def counted(fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        hops.append(fn)
        return await original(fn, *args, **kwargs)

    monkeypatch.setattr(base.asyncio, "to_thread", counted)
    return hops


@pytest.mark.parametrize("size", [0, 10, base.INLINE_SIZE])
async def test_small_files_move_without_a_thread_hop(
    tmp_path: Path, thread_hops: list[Any], size: int
) -> None:
    storage = DictStorage()
    output = tmp_path / "output"
    output.write_bytes(b"o" * size)
    assert await storage.import_file("out", output) == size
    assert not output.exists() and storage.objects["out"] == b"o" * size
    staged = tmp_path / "input"
    staged.write_bytes(b"longer than the object" * 10)
    assert await storage.export_to_file("out", staged) == size
    assert staged.read_bytes() == b"o" * size
    assert thread_hops == []


async def test_large_files_are_read_and_written_on_threads(tmp_path: Path, thread_hops: list[Any]) -> None:
    storage = DictStorage()
    data = bytes(range(256)) * (3 * base.FILE_BLOCK // 256 + 7)
    output = tmp_path / "output"
    output.write_bytes(data)
    assert await storage.import_file("out", output) == len(data)
    assert storage.objects["out"] == data
    reads = len(thread_hops)
    assert reads >= 4  # three full blocks, a partial one, and the end
    staged = tmp_path / "input"
    assert await storage.export_to_file("out", staged) == len(data)
    assert staged.read_bytes() == data
    assert len(thread_hops) > reads
