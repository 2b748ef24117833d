"""Object storage on a local (or shared, e.g. NFS) directory: one file per object.

Key mapping: keys are opaque strings that may hold any character (`/`, `..`, spaces, unicode, NUL) and be of
any length, while file names are limited (255 bytes, no `/`, case-insensitive on some file systems). A key is
therefore stored as `<root>/<h[:2]>/<prefix>~<h>` where `h` is the SHA-256 of the key (hex, so collision-free
in practice, case-insensitive-safe and of fixed length) and `prefix` is the first characters of the key with
everything outside `[A-Za-z0-9_-]` replaced by `_`, only there to make the directory readable by a human.
The first two hex digits shard the objects over 256 directories so that none grows huge. The mapping is one
way; the storage never needs to list keys.

Atomicity and durability: a write streams into a temporary file (`.tmp-*`, never a valid object name) in the
object's directory, fsyncs it, then `os.replace`s it onto the object's name and fsyncs the directory. Readers
therefore see the old object or the new one, never a partial one, and a write that returned survives a crash.
A writer killed mid-way leaves a `.tmp-*` file behind, which no reader ever opens.

All file I/O runs in worker threads (`asyncio.to_thread`); reads and writes move about `FILE_BLOCK` bytes per
thread hop (or one chunk, if the caller asks for larger chunks), so memory stays bounded whatever the object
size, and streams of small chunks do not pay a thread hop each.

Temporary files of writers that were killed are not swept here, since another process may be writing them.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import os
import re
import shutil
import stat
import tempfile
import threading
from collections.abc import AsyncIterable, AsyncIterator, Collection, Mapping
from pathlib import Path
from typing import BinaryIO

from .base import FILE_BLOCK, INLINE_SIZE, ObjectNotFound, ObjectStorage

_PREFIX_LENGTH = 40
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_TEMP_PREFIX = ".tmp-"
_OBJECT_MODE = 0o644


def object_file_name(key: str) -> tuple[str, str]:
    """(shard directory, file name) of a key; see the module docstring for why it looks like this."""
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    prefix = _UNSAFE.sub("_", key[:_PREFIX_LENGTH])
    return digest[:2], f"{prefix}~{digest}"


def _read_at_most(path: str | Path, limit: int) -> bytes:
    """Up to `limit` bytes of a file, with plain system calls: `open()` would add an fstat, an ioctl and an
    lseek to every small object an agent stages or a client downloads (its buffering, unused here)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = os.read(fd, limit)
        while 0 < len(data) < limit:  # a short read is the end of a regular file, as a rule: checked anyway
            more = os.read(fd, limit - len(data))
            if not more:
                break
            data += more
        return data
    finally:
        os.close(fd)


