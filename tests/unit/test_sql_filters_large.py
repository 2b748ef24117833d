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


# -- filters on indexed columns reach the index ------------------------------------------------------------
def indexed_table() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    conn.executescript(
        """
        CREATE TABLE tasks (task_id TEXT PRIMARY KEY, session_id TEXT NOT NULL, status INTEGER NOT NULL,
                            pod_hostname TEXT);
        CREATE INDEX tasks_session_status ON tasks(session_id, status);
        """
    )
    conn.executemany(
        "INSERT INTO tasks VALUES (?, ?, ?, ?)",
        [(f"t{i}", f"s{i % 7}", i % 5, None if i % 3 else f"host{i % 2}") for i in range(2000)],
    )
    return conn


def eq(field: str, value: object, kind: FieldKind = FieldKind.STRING) -> list[Condition]:
    return [Condition(FieldRef(field), kind, Op.EQ, value)]


def plan_and_rows(flt: Filter) -> tuple[str, set[str]]:
    where, params = compile_filter(flt, lambda ref: ref.path)
    conn = indexed_table()
    sql = f"SELECT task_id FROM tasks WHERE {where}"
    plan = " | ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))
    return plan, {r for (r,) in conn.execute(sql, params)}


def test_one_equality_searches_the_index() -> None:
    """`session_id == X` is what every listing of a session sends: a full scan of a table of millions of
    tasks per page would make the session unusable."""
    plan, rows = plan_and_rows(Filter.of(eq("session_id", "s3")))
    assert "tasks_session_status (session_id=?)" in plan and "SCAN" not in plan
    assert rows == {f"t{i}" for i in range(2000) if i % 7 == 3}
    plan, rows = plan_and_rows(Filter.of(eq("task_id", "t42")))
    assert "sqlite_autoindex_tasks_1 (task_id=?)" in plan and "SCAN" not in plan
    assert rows == {"t42"}


def test_several_equalities_search_the_index() -> None:
    plan, rows = plan_and_rows(Filter.of(eq("task_id", "t1"), eq("task_id", "t2"), eq("task_id", "nope")))
    assert "sqlite_autoindex_tasks_1 (task_id=?)" in plan and "SCAN" not in plan
    assert rows == {"t1", "t2"}


def test_equalities_and_a_status_search_the_index() -> None:
    flt = Filter.of([*eq("session_id", "s1"), *eq("status", 2, FieldKind.STATUS)])
    plan, rows = plan_and_rows(flt)
    assert "tasks_session_status (session_id=? AND status=?)" in plan
    assert rows == {f"t{i}" for i in range(2000) if i % 7 == 1 and i % 5 == 2}


def test_equalities_on_a_column_with_unset_values_stay_exact() -> None:
    """An unset (NULL) column never equals a value, and the negation of the test is still exact."""
    _, rows = plan_and_rows(Filter.of(eq("pod_hostname", "host1"), eq("pod_hostname", "host0")))
    assert rows == {f"t{i}" for i in range(2000) if i % 3 == 0}
    where, params = compile_filter(
        Filter.of(eq("pod_hostname", "host1"), eq("pod_hostname", "host0")), lambda ref: ref.path
    )
    (count,) = indexed_table().execute(f"SELECT COUNT(*) FROM tasks WHERE NOT {where}", params).fetchone()
    assert count == 2000 - len(rows)
