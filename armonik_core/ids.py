"""Identifiers of sessions, tasks and results: random (version 4) UUIDs in their canonical text form.

Generated in batches from one call to the OS's random source: at tens of thousands of ids per second,
`str(uuid.uuid4())` one by one costs more than the rest of a submission's bookkeeping.
"""

from __future__ import annotations

import os


def new_ids(count: int) -> list[str]:
    raw = bytearray(os.urandom(16 * count))
    ids = []
    for start in range(0, 16 * count, 16):
        raw[start + 6] = (raw[start + 6] & 0x0F) | 0x40  # version 4
        raw[start + 8] = (raw[start + 8] & 0x3F) | 0x80  # RFC 4122 variant
        h = raw[start : start + 16].hex()
        ids.append(f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}")
    return ids


def new_id() -> str:
    return new_ids(1)[0]
