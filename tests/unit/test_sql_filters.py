"""The SQLite compilation of filters selects exactly the records `matches` accepts, unset values included."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from armonik_core.adapters.state.sql_filters import compile_filter, compile_order, json_member, sql_literal
from armonik_core.domain.filters import (
    OPERATORS,
    Condition,
    FieldKind,
    FieldRef,
    Filter,
    Op,
    SortKey,
    compile_matcher,
    condition_matches,
    matches,
)
from armonik_core.domain.records import Result, Task
from armonik_core.domain.statuses import ResultStatus, TaskStatus
from tests.unit import filter_cases as cases
from tests.unit.filter_cases import ST, UNSET, A, B, D, N, S, T, accepted
from tests.unit.filter_cases import cond as c

# -- a task table with the store's conventions -------------------------------------------------------------
DDL = """
CREATE TABLE tasks (
    task_id TEXT PRIMARY KEY, session_id TEXT NOT NULL, status INTEGER NOT NULL, payload_id TEXT NOT NULL,
    created_by TEXT, pod_hostname TEXT, error TEXT,
    data_dependencies TEXT NOT NULL, expected_output_ids TEXT,
    created_at REAL NOT NULL, started_at REAL, ended_at REAL, pod_ttl REAL,
    opt_max_duration REAL NOT NULL, opt_max_retries INTEGER NOT NULL, opt_priority INTEGER NOT NULL,
    opt_partition_id TEXT NOT NULL, opt_options TEXT NOT NULL
);
CREATE TABLE results (result_id TEXT PRIMARY KEY, opaque_id BLOB NOT NULL);
"""

#: Fields that are computed, as the store computes them.
DERIVED = {
    "creation_to_end_duration": "max(0.0, ended_at - created_at)",
    "processing_to_end_duration": "max(0.0, ended_at - started_at)",
    "succeeded": f"(status = {int(TaskStatus.COMPLETED)})",
    "opaque_id": "CAST(opaque_id AS TEXT)",
}


def column_for(ref: FieldRef) -> str:
    if ref.key is not None:
        assert ref.path == "options.options"
        return json_member("opt_options", ref.key)
    return DERIVED.get(ref.path) or ref.path.replace("options.", "opt_")


#: The sample tasks with NULL columns besides, as the store may write for optional values.
TASKS = cases.sample_tasks(changes={"t1": {"expected_output_ids": UNSET}, "t3": {"error": UNSET}})


def task_row(t: Task) -> tuple[Any, ...]:
    def array(items: list[str] | None) -> str | None:
        return None if items is None else json.dumps(items)

    o = t.options
    return (
        t.task_id,
        t.session_id,
        int(t.status),
        t.payload_id,
        t.created_by,
        t.pod_hostname,
        t.error,
        array(t.data_dependencies),
        array(t.expected_output_ids),
        t.created_at,
        t.started_at,
        t.ended_at,
        t.pod_ttl,
        o.max_duration,
        o.max_retries,
        o.priority,
        o.partition_id,
        json.dumps(o.options),
    )


def connect(tasks: Sequence[Task] = TASKS) -> sqlite3.Connection:
    db = sqlite3.connect(":memory:")
    db.executescript(DDL)
    db.executemany(f"INSERT INTO tasks VALUES ({', '.join('?' * 18)})", [task_row(t) for t in tasks])
    return db


@pytest.fixture(scope="module")
def db() -> Iterator[sqlite3.Connection]:
    with closing(connect()) as connection:
        yield connection


def selected(db: sqlite3.Connection, flt: Filter, table: str = "tasks", key: str = "task_id") -> list[str]:
    where, params = compile_filter(flt, column_for)
    return sorted(row[0] for row in db.execute(f"SELECT {key} FROM {table} WHERE {where}", params))


# -- hand-checked cases: the expected rows are written out, and both evaluations must produce them -----------
CASES = [
    (c("session_id", S, Op.EQ, "s2"), ["t1", "t3"]),
    (c("session_id", S, Op.NE, "s2"), ["t0", "t2", "t4"]),
    (c("created_by", S, Op.EQ, ""), ["t1", "t2"]),  # NULL reads as ""
    (c("created_by", S, Op.NE, ""), ["t0", "t3", "t4"]),
    (c("created_by", S, Op.EQ, "client"), ["t0"]),  # case-sensitive
    (c("created_by", S, Op.NE, "client"), ["t1", "t2", "t3", "t4"]),
    (c("payload_id", S, Op.CONTAINS, "%"), ["t1", "t2"]),  # % and _ are literal
    (c("payload_id", S, Op.CONTAINS, "_"), ["t1", "t4"]),
    (c("payload_id", S, Op.NOT_CONTAINS, "%"), ["t0", "t3", "t4"]),
    (c("payload_id", S, Op.STARTS_WITH, "a%"), ["t1"]),
    (c("payload_id", S, Op.STARTS_WITH, ""), ["t0", "t1", "t2", "t3", "t4"]),
    (c("payload_id", S, Op.ENDS_WITH, "_c"), ["t1"]),
    (c("payload_id", S, Op.ENDS_WITH, "字"), ["t3"]),
    (c("payload_id", S, Op.ENDS_WITH, "x_"), []),
    (c("payload_id", S, Op.STARTS_WITH, "é漢"), ["t3"]),
    (c("payload_id", S, Op.CONTAINS, "漢字"), ["t3"]),
    (c("error", S, Op.CONTAINS, "boom"), []),
    (c("error", S, Op.STARTS_WITH, "Boom"), ["t2"]),
    (c("pod_hostname", S, Op.ENDS_WITH, ""), ["t0", "t1", "t2", "t3", "t4"]),  # NULL ends with ""
    (c("options.partition_id", S, Op.EQ, "p"), ["t0", "t3"]),
    (c("options.options", S, Op.EQ, "v", key="k"), ["t0"]),
    (c("options.options", S, Op.EQ, "", key="k"), ["t1", "t3"]),  # a missing key reads as ""
    (c("options.options", S, Op.NE, "", key="k"), ["t0", "t2", "t4"]),
    (c("options.options", S, Op.STARTS_WITH, "v", key="k"), ["t0", "t4"]),
    (c("options.options", S, Op.CONTAINS, "%_", key="q\"u'o.te"), ["t0"]),
    (c("options.options", S, Op.EQ, "é", key="z"), ["t3"]),
    (c("status", ST, Op.EQ, int(TaskStatus.COMPLETED)), ["t0"]),
    (c("status", ST, Op.NE, int(TaskStatus.COMPLETED)), ["t1", "t2", "t3", "t4"]),
    (c("succeeded", B, Op.EQ, True), ["t0"]),
    (c("succeeded", B, Op.NE, True), ["t1", "t2", "t3", "t4"]),
    (c("options.priority", N, Op.LT, 1), ["t1", "t2"]),
    (c("options.priority", N, Op.GE, 2), ["t0", "t4"]),
    (c("options.max_retries", N, Op.EQ, 1), ["t3", "t4"]),
    (c("created_at", D, Op.LE, 10.0), ["t0", "t1", "t2", "t4"]),
    (c("created_at", D, Op.GT, 10.0), ["t3"]),
    (c("started_at", D, Op.EQ, 10.5), ["t3"]),
    (c("started_at", D, Op.NE, 10.5), ["t0", "t1", "t2", "t4"]),  # unset differs from any date
    (c("started_at", D, Op.LT, 1e9), ["t0", "t2", "t3"]),  # unset is not before anything
    (c("started_at", D, Op.GE, 0.0), ["t0", "t2", "t3"]),  # nor after
    (c("pod_ttl", D, Op.GT, 10.5), ["t0"]),
    (c("creation_to_end_duration", T, Op.EQ, 0.0), ["t4"]),
    (c("creation_to_end_duration", T, Op.GE, 10.5), ["t0"]),
    (c("processing_to_end_duration", T, Op.EQ, 0.0), ["t2"]),  # ended before it started: clamped to 0
    (c("processing_to_end_duration", T, Op.NE, 0.0), ["t0", "t1", "t3", "t4"]),
    (c("options.max_duration", T, Op.LT, 5.0), ["t1", "t2"]),
    (c("data_dependencies", A, Op.CONTAINS, "r1"), ["t0", "t3"]),
    (c("data_dependencies", A, Op.CONTAINS, "r%"), ["t2"]),
    (c("data_dependencies", A, Op.CONTAINS, ""), ["t3"]),
    (c("data_dependencies", A, Op.NOT_CONTAINS, "r1"), ["t1", "t2", "t4"]),
    (c("expected_output_ids", A, Op.NOT_CONTAINS, "o1"), ["t1", "t2", "t3", "t4"]),  # NULL array is empty
]


@pytest.mark.parametrize(("condition", "expected"), CASES, ids=[f"{x.field}-{x.op.value}" for x, _ in CASES])
def test_hand_checked_cases(db: sqlite3.Connection, condition: Condition, expected: list[str]) -> None:
    flt = Filter.of([condition])
    assert accepted(TASKS, flt) == expected
    assert selected(db, flt) == expected


def test_or_of_ands(db: sqlite3.Connection) -> None:
    flt = Filter.of(
        [c("session_id", S, Op.EQ, "s1"), c("options.priority", N, Op.GE, 2)],
        [c("status", ST, Op.EQ, int(TaskStatus.PROCESSING))],
    )
    assert selected(db, flt) == accepted(TASKS, flt) == ["t0", "t3", "t4"]


def test_empty_filter_and_empty_conjunction_select_everything(db: sqlite3.Connection) -> None:
    assert compile_filter(Filter(), column_for) == ("1", [])
    assert selected(db, Filter()) == ["t0", "t1", "t2", "t3", "t4"]
    assert selected(db, Filter.of([c("task_id", S, Op.EQ, "none")], [])) == ["t0", "t1", "t2", "t3", "t4"]


def test_values_are_parameters_not_sql(db: sqlite3.Connection) -> None:
    sneaky = "x' OR 1=1 --"
    where, params = compile_filter(Filter.of([c("payload_id", S, Op.EQ, sneaky)]), column_for)
    assert sneaky not in where and params == [sneaky]
    assert selected(db, Filter.of([c("payload_id", S, Op.EQ, sneaky)])) == []


# -- every field kind x operator x value, against matches() -----------------------------------------------------
FIELDS = cases.widened(cases.TASK_FIELDS_BY_KIND, {B: [FieldRef("succeeded")]})
VALUES = cases.widened(cases.VALUES_BY_KIND, {S: ["100%", "%_", "client", "Boom"]})
COMBINATIONS = cases.combinations(FIELDS)


@pytest.mark.parametrize(
    ("ref", "kind", "op"), COMBINATIONS, ids=[f"{ref}-{op.value}" for ref, _, op in COMBINATIONS]
)
def test_sql_agrees_with_matches(db: sqlite3.Connection, ref: FieldRef, kind: FieldKind, op: Op) -> None:
    for value in VALUES[kind]:
        condition = Condition(ref, kind, op, value)
        where, params = compile_filter(Filter.of([condition]), column_for)
        truth = dict(db.execute(f"SELECT task_id, {where} FROM tasks", params).fetchall())
        expected = {t.task_id: int(condition_matches(t, condition)) for t in TASKS}
        assert truth == expected, (condition, where)  # 0 or 1 per row, never NULL


def test_inapplicable_operators_are_rejected_by_both() -> None:
    for kind, allowed in OPERATORS.items():
        for op in set(Op) - allowed:
            condition = Condition(FieldRef("status"), kind, op, 1)
            with pytest.raises(ValueError):
                compile_filter(Filter.of([condition]), column_for)
            with pytest.raises(ValueError):
                condition_matches(TASKS[0], condition)


# -- random records and random filters ---------------------------------------------------------------------------
def values_of(kind: FieldKind) -> st.SearchStrategy[Any]:
    return st.sampled_from(VALUES[kind])


filters = cases.filters_over(FIELDS, VALUES)
texts = st.one_of(st.none(), values_of(S), st.text(alphabet="ab%_é漢\\'\"\x00", max_size=4))
#: SQLite's JSON functions (3.40) cut a string at an escaped NUL, so JSON-stored text never holds one
json_texts = values_of(S) | st.text(st.characters(exclude_characters="\x00"), max_size=3)
dates = st.one_of(st.none(), values_of(D), st.floats(-10, 200, allow_nan=False))
tasks_strategy = cases.tasks_from(
    texts=texts,
    payloads=texts,
    dates=dates,
    dependencies=st.lists(values_of(A) | json_texts, max_size=3),
    options=st.dictionaries(st.sampled_from(["k", "missing", "q\"u'o.te"]), json_texts),
    values=VALUES,
)


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=st.lists(tasks_strategy, max_size=6, unique_by=lambda t: t.task_id), flt=filters)
def test_random_filters_agree_with_matches(records: list[Task], flt: Filter) -> None:
    with closing(connect(records)) as db:
        assert selected(db, flt) == accepted(records, flt)
        where, params = compile_filter(flt, column_for)
        rejected = sorted(r[0] for r in db.execute(f"SELECT task_id FROM tasks WHERE NOT {where}", params))
        assert rejected == sorted(t.task_id for t in records if not matches(t, flt))


@settings(max_examples=100, deadline=None, database=None)
@given(
    records=st.lists(tasks_strategy, max_size=6, unique_by=lambda t: t.task_id),
    flt=filters,
    ids=st.lists(st.sampled_from(["t1", "t2", "x", ""]), max_size=4),
)
def test_compiled_matcher_agrees_with_matches(records: list[Task], flt: Filter, ids: list[str]) -> None:
    """Also with the shape clients send when waiting: one `task_id == x` conjunction per id."""
    by_id = [[Condition(FieldRef("task_id"), S, Op.EQ, i)] for i in ids]
    for candidate in (flt, Filter.of(*by_id), Filter(flt.any_of + Filter.of(*by_id).any_of)):
        matcher = compile_matcher(candidate)
        assert [matcher(t) for t in records] == [matches(t, candidate) for t in records]


# -- byte strings: a result's opaque id ----------------------------------------------------------------------
RESULTS = [
    Result(f"r{i}", "s", f"r{i}", ResultStatus.COMPLETED, 0.0, opaque_id=opaque)
    for i, opaque in enumerate([b"abc", b"\xff\xfeab", "é".encode(), b"", b"a%b", b"a\x00b", b"\xc3"])
]


@pytest.mark.parametrize("op", sorted(OPERATORS[S]))
def test_opaque_id_compares_utf8_bytes(op: Op) -> None:
    with closing(connect([])) as db:
        db.executemany("INSERT INTO results VALUES (?, ?)", [(r.result_id, r.opaque_id) for r in RESULTS])
        for value in ["", "a", "ab", "abc", "b", "é", "%", "a%b", "a\x00", "\x00b", "x"]:
            flt = Filter.of([c("opaque_id", S, op, value)])
            assert selected(db, flt, "results", "result_id") == accepted(RESULTS, flt, "result_id"), value


def test_opaque_id_examples() -> None:
    with closing(connect([])) as db:
        db.executemany("INSERT INTO results VALUES (?, ?)", [(r.result_id, r.opaque_id) for r in RESULTS])
        assert selected(db, Filter.of([c("opaque_id", S, Op.EQ, "abc")]), "results", "result_id") == ["r0"]
        assert selected(db, Filter.of([c("opaque_id", S, Op.ENDS_WITH, "ab")]), "results", "result_id") == [
            "r1"
        ]
        assert selected(db, Filter.of([c("opaque_id", S, Op.EQ, "é")]), "results", "result_id") == ["r2"]


# -- options keys -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("key", ["plain", 'dou"ble', "sin'gle", "back\\slash", "$.dot[0]", "ü"])
def test_json_member_reads_any_key(key: str) -> None:
    with closing(sqlite3.connect(":memory:")) as db:
        document = json.dumps({key: "value", "other": "no"})
        assert db.execute(f"SELECT {json_member('?', key)}", (document,)).fetchone() == ("value",)
        assert db.execute(f"SELECT {json_member('?', key + 'x')}", (document,)).fetchone() == (None,)


def test_sql_literal_round_trips() -> None:
    with closing(sqlite3.connect(":memory:")) as db:
        for text in ["", "it's", "''", "a\x00b", "é"]:
            assert db.execute(f"SELECT {sql_literal(text)}").fetchone() == (text,)


# -- ordering -----------------------------------------------------------------------------------------------------
def ordered(db: sqlite3.Connection, *keys: SortKey) -> list[str]:
    order = compile_order(keys, column_for)
    return [row[0] for row in db.execute(f"SELECT task_id FROM tasks ORDER BY {order}")]


def test_unset_values_sort_first_ascending_and_last_descending(db: sqlite3.Connection) -> None:
    started, task_id = FieldRef("started_at"), FieldRef("task_id")
    assert ordered(db, SortKey(started), SortKey(task_id)) == ["t1", "t4", "t3", "t0", "t2"]
    assert ordered(db, SortKey(started, True), SortKey(task_id, True)) == ["t2", "t0", "t3", "t4", "t1"]


def test_order_on_several_keys_and_an_options_key(db: sqlite3.Connection) -> None:
    key = FieldRef("options.options", "k")
    assert ordered(db, SortKey(key), SortKey(FieldRef("task_id"))) == ["t1", "t3", "t2", "t0", "t4"]
    assert ordered(db, SortKey(FieldRef("session_id"), True), SortKey(FieldRef("options.priority"))) == [
        "t1",
        "t3",
        "t2",
        "t4",
        "t0",
    ]


def test_order_text() -> None:
    keys = (SortKey(FieldRef("status")), SortKey(FieldRef("task_id"), descending=True))
    assert compile_order(keys, column_for) == "status ASC NULLS FIRST, task_id DESC NULLS LAST"
    assert compile_order((), column_for) == ""


def test_compiled_matcher_on_byte_strings() -> None:
    ids = [[Condition(FieldRef("opaque_id"), S, Op.EQ, v)] for v in ("abc", "é", "")]
    matcher = compile_matcher(Filter.of(*ids))
    assert [r.result_id for r in RESULTS if matcher(r)] == ["r0", "r2", "r3"]
