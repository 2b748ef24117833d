"""Statement helpers of the SQLite state store: lookups by many ids, chunked so that no statement exceeds
SQLite's parameter limit, and the INSERTs of whole records."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from armonik_core.adapters.state import sqlite_schema as schema

CHUNK = 900


def _chunks(ids: Sequence[str], size: int = CHUNK) -> Iterator[Sequence[str]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def _select_in(conn: sqlite3.Connection, sql: str, ids: Sequence[str], *extra: Any) -> list[sqlite3.Row]:
    """Run `sql` (with one `{marks}` placeholder for the id list) over `ids`, chunk by chunk."""
    rows: list[sqlite3.Row] = []
    for chunk in _chunks(list(dict.fromkeys(ids))):
        marks = ",".join("?" * len(chunk))
        rows.extend(conn.execute(sql.format(marks=marks), (*chunk, *extra)).fetchall())
    return rows


def _columns(names: Iterable[str]) -> str:
    return ", ".join(names)


def _insert_sql(table: str, columns: Sequence[str], verb: str = "INSERT") -> str:
    return f"{verb} INTO {table} ({_columns(columns)}) VALUES ({','.join('?' * len(columns))})"


_INSERT_TASK = _insert_sql("tasks", schema.TASK_COLUMNS)
_INSERT_RESULT = _insert_sql("results", schema.RESULT_COLUMNS)
_INSERT_SESSION = _insert_sql("sessions", schema.SESSION_COLUMNS)
_UPSERT_PARTITION = _insert_sql("partitions", schema.PARTITION_COLUMNS, "INSERT OR REPLACE")
