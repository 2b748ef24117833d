"""The behaviour every ObjectStorage backend must have; fixtures in conftest.py pick the backends."""

from __future__ import annotations

import asyncio
import hashlib
import os
import stat
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol

import pytest

from armonik_core.adapters.objects.base import ObjectNotFound, ObjectStorage
from armonik_core.adapters.objects.filesystem import FilesystemObjectStorage


class StorageBackend(Protocol):
    """What the suite needs from the `storage_backend` fixture (conftest.StorageBackend), declared here so
    the suite does not import a conftest module."""

    def open(self) -> ObjectStorage: ...


MIB = 1 << 20


async def chunked(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def read_chunks(storage: ObjectStorage, key: str, chunk_size: int) -> list[bytes]:
    return [chunk async for chunk in storage.get(key, chunk_size)]


async def test_small_object_round_trip(storage: ObjectStorage, ns: str) -> None:
    key = f"{ns}/payload"

    size = await storage.put(key, chunked(b"hello ", b"", b"world"))

    assert size == 11
    assert await storage.size(key) == 11
    assert await storage.get_bytes(key) == b"hello world"
    chunks = await read_chunks(storage, key, 4)
    assert b"".join(chunks) == b"hello world"
    assert all(len(chunk) <= 4 for chunk in chunks)


async def test_put_bytes_round_trip(storage: ObjectStorage, ns: str) -> None:
    data = bytes(range(256)) * 3

    assert await storage.put_bytes(f"{ns}/bytes", data) == 768
    assert await storage.get_bytes(f"{ns}/bytes") == data


async def test_empty_object(storage: ObjectStorage, ns: str) -> None:
    key = f"{ns}/empty"

    assert await storage.put(key, chunked()) == 0

    assert await storage.size(key) == 0
    assert await storage.get_bytes(key) == b""
    assert b"".join(await read_chunks(storage, key, 1024)) == b""


async def test_large_object_is_streamed_both_ways(storage: ObjectStorage, ns: str) -> None:
    """20 MiB written in 1 MiB chunks and read in 64 KiB chunks, with memory staying well below the object
    size in both directions (the chunks are made on the fly and hashed as they come back)."""
    key = f"{ns}/large"
    written = hashlib.sha256()

    async def source() -> AsyncIterator[bytes]:
        for index in range(20):
            chunk = hashlib.sha256(str(index).encode()).digest() * (MIB // 32)
            written.update(chunk)
            yield chunk

    tracemalloc.start()
    try:
        size = await storage.put(key, source())
        _, put_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        read = hashlib.sha256()
        sizes: list[int] = []
        async for chunk in storage.get(key, 64 * 1024):
            sizes.append(len(chunk))
            read.update(chunk)
        _, get_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert size == 20 * MIB
    assert await storage.size(key) == 20 * MIB
    assert sum(sizes) == 20 * MIB
    assert max(sizes) <= 64 * 1024
    assert read.hexdigest() == written.hexdigest()
    assert put_peak < 10 * MIB, f"put held {put_peak / MIB:.1f} MiB"
    assert get_peak < 10 * MIB, f"get held {get_peak / MIB:.1f} MiB"


async def test_chunk_size_is_an_upper_bound(storage: ObjectStorage, ns: str) -> None:
    key = f"{ns}/odd"
    data = bytes(range(256)) * 41  # 10,496 bytes: not a multiple of the chunk sizes below
    await storage.put_bytes(key, data)

    for chunk_size in (1, 7, 1000, 10_496, 1 << 20):
        chunks = await read_chunks(storage, key, chunk_size)
        assert b"".join(chunks) == data
        assert max(len(chunk) for chunk in chunks) <= chunk_size


async def test_overwrite_replaces_object(storage: ObjectStorage, ns: str) -> None:
    key = f"{ns}/result"
    await storage.put_bytes(key, b"first version, longer")

    assert await storage.put_bytes(key, b"second") == 6

    assert await storage.get_bytes(key) == b"second"
    assert await storage.size(key) == 6


async def test_failed_write_leaves_previous_object_intact(storage: ObjectStorage, ns: str) -> None:
    key = f"{ns}/result"
    await storage.put_bytes(key, b"complete")

    async def broken() -> AsyncIterator[bytes]:
        yield b"partial"
        raise OSError("upstream connection lost")

    with pytest.raises(OSError, match="upstream connection lost"):
        await storage.put(key, broken())
    with pytest.raises(OSError, match="upstream connection lost"):
        await storage.put(f"{ns}/never-written", broken())

    assert await storage.get_bytes(key) == b"complete"
    assert await storage.size(f"{ns}/never-written") is None


async def test_size_of_missing_object_is_none(storage: ObjectStorage, ns: str) -> None:
    assert await storage.size(f"{ns}/missing") is None


async def test_get_missing_object_raises_object_not_found(storage: ObjectStorage, ns: str) -> None:
    with pytest.raises(ObjectNotFound):
        await read_chunks(storage, f"{ns}/missing", 1024)
    with pytest.raises(ObjectNotFound):
        await storage.get_bytes(f"{ns}/missing")
    with pytest.raises(KeyError):  # ObjectNotFound is a KeyError, for callers that catch that
        await storage.get_bytes(f"{ns}/missing")


async def test_delete_removes_objects_and_ignores_absent_keys(storage: ObjectStorage, ns: str) -> None:
    await storage.put_many({f"{ns}/a": b"a", f"{ns}/b": b"bb", f"{ns}/c": b"ccc"})

    await storage.delete([f"{ns}/a", f"{ns}/c", f"{ns}/never-existed"])
    await storage.delete([f"{ns}/a"])
    await storage.delete([])

    assert await storage.size(f"{ns}/a") is None
    assert await storage.size(f"{ns}/c") is None
    with pytest.raises(ObjectNotFound):
        await storage.get_bytes(f"{ns}/a")
    assert await storage.get_bytes(f"{ns}/b") == b"bb"


KEYS = [
    "plain",
    "with/slashes/in/it",
    "../../escape-attempt",
    "with spaces and\ttabs",
    "ünïcødé/日本語/😀",
    "Case",
    "case",
    "a/b",
    "a_b",
    "dots.in.name",
    ".",
    "x" * 1000,
]


async def test_keys_may_hold_any_characters(storage: ObjectStorage, ns: str) -> None:
    objects = {f"{ns}/{key}": f"value of {key!r}".encode() for key in KEYS}
    for key, data in objects.items():
        await storage.put_bytes(key, data)

    for key, data in objects.items():
        assert await storage.get_bytes(key) == data, key
        assert await storage.size(key) == len(data), key

    await storage.delete([f"{ns}/a/b"])
    assert await storage.size(f"{ns}/a/b") is None
    assert await storage.get_bytes(f"{ns}/a_b") == objects[f"{ns}/a_b"]


async def test_put_many(storage: ObjectStorage, ns: str) -> None:
    objects = {f"{ns}/result-{i}": f"value-{i}".encode() * (i % 5) for i in range(120)}
    objects[f"{ns}/ünï cødé/ key"] = b"unicode"

    await storage.put_many(objects)
    await storage.put_many({})

    for key, data in objects.items():
        assert await storage.size(key) == len(data), key
        assert await storage.get_bytes(key) == data, key


async def test_put_many_overwrites(storage: ObjectStorage, ns: str) -> None:
    await storage.put_many({f"{ns}/a": b"old", f"{ns}/b": b"old"})

    await storage.put_many({f"{ns}/a": b"new"})

    assert await storage.get_bytes(f"{ns}/a") == b"new"
    assert await storage.get_bytes(f"{ns}/b") == b"old"


async def test_objects_survive_close_and_reopen(
    storage: ObjectStorage, storage_backend: StorageBackend, ns: str
) -> None:
    await storage.put_bytes(f"{ns}/kept", b"durable")
    await storage.put_many({f"{ns}/many-{i}": bytes([i]) * i for i in range(5)})
    await storage.close()

    reopened = storage_backend.open()

    assert await reopened.get_bytes(f"{ns}/kept") == b"durable"
    assert [await reopened.get_bytes(f"{ns}/many-{i}") for i in range(5)] == [
        bytes([i]) * i for i in range(5)
    ]


async def test_a_second_client_sees_writes_of_the_first(
    storage: ObjectStorage, storage_backend: StorageBackend, ns: str
) -> None:
    other = storage_backend.open()

    await storage.put_bytes(f"{ns}/shared", b"from the first client")

    assert await other.get_bytes(f"{ns}/shared") == b"from the first client"
    await other.delete([f"{ns}/shared"])
    assert await storage.size(f"{ns}/shared") is None


async def test_files_in_and_out(storage: ObjectStorage, ns: str, tmp_path: Path) -> None:
    """How a polling agent stages inputs and stores outputs: through files in the task's data folder."""
    data = os.urandom(3 * 1024 * 1024 + 17)
    produced = tmp_path / "output"
    produced.write_bytes(data)
    assert await storage.import_file(f"{ns}/out", produced) == len(data)
    assert not produced.exists(), "the output file is consumed"
    assert await storage.get_bytes(f"{ns}/out") == data

    staged = tmp_path / "input"
    assert await storage.export_to_file(f"{ns}/out", staged) == len(data)
    assert staged.read_bytes() == data
    staged.write_bytes(b"a worker scribbling over its input")
    assert await storage.get_bytes(f"{ns}/out") == data, "an exported file is a copy"

    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert await storage.import_file(f"{ns}/empty", empty) == 0
    assert await storage.size(f"{ns}/empty") == 0
    with pytest.raises(ObjectNotFound):
        await storage.export_to_file(f"{ns}/missing", tmp_path / "nothing")


@pytest.mark.parametrize("size", [1, 64 * 1024, 64 * 1024 + 1, 200 * 1024])
async def test_small_and_medium_files_in_and_out(
    storage: ObjectStorage, ns: str, tmp_path: Path, size: int
) -> None:
    """Around the size below which the filesystem store copies on the spot: exact bytes both ways, and a
    staged file that already exists (a recycled input file, longer than the object) holds just the object."""
    data = os.urandom(size)
    produced = tmp_path / "output"
    produced.write_bytes(data)
    assert await storage.import_file(f"{ns}/out-{size}", produced) == size
    staged = tmp_path / "input"
    staged.write_bytes(b"x" * (size + 100))
    assert await storage.export_to_file(f"{ns}/out-{size}", staged) == size
    assert staged.read_bytes() == data
    assert await storage.get_bytes(f"{ns}/out-{size}") == data


async def test_an_output_file_the_worker_kept_private_is_stored_readable(
    storage: ObjectStorage, ns: str, tmp_path: Path
) -> None:
    """A worker running with umask 077 creates its outputs 0600; the object must still be readable by
    whoever serves it (the control plane may run as another user)."""
    produced = tmp_path / "private"
    produced.write_bytes(b"secret-ish")
    produced.chmod(0o600)
    assert await storage.import_file(f"{ns}/private", produced) == 10
    assert await storage.get_bytes(f"{ns}/private") == b"secret-ish"
    if isinstance(storage, FilesystemObjectStorage):
        assert stat.S_IMODE(storage.path_of(f"{ns}/private").stat().st_mode) == 0o644


@pytest.mark.parametrize("size", [0, 5, 64 * 1024 + 1, 3 * 1024 * 1024 + 17])
async def test_blocking_reads_and_writes_from_another_thread(
    storage: ObjectStorage, ns: str, size: int
) -> None:
    """How an in-process worker's thread reads its inputs and stores its outputs when the storage allows it
    (`blocking_io`): the same objects as the streaming calls see, replaced whole, readable by anyone."""
    if not storage.blocking_io:
        with pytest.raises(NotImplementedError):
            storage.read_blocking(f"{ns}/any")
        return
    data = os.urandom(size)
    assert await asyncio.to_thread(storage.write_blocking, f"{ns}/b", b"an older object") == 15
    assert await asyncio.to_thread(storage.write_blocking, f"{ns}/b", data) == size
    assert await storage.get_bytes(f"{ns}/b") == data
    assert await asyncio.to_thread(storage.read_blocking, f"{ns}/b") == data
    await storage.put_bytes(f"{ns}/streamed", data)
    assert await asyncio.to_thread(storage.read_blocking, f"{ns}/streamed") == data
    with pytest.raises(ObjectNotFound):
        await asyncio.to_thread(storage.read_blocking, f"{ns}/missing")
    if isinstance(storage, FilesystemObjectStorage):
        path = storage.path_of(f"{ns}/b")
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
        assert [p.name for p in path.parent.iterdir() if p.name.startswith(".tmp-")] == []
