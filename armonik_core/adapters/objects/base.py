"""The object storage interface every backend (filesystem, S3/MinIO, Redis) implements."""

from __future__ import annotations

import asyncio
import os
from abc import ABC, abstractmethod
from collections.abc import AsyncIterable, AsyncIterator, Collection, Mapping
from pathlib import Path

#: Bytes a file is read or written by per thread hop: large enough to amortise the hop, small enough for memory.
FILE_BLOCK = 1 << 20
#: Files, objects and chunks up to this size are read or written on the spot rather than on a thread: a short
#: task's input and output are a few bytes, and a thread hop (about a tenth of a millisecond of CPU, a context
#: switch each way) costs far more than moving them through the page cache.
INLINE_SIZE = 64 * 1024


class ObjectNotFound(KeyError):
    """The object asked for is not in the storage."""


class ObjectStorage(ABC):
    """Stores immutable blobs by key. Writes are streamed so that no object is ever held whole in memory;
    a write is visible only once complete (readers never see a partial object)."""

    #: True when `read_blocking` and `write_blocking` may be called from any thread, with no event loop (local
    #: files): an in-process worker's thread then reads and writes its objects itself, where a storage behind
    #: a network client bound to the agent's loop is reached through that loop.
    blocking_io = False

    def read_blocking(self, key: str) -> bytes:
        """A whole object, read in the calling thread (see `blocking_io`). Raises ObjectNotFound."""
        raise NotImplementedError(f"{type(self).__name__} is not read from other threads")

    def write_blocking(self, key: str, data: bytes) -> int:
        """Store a whole object from the calling thread (see `blocking_io`), as atomically as `put`."""
        raise NotImplementedError(f"{type(self).__name__} is not written from other threads")

    @abstractmethod
    async def put(self, key: str, chunks: AsyncIterable[bytes]) -> int:
        """Store the concatenated chunks under `key` (replacing any previous object); return the size."""

    async def put_bytes(self, key: str, data: bytes) -> int:
        async def one() -> AsyncIterator[bytes]:
            yield data

        return await self.put(key, one())

    async def put_many(self, objects: Mapping[str, bytes]) -> None:
        """Store several small objects; backends batch this where they can."""
        for key, data in objects.items():
            await self.put_bytes(key, data)

    @abstractmethod
    def get(self, key: str, chunk_size: int) -> AsyncIterator[bytes]:
        """Stream an object in chunks of at most `chunk_size` bytes. Raises ObjectNotFound."""

    async def get_bytes(self, key: str) -> bytes:
        parts = [chunk async for chunk in self.get(key, 1 << 20)]
        return b"".join(parts)

    async def export_to_file(self, key: str, path: Path) -> int:
        """Write an object into a file (a task's input in its data folder); returns the size.

        Streams by default; a backend on local files copies in the kernel instead."""
        size = 0
        with open(path, "wb") as file:
            async for chunk in self.get(key, FILE_BLOCK):
                if len(chunk) <= INLINE_SIZE:
                    file.write(chunk)
                else:
                    await asyncio.to_thread(file.write, chunk)
                size += len(chunk)
        return size

    async def import_file(self, key: str, path: Path) -> int:
        """Store a file as an object (a task's output); the file is consumed (moved or deleted).

        Streams by default; a backend on the same file system moves the file instead of copying it."""

        async def blocks() -> AsyncIterator[bytes]:
            with open(path, "rb") as file:
                if os.fstat(file.fileno()).st_size <= INLINE_SIZE:
                    if data := file.read():  # a small file (the worker is done with it): read on the spot
                        yield data
                    return
                while block := await asyncio.to_thread(file.read, FILE_BLOCK):
                    yield block

        size = await self.put(key, blocks())
        path.unlink(missing_ok=True)
        return size

    @abstractmethod
    async def size(self, key: str) -> int | None:
        """Size of the object, or None when there is none."""

    @abstractmethod
    async def delete(self, keys: Collection[str]) -> None:
        """Remove objects; keys that are absent are ignored."""

    async def close(self) -> None:
        """Release connections."""
