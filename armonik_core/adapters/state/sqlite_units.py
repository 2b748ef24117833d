"""The SQLite state store's engine, clock and listing (see `SqliteUnits`)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from armonik_core.adapters.state import common
from armonik_core.adapters.state import sqlite_schema as schema
from armonik_core.adapters.state.sqlite_engine import SqliteEngine
from armonik_core.adapters.state.sqlite_listing import listing_statements
from armonik_core.adapters.state.sqlite_paging import PagingCache
from armonik_core.domain.filters import ListQuery

R = TypeVar("R")
Clock = Callable[[], float]


class SqliteUnits(common.ChangeFeedStore):
    """The SQLite store's engine (its writer thread runs the units of work, `sqlite_engine`), clock and paged
    listings.

    A base of `SqliteStateStore` (with `SqliteComputePlane`), so that the store's operations, grouped by who
    calls them, share one engine."""

    def __init__(
        self, path: str | Path, *, synchronous: str = "FULL", clock: Clock = time.time, outbox: bool = True
    ) -> None:
        """`outbox=False` when the queue is rebuilt from the state itself (`MemoryQueue`): the SUBMITTED
        rows are then the durable record of what is queued, and an outbox would only duplicate them."""
        super().__init__()
        self._path = Path(path)
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        self._engine = SqliteEngine(self._path, self._dispatch, synchronous=synchronous, outbox=outbox)
        self._engine.run_setup(schema.DDL)
        self._paging = PagingCache()

    async def close(self) -> None:
        await self._engine.idle()
        self._engine.close()

    # -- generic listing ---------------------------------------------------------------------------------
    async def _list(
        self, table: str, columns: Sequence[str], query: ListQuery, convert: Callable[[sqlite3.Row], R]
    ) -> tuple[int, list[R]]:
        """A page and the listing's total. A client reading page after page while nothing is committed gets
        the total counted for an earlier page, and each page read from where the previous one ended rather
        than at its OFFSET (`sqlite_paging`)."""
        listing = listing_statements(table, columns, query)
        generation = self._engine.generation
        known_total = self._paging.total(generation, listing.identity)
        keyset = listing.keyset
        start = self._paging.start_after(generation, listing.identity, query.page) if keyset else None

        def run(conn: sqlite3.Connection) -> tuple[int, list[R], tuple[Any, ...] | None]:
            total = known_total
            if total is None:
                total = conn.execute(listing.count, listing.params).fetchone()[0]
            if keyset is not None and start is not None:
                rows = conn.execute(keyset.after, (*listing.params, *start)).fetchall()
            else:
                rows = conn.execute(listing.select, listing.params).fetchall()
            last = (
                tuple(rows[-1])[-keyset.width :]
                if keyset is not None and len(rows) == listing.limit
                else None
            )
            return total, [convert(row) for row in rows], last

        total, page, last = await self._engine.read(run)
        self._paging.remember(generation, self._engine.generation, listing.identity, total, query.page, last)
        return total, page
