"""Identifiers of sessions, tasks and results: time-ordered UUIDs (version 7, RFC 9562) in canonical form.

Time-ordered rather than random (version 4, as upstream): every table and index keyed by these ids then
grows at its end, so a batch of a thousand inserts touches a handful of B-tree pages instead of a thousand
scattered ones. Measured with SQLite on this machine, random keys make inserts three to four times slower
by the time a table holds 100,000 rows; clients see no difference, ids being opaque strings to them.

Layout: 48 bits of Unix milliseconds, the version, a 30-bit counter within the batch (ids of one batch
sort in order), the variant, and 44 random bits.
"""

from __future__ import annotations

import os
import time

_COUNTER_LIMIT = 1 << 30


def new_ids(count: int) -> list[str]:
    """`count` ids sharing this millisecond, in increasing order.

    Built from string slices rather than integer arithmetic per id: this runs for every task and result.
    """
    if count == 1:
        return [new_id()]
    if count > _COUNTER_LIMIT:
        raise ValueError(f"at most {_COUNTER_LIMIT} ids per call")
    millis = f"{int(time.time() * 1000) & 0xFFFFFFFFFFFF:012x}"
    head = f"{millis[:8]}-{millis[8:]}-"
    random = os.urandom(6 * count).hex()
    ids = []
    for i in range(count):
        low = i & 0x3FFFF  # 18 low bits of the counter: 14 after the variant, 4 in the last group
        tail = random[12 * i + 1 : 12 * i + 12]  # 44 random bits
        ids.append(f"{head}{0x7000 | (i >> 18):04x}-{0x8000 | (low >> 4):04x}-{low & 0xF:x}{tail}")
    return ids


#: The start of the ids of the last millisecond `new_id` saw, with that millisecond (one tuple: one assignment).
_head: tuple[int, str] = (-1, "")


def new_id() -> str:
    """One id: the first of a batch of its millisecond (`new_ids`), its start reused within the millisecond.

    Every task costs an agent two (its communication token, its output's object key)."""
    global _head
    millis = int(time.time() * 1000) & 0xFFFFFFFFFFFF
    last, head = _head
    if millis != last:
        text = f"{millis:012x}"
        head = f"{text[:8]}-{text[8:]}-7000-8000-0"
        _head = (millis, head)
    return head + os.urandom(6).hex()[1:]


#: How much of an id a message or a log line shows: a UUID whole, a longer string cut with its length said.
QUOTED_ID_LENGTH = 40


def quote_id(value: str, limit: int = QUOTED_ID_LENGTH) -> str:
    """An id as messages and logs show it: whole when it is short, else its start and its length.

    Ids come from clients; one of 20,000 characters echoed whole into an error message overflows gRPC's
    metadata (the client then sees RESOURCE_EXHAUSTED instead of the error) and floods the logs."""
    if len(value) <= limit:
        return value
    return f"{value[:limit]}... ({len(value)} characters)"


#: A word of a message longer than this is cut (a file path of the agent's is usually shorter).
LONG_WORD = 120


def shorten_words(text: str) -> str:
    """A message with every run of non-blank characters longer than `LONG_WORD` quoted by `quote_id`: the ids a
    message names, however it was built."""
    if len(text) <= LONG_WORD:
        return text
    return " ".join(word if len(word) <= LONG_WORD else quote_id(word) for word in text.split(" "))
