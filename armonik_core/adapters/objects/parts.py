"""Re-cutting a stream of chunks into parts of a fixed size, for backends that store objects in pieces
(S3 multipart uploads, Redis chunks)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Callable

Piece = bytes | bytearray | memoryview


async def fixed_size_parts(
    chunks: AsyncIterable[bytes], size: int
) -> AsyncGenerator[tuple[Piece, bool], None]:
    """Yield `(part, is_last)`: every part but the last has exactly `size` bytes; the last has 1 to `size`
    bytes, or none when the stream is empty. A full part is yielded only once more data has arrived, so a
    backend learns that a part is the last one before sending it (S3 can then use a single PUT).

    A part is a view of the caller's chunk when one chunk covers it (no copy: `bytes` chunks are immutable),
    and a copy gathered from several chunks otherwise. At most one part is held here; the caller should drop
    its reference to a part (`del part`) before asking for the next, or two are alive while the next is
    gathered. Errors raised by `chunks` propagate unchanged."""
    if size <= 0:
        raise ValueError(f"part size must be positive, not {size}")
    pending: Piece = b""
    async for chunk in chunks:
        view = memoryview(chunk)
        while view:
            if len(pending) == size:  # full, and more is coming
                yield pending, False
                pending = b""
            taken = min(len(view), size - len(pending))
            if not pending and taken == size and isinstance(chunk, bytes):
                pending = view[:taken]
            else:
                if not isinstance(pending, bytearray):
                    pending = bytearray(pending)
                pending += view[:taken]
            view = view[taken:]
    yield pending, True


async def write_in_parts(
    chunks: AsyncIterable[bytes],
    size: int,
    write: Callable[[Piece, bool, int], Awaitable[None]],
    abort: Callable[[], Awaitable[None]],
) -> int:
    """Hand the stream to `write` as `(part, is_last, bytes so far)` in parts of `size` (`fixed_size_parts`)
    and return the object's size. Whatever ends the write early (a failure of the backend or of `chunks`,
    a cancellation) runs `abort`, shielded, so that no partial object is left behind."""
    written = 0
    try:
        async with contextlib.aclosing(fixed_size_parts(chunks, size)) as parts:
            async for part, last in parts:
                written += len(part)
                await write(part, last, written)
                del part  # before the next part is gathered
    except BaseException:
        await asyncio.shield(abort())
        raise
    return written
