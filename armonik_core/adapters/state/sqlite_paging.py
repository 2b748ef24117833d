"""Reading a large listing page after page without walking it again for every page.

The API pages by number and returns the listing's total with every page. SQLite answers page p with an
OFFSET of p × size, which steps over every row before it, and the total with a COUNT that steps over them
all: a client that reads a whole session page by page (`armonik-analytics` does, to compute its
statistics) made the store walk the session twice per page, so that reading a session took time in the
square of its size.

While nothing is committed, neither walk is needed again: the total is the previous page's, and page p + 1
begins right after the last row of page p, since a listing's sort always ends with the row's id (see
`filters._sort`), so no two rows tie. `PagingCache` keeps both for the database as it is, which the engine's
write generation identifies (`SqliteEngine.generation`, moved before and after every commit), and forgets
everything when the generation moves. A page read while a commit ran is not remembered, as the generation
it was asked at is no longer current when it returns.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

#: Beyond this many remembered listings, the cache starts again (a client pages through a few at a time).
CAPACITY = 1024


@dataclass(frozen=True, slots=True)
class Keyset:
    """How to read the page that follows a known row: `after` is the page's SELECT with one more condition,
    the sort columns past the values of that row (their parameters come after the filter's); the last
    `width` columns of every row the listing reads are those values."""

    after: str
    width: int


def keyset_condition(columns: Sequence[str], descending: bool) -> str:
    """`(c1, c2) > (?, ?)` (or `<` when descending): the rows after a given one in the listing's order."""
    op = "<" if descending else ">"
    if len(columns) == 1:
        return f"{columns[0]} {op} ?"
    marks = ", ".join("?" * len(columns))
    return f"({', '.join(columns)}) {op} ({marks})"


class PagingCache:
    """Totals and page ends of recent listings, valid for one write generation of the database."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self._capacity = capacity
        self._generation: int | None = None
        self._totals: dict[Hashable, int] = {}
        self._page_ends: dict[tuple[Hashable, int], tuple[Any, ...]] = {}

    def _current(self, generation: int) -> bool:
        if generation != self._generation:
            self._generation = generation
            self._totals.clear()
            self._page_ends.clear()
        return len(self._totals) + len(self._page_ends) < self._capacity

    def total(self, generation: int, listing: Hashable) -> int | None:
        """The listing's total when it was counted at this generation."""
        self._current(generation)
        return self._totals.get(listing)

    def start_after(self, generation: int, listing: Hashable, page: int) -> tuple[Any, ...] | None:
        """The sort values of the last row of page `page - 1`, when that page was read at this generation."""
        self._current(generation)
        return self._page_ends.get((listing, page))

    def remember(
        self,
        asked_at: int,
        now: int,
        listing: Hashable,
        total: int,
        page: int,
        last_row: tuple[Any, ...] | None,
    ) -> None:
        """What a page read at generation `asked_at` taught, if nothing was committed since (`now`):
        the total, and where the next page starts when this one was full (`last_row`)."""
        if asked_at != now:
            return
        if not self._current(now):
            self._totals.clear()
            self._page_ends.clear()
        self._totals[listing] = total
        if last_row is not None:
            self._page_ends[(listing, page + 1)] = last_row
