"""The statements of a SQLite listing (`listing_statements`): the count, the page by OFFSET and, when the sort
allows it, the page that follows a known row (`sqlite_paging`)."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from armonik_core.adapters.state import common
from armonik_core.adapters.state import sqlite_schema as schema
from armonik_core.adapters.state.sql_filters import compile_filter, compile_order
from armonik_core.adapters.state.sqlite_paging import Keyset, keyset_condition
from armonik_core.adapters.state.sqlite_sql import _columns
from armonik_core.domain.filters import ListQuery


@dataclass(frozen=True, slots=True)
class ListingStatements:
    """The count of a listing and the SELECT of its page, with their parameters (the page's bounds are in
    the SELECT's text: they are integers), and, when the sort allows it, the SELECT of the page that
    follows a known row (`sqlite_paging`)."""

    count: str
    select: str
    params: tuple[Any, ...]
    limit: int
    keyset: Keyset | None
    #: The listing whatever its page: the paging cache's key.
    identity: Hashable


def listing_statements(table: str, columns: Sequence[str], query: ListQuery) -> ListingStatements:
    """The schema's indexes are laid out for these statements: a session's tasks by id, and its results by
    status then id (what the SDK and the CLI ask by default), are read in index order, a page at a time,
    however large the session."""
    column_for = schema.column_resolver(table)
    where, params = compile_filter(query.filter, column_for)
    order = compile_order(query.sort, column_for) or "rowid"
    offset, limit = common.page_window(query.page, query.page_size)
    count = f"SELECT COUNT(*) FROM {table} WHERE {where}"
    selected = _columns(columns)
    sort_columns = [column_for(key.field) for key in query.sort]
    keyset = None
    if (
        sort_columns
        and sort_columns[-1] == schema.ID_COLUMNS.get(table)
        and set(sort_columns) <= schema.NON_NULL_COLUMNS[table]
        and len({key.descending for key in query.sort}) == 1
    ):
        # The sort values close every row, so that the last one read tells where the next page starts.
        selected = f"{selected}, {_columns(sort_columns)}"
        after = keyset_condition(sort_columns, query.sort[0].descending)
        keyset = Keyset(
            f"SELECT {selected} FROM {table} WHERE {where} AND {after} ORDER BY {order} LIMIT {limit:d}",
            len(sort_columns),
        )
    select = (
        f"SELECT {selected} FROM {table} WHERE {where} ORDER BY {order} LIMIT {limit:d} OFFSET {offset:d}"
    )
    return ListingStatements(
        count, select, tuple(params), limit, keyset, (table, where, *params, order, limit)
    )