def _read_whole(path: str) -> bytes:
    """A whole object's file, with plain system calls (see `_read_at_most`), sized once by `fstat`: objects
    never change once written, so a read that reached that size reached the end."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        size = os.fstat(fd).st_size
        data = os.read(fd, size)
        if len(data) == size:
            return data
        parts, remaining = [data], size - len(data)
        while remaining > 0 and (more := os.read(fd, remaining)):  # a read is capped near 2 GiB
            parts.append(more)
            remaining -= len(more)
        return b"".join(parts)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    """Write all of `data` to `fd` (a write may take less than it is given)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _write_whole(path: str | Path, data: bytes) -> None:
    """Create or truncate `path` and write `data` into it, with plain system calls (see `_read_at_most`)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
    try:
        _write_all(fd, data)
    finally:
        os.close(fd)


def _fsync_directory(directory: Path) -> None:
    """Make a rename or a file creation in `directory` durable (a no-op where directories can't be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _LockedFile:
    """A file touched only from worker threads, under a lock. An awaiting coroutine that is cancelled does not
    stop its thread, so the cleanup (close, unlink) must wait for a read or write still running on the file."""

    def __init__(self, file: BinaryIO, path: str) -> None:
        self._file = file
        self._path = path
        self._lock = threading.Lock()

    def write(self, data: bytes) -> None:
        with self._lock:
            self._file.write(data)

    def read(self, size: int) -> bytes:
        with self._lock:
            return self._file.read(size)

    def commit(self, target: Path, fsync: bool = True) -> None:
        """fsync, close and atomically move the file onto `target` (the caller fsyncs the directory)."""
        with self._lock:
            self._file.flush()
            if fsync:
                os.fsync(self._file.fileno())
            self._file.close()
            os.replace(self._path, target)

    def discard(self) -> None:
        """Close and remove a temporary file that will not become an object."""
        with self._lock:
            self._file.close()
            try:
                os.unlink(self._path)
            except FileNotFoundError:
                pass

    def close(self) -> None:
        with self._lock:
            self._file.close()


class FilesystemObjectStorage(ObjectStorage):
    """ObjectStorage in a directory, one file per key (see the module docstring for the layout)."""

    def __init__(self, root: str | Path, *, fsync: bool = True) -> None:
        """`fsync=False` keeps objects safe across a crash of any process (the page cache outlives it) but
        not across a power loss; it is the right trade for tiny task outputs written at high rates."""
        self._root = Path(root)
        self._root.mkdir(parents=True, exist_ok=True)
        self._root_name = str(self._root)
        self._fsync = fsync

    def path_of(self, key: str) -> Path:
        """Where the object of `key` lives (exposed for operators and tests)."""
        return Path(self._file_of(key))

    def _file_of(self, key: str) -> str:
        """`path_of` as a string: the paths of a short task's objects are built a few times per task, and
        `pathlib` cost more than the system calls that use them."""
        shard, name = object_file_name(key)
        return f"{self._root_name}/{shard}/{name}"

    def _open_temporary(self, target: Path) -> _LockedFile:
        target.parent.mkdir(exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=_TEMP_PREFIX, dir=target.parent)
        try:
            os.fchmod(fd, _OBJECT_MODE)  # mkstemp creates 0600; objects are read by other users' processes
            return _LockedFile(os.fdopen(fd, "wb"), name)
        except BaseException:
            os.close(fd)
            os.unlink(name)
            raise

    async def put(self, key: str, chunks: AsyncIterable[bytes]) -> int:
        target = self.path_of(key)
        file = await asyncio.to_thread(self._open_temporary, target)
        size = 0
        pending: list[bytes] = []
        pending_size = 0
        try:
            # Small chunks are gathered into blocks of about FILE_BLOCK so that a stream of tiny chunks does
            # not cost a thread hop each.
            async for chunk in chunks:
                pending.append(chunk)
                pending_size += len(chunk)
                size += len(chunk)
                if pending_size >= FILE_BLOCK:
                    block = b"".join(pending)
                    pending, pending_size = [], 0
                    await asyncio.to_thread(file.write, block)
            if pending:
                await asyncio.to_thread(file.write, b"".join(pending))
            await asyncio.to_thread(self._commit, file, target)
        except BaseException:
            await asyncio.shield(asyncio.to_thread(file.discard))
            raise
        return size

    def _commit(self, file: _LockedFile, target: Path) -> None:
        file.commit(target, self._fsync)
        if self._fsync:
            _fsync_directory(target.parent)

    def _write_many(self, objects: Mapping[str, bytes]) -> None:
        """Write every object to a temporary file, then rename them all, then fsync each directory once: one
        thread hop for the batch and one directory fsync per shard instead of one per object."""
        staged: list[tuple[_LockedFile, Path]] = []
        committed = 0
        try:
            for key, data in objects.items():
                target = self.path_of(key)
                staged.append((self._open_temporary(target), target))
                staged[-1][0].write(data)
            for file, target in staged:
                file.commit(target, self._fsync)
                committed += 1
            if self._fsync:
                for directory in {target.parent for _, target in staged}:
                    _fsync_directory(directory)
        finally:
            for file, _ in staged[committed:]:
                file.discard()

    async def put_many(self, objects: Mapping[str, bytes]) -> None:
        if objects:
            await asyncio.to_thread(self._write_many, dict(objects))

    def _read_if_small(self, key: str, path: str) -> bytes | None:
        """The object's bytes if it is small (the usual input or result of a short task), read on the spot:
        opening, reading and closing it cost a few microseconds each, where a thread hop costs a hundred.
        None for a larger object, which goes through threads. ObjectNotFound if it is missing."""
        try:
            data = _read_at_most(path, INLINE_SIZE + 1)
        except FileNotFoundError:
            raise ObjectNotFound(key) from None
        return data if len(data) <= INLINE_SIZE else None

    async def get(self, key: str, chunk_size: int) -> AsyncIterator[bytes]:
        if chunk_size <= 0:
            raise ValueError(f"chunk_size must be positive, not {chunk_size}")
        path = self._file_of(key)
        data = self._read_if_small(key, path)
        if data is not None:
            for start in range(0, len(data), chunk_size):
                yield data[start : start + chunk_size]
            return
        try:
            file = _LockedFile(await asyncio.to_thread(open, path, "rb"), str(path))
        except FileNotFoundError:
            raise ObjectNotFound(key) from None
        # Read several chunks per thread hop when chunks are small, never more than about FILE_BLOCK.
        block_size = chunk_size * max(1, FILE_BLOCK // chunk_size)
        try:
            while True:
                block = await asyncio.to_thread(file.read, block_size)
                if not block:
                    return
                for start in range(0, len(block), chunk_size):
                    yield block[start : start + chunk_size]
        finally:
            await asyncio.shield(asyncio.to_thread(file.close))

    blocking_io = True

    def read_blocking(self, key: str) -> bytes:
        try:
            return _read_whole(self._file_of(key))
        except FileNotFoundError:
            raise ObjectNotFound(key) from None

    def write_blocking(self, key: str, data: bytes) -> int:
        """The object's file written under a temporary name and renamed onto its own, as `put` does, with plain
        system calls: for an in-process worker's output, this is the whole cost of storing it."""
        target = self._file_of(key)
        directory, name = target.rsplit("/", 1)
        temporary = f"{directory}/{_TEMP_PREFIX}{name}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        try:
            try:
                fd = os.open(temporary, flags, _OBJECT_MODE)
            except FileNotFoundError:  # the first object of its shard
                os.makedirs(directory, exist_ok=True)
                fd = os.open(temporary, flags, _OBJECT_MODE)
        except FileExistsError:  # another writer of the same key at this very moment
            self._write_many({key: data})
            return len(data)
        try:
            os.fchmod(fd, _OBJECT_MODE)  # whatever the umask: objects are read by other users' processes
            _write_all(fd, data)
            if self._fsync:
                os.fsync(fd)
            os.close(fd)
            fd = -1
            os.replace(temporary, target)
        except BaseException:
            if fd >= 0:
                os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise
        if self._fsync:
            _fsync_directory(Path(directory))
        return len(data)

    def _export(self, key: str, path: Path) -> int:
        try:
            shutil.copyfile(self.path_of(key), path)  # copy_file_range/sendfile: no bytes through Python
        except FileNotFoundError:
            raise ObjectNotFound(key) from None
        return path.stat().st_size

    async def export_to_file(self, key: str, path: Path) -> int:
        # A copy, not a link: a worker writing into its input file must not alter the stored object.
        data = self._read_if_small(key, self._file_of(key))
        if data is not None:
            _write_whole(path, data)
            return len(data)
        return await asyncio.to_thread(self._export, key, path)

    def _import(self, key: str, path: Path) -> int:
        target = self.path_of(key)
        target.parent.mkdir(exist_ok=True)
        size = path.stat().st_size
        os.chmod(path, _OBJECT_MODE)
        try:
            os.replace(path, target)  # same file system: the output file becomes the object, atomically
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            file = self._open_temporary(target)
            try:
                with open(path, "rb") as source:
                    while block := source.read(FILE_BLOCK):
                        file.write(block)
                file.commit(target, self._fsync)
            except BaseException:
                file.discard()
                raise
            path.unlink()
        if self._fsync:
            _fsync_directory(target.parent)
        return size

    async def import_file(self, key: str, path: Path) -> int:
        if not self._fsync:
            # On the same file system the output file becomes the object by a rename: a few syscalls, cheaper
            # than a thread hop. Across file systems the copy goes to a thread.
            target = self._file_of(key)
            status = os.stat(path)
            if stat.S_IMODE(status.st_mode) != _OBJECT_MODE:  # as a worker usually creates it: no chmod then
                os.chmod(path, _OBJECT_MODE)
            size = status.st_size
            try:
                try:
                    os.replace(path, target)
                except FileNotFoundError:  # the first object of its shard: the directory is made then
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    os.replace(path, target)
                return size
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
        return await asyncio.to_thread(self._import, key, path)

    async def size(self, key: str) -> int | None:
        try:
            stat = await asyncio.to_thread(os.stat, self.path_of(key))
        except FileNotFoundError:
            return None
        return stat.st_size

    def _unlink_all(self, keys: Collection[str]) -> None:
        for key in keys:
            try:
                os.unlink(self._file_of(key))
            except FileNotFoundError:
                pass

    async def delete(self, keys: Collection[str]) -> None:
        """Remove the files. Directories are not fsynced: a deletion lost in a machine crash only leaves an
        unreferenced object behind, which is harmless."""
        if keys:
            await asyncio.to_thread(self._unlink_all, list(keys))
