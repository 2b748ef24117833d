"""Filters with thousands of alternatives, as `wait_for_result_availability` sends them, stay valid SQL."""

import sqlite3

from armonik_core.adapters.state.sql_filters import compile_filter
from armonik_core.domain.filters import Condition, FieldKind, FieldRef, Filter, Op


def table() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE results (result_id TEXT, name TEXT)")
    conn.executemany("INSERT INTO results VALUES (?, ?)", [(f"r{i}", f"name-{i}") for i in range(6000)])
    return conn


def test_thousands_of_equalities_become_one_membership_test() -> None:
    wanted = [f"r{i}" for i in range(0, 6000, 2)]
    flt = Filter.of(*[[Condition(FieldRef("result_id"), FieldKind.STRING, Op.EQ, rid)] for rid in wanted])
    where, params = compile_filter(flt, lambda ref: ref.path)
    rows = table().execute(f"SELECT result_id FROM results WHERE {where}", params).fetchall()
    assert sorted(r for (r,) in rows) == sorted(wanted)


def test_thousands_of_other_alternatives_are_nested_shallowly() -> None:
    alternatives = [
        [
            Condition(FieldRef("name"), FieldKind.STRING, Op.ENDS_WITH, f"-{i}"),
            Condition(FieldRef("result_id"), FieldKind.STRING, Op.STARTS_WITH, "r"),
        ]
        for i in range(1500)
    ]
    where, params = compile_filter(Filter.of(*alternatives), lambda ref: ref.path)
    rows = table().execute(f"SELECT COUNT(*) FROM results WHERE {where}", params).fetchone()
    assert rows[0] == 1500
