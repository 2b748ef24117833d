"""The MongoDB compilation of filters selects exactly the records `matches` accepts, on the records as the
store reads them back (dates in whole milliseconds), unset values, odd map keys and byte strings included.

Runs on mongomock, and also on a real server when MONGODB_URI is set (the same tests)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any

import mongomock
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymongo import MongoClient
from pymongo.database import Database

from armonik_core.adapters.state import mongodb_schema as schema
from armonik_core.adapters.state.mongodb_filters import (
    RESULT_FIELDS,
    SESSION_FIELDS,
    TASK_FIELDS,
    FieldMap,
    compile_filter,
    compile_sort,
    literal_pattern,
)
from armonik_core.domain.errors import InvalidArgument
from armonik_core.domain.filters import (
    OPERATORS,
    Condition,
    FieldKind,
    FieldRef,
    Filter,
    Op,
    SortKey,
    condition_matches,
    matches,
    resolve,
)
from armonik_core.domain.options import TaskOptions
from armonik_core.domain.records import Result, Session, Task
from armonik_core.domain.statuses import ResultStatus, SessionStatus, TaskStatus
from tests.unit import filter_cases as cases
from tests.unit.filter_cases import ST, A, B, D, N, S, T, accepted
from tests.unit.filter_cases import cond as c


def _backends() -> list[str]:
    return ["mongomock", "mongodb"] if os.environ.get("MONGODB_URI") else ["mongomock"]


@pytest.fixture(scope="module", params=_backends())
def db(request: pytest.FixtureRequest) -> Iterator[Database[Any]]:
    client: Any = (
        mongomock.MongoClient() if request.param == "mongomock" else MongoClient(os.environ["MONGODB_URI"])
    )
    name = f"filters_{uuid.uuid4().hex[:12]}"
    yield client[name]
    client.drop_database(name)
    client.close()


# -- records ------------------------------------------------------------------------------------------------
TASKS = cases.sample_tasks(
    changes={
        "t2": {"payload_id": "a.b*c\n"},
        "t3": {"created_at": 10.5004},  # stored as 10.5
        "t4": {"payload_id": "_\x00"},
    },
    options={
        "t0": {"$dollar": "d"},
        "t1": {"": "empty key"},
        "t2": {"a.b": "dots"},
        "t4": {"%25": "percent"},
    },
)


def load(db: Database[Any], name: str, documents: Sequence[dict[str, Any]]) -> None:
    db.drop_collection(name)
    if documents:
        db[name].insert_many([dict(d) for d in documents])


def stored_tasks(db: Database[Any], records: Sequence[Task]) -> list[Task]:
    """Insert the records; return them as the store reads them back."""
    load(db, "tasks", [schema.task_to_document(t) for t in records])
    return [schema.task_from_document(d) for d in db["tasks"].find()]


def selected(db: Database[Any], name: str, flt: Filter, fields: FieldMap) -> list[str]:
    return sorted(d["_id"] for d in db[name].find(compile_filter(flt, fields), {"_id": 1}))


def rejected(db: Database[Any], name: str, flt: Filter, fields: FieldMap) -> list[str]:
    return sorted(d["_id"] for d in db[name].find({"$nor": [compile_filter(flt, fields)]}, {"_id": 1}))


# -- hand-checked cases -------------------------------------------------------------------------------------
CASES = [
    (c("session_id", S, Op.EQ, "s2"), ["t1", "t3"]),
    (c("created_by", S, Op.EQ, ""), ["t1", "t2"]),  # null reads as ""
    (c("created_by", S, Op.NE, ""), ["t0", "t3", "t4"]),
    (c("created_by", S, Op.EQ, "client"), ["t0"]),  # case-sensitive
    (c("payload_id", S, Op.CONTAINS, "%"), ["t1"]),  # no wildcard
    (c("payload_id", S, Op.CONTAINS, "."), ["t2"]),  # no regex either
    (c("payload_id", S, Op.CONTAINS, "*c"), ["t2"]),
    (c("payload_id", S, Op.CONTAINS, "\x00"), ["t4"]),
    (c("payload_id", S, Op.ENDS_WITH, "c"), ["t1"]),  # not before a final newline
    (c("payload_id", S, Op.ENDS_WITH, "\n"), ["t2"]),
    (c("payload_id", S, Op.STARTS_WITH, "é漢"), ["t3"]),
    (c("payload_id", S, Op.NOT_CONTAINS, "_"), ["t0", "t2", "t3"]),
    (c("pod_hostname", S, Op.ENDS_WITH, ""), ["t0", "t1", "t2", "t3", "t4"]),
    (c("pod_hostname", S, Op.NOT_CONTAINS, ""), []),
    (c("options.options", S, Op.EQ, "v", key="k"), ["t0"]),
    (c("options.options", S, Op.EQ, "", key="k"), ["t1", "t3"]),  # a missing key reads as ""
    (c("options.options", S, Op.EQ, "dots", key="a.b"), ["t2"]),
    (c("options.options", S, Op.EQ, "d", key="$dollar"), ["t0"]),
    (c("options.options", S, Op.EQ, "empty key", key=""), ["t1"]),
    (c("options.options", S, Op.EQ, "percent", key="%25"), ["t4"]),
    (c("options.options", S, Op.CONTAINS, "%_", key="q\"u'o.te"), ["t0"]),
    (c("status", ST, Op.NE, int(TaskStatus.COMPLETED)), ["t1", "t2", "t3", "t4"]),
    (c("options.priority", N, Op.LT, 1), ["t1", "t2"]),
    (c("created_at", D, Op.EQ, 10.5), ["t3"]),  # stored in whole milliseconds
    (c("created_at", D, Op.EQ, 10.5004), []),
    (c("created_at", D, Op.GT, 10.5001), []),
    (c("created_at", D, Op.LT, 10.5001), ["t0", "t1", "t2", "t3", "t4"]),
    (c("started_at", D, Op.NE, 10.5), ["t0", "t1", "t2", "t4"]),  # unset differs from any date
    (c("started_at", D, Op.LT, 1e12), ["t0", "t2", "t3"]),  # beyond what a BSON date can be read as
    (c("started_at", D, Op.GE, -1e12), ["t0", "t2", "t3"]),
    (c("processing_to_end_duration", T, Op.EQ, 0.0), ["t2"]),  # ended before it started: clamped to 0
    (c("creation_to_end_duration", T, Op.GE, 10.5), ["t0"]),
    (c("data_dependencies", A, Op.CONTAINS, "r1"), ["t0", "t3"]),
    (c("data_dependencies", A, Op.CONTAINS, ""), ["t3"]),
    (c("data_dependencies", A, Op.NOT_CONTAINS, "r1"), ["t1", "t2", "t4"]),
]


@pytest.mark.parametrize(("condition", "expected"), CASES, ids=[f"{x.field}-{x.op.value}" for x, _ in CASES])
def test_hand_checked_cases(db: Database[Any], condition: Condition, expected: list[str]) -> None:
    records = stored_tasks(db, TASKS)
    flt = Filter.of([condition])
    assert accepted(records, flt, "task_id") == expected
    assert selected(db, "tasks", flt, TASK_FIELDS) == expected
    assert rejected(db, "tasks", flt, TASK_FIELDS) == sorted({t.task_id for t in TASKS} - set(expected))


def test_many_equalities_become_one_in() -> None:
    flt = Filter.of(*([c("result_id", S, Op.EQ, f"r{i}")] for i in range(1000)))
    query = compile_filter(flt, RESULT_FIELDS)
    assert list(query) == ["_id"] and len(query["_id"]["$in"]) == 1000


def test_empty_filter_and_empty_conjunction_select_everything(db: Database[Any]) -> None:
    stored_tasks(db, TASKS)
    assert compile_filter(Filter(), TASK_FIELDS) == {}
    everything = ["t0", "t1", "t2", "t3", "t4"]
    assert selected(db, "tasks", Filter.of([c("task_id", S, Op.EQ, "none")], []), TASK_FIELDS) == everything


def test_unknown_fields_are_invalid_arguments() -> None:
    with pytest.raises(InvalidArgument, match="cannot be filtered or sorted on here"):
        compile_filter(Filter.of([c("no_such_field", S, Op.EQ, "x")]), TASK_FIELDS)
    with pytest.raises(InvalidArgument, match="cannot be filtered on"):
        compile_filter(Filter.of([c("payload_id", S, Op.EQ, "x", key="k")]), TASK_FIELDS)
    with pytest.raises(InvalidArgument):
        compile_sort([SortKey(FieldRef("options.partition_id"))], RESULT_FIELDS)


def test_inapplicable_operators_are_rejected() -> None:
    for kind, allowed in OPERATORS.items():
        for op in set(Op) - allowed:
            with pytest.raises(ValueError):
                compile_filter(Filter.of([Condition(FieldRef("status"), kind, op, 1)]), TASK_FIELDS)


def test_literal_pattern_matches_only_the_text(db: Database[Any]) -> None:
    texts = ["a.c", "abc", "a\\c", "(x)", "[^$]", "a\x00b", "é*", "a\nb", "{1}", "|"]
    load(db, "texts", [{"_id": str(i), "v": text} for i, text in enumerate(texts)])
    for i, text in enumerate(texts):
        found = [
            d["_id"]
            for d in db["texts"].find({"v": {"$regex": "^" + literal_pattern(text) + "(?![\\s\\S])"}})
        ]
        assert found == [str(i)], text


# -- every field kind x operator x value, against matches() --------------------------------------------------
FIELDS = cases.widened(cases.TASK_FIELDS_BY_KIND, {S: [FieldRef("options.options", "")]})
VALUES = cases.widened(
    cases.VALUES_BY_KIND,
    {S: [".", "a.b", "*c", "\n", "\x00"], D: [-1e12, 10.5001], T: [10.4996]},
)
COMBINATIONS = cases.combinations(FIELDS)


@pytest.mark.parametrize(
    ("ref", "kind", "op"), COMBINATIONS, ids=[f"{ref}-{op.value}" for ref, _, op in COMBINATIONS]
)
def test_queries_agree_with_matches(db: Database[Any], ref: FieldRef, kind: FieldKind, op: Op) -> None:
    records = stored_tasks(db, TASKS)
    for value in VALUES[kind]:
        condition = Condition(ref, kind, op, value)
        expected = sorted(t.task_id for t in records if condition_matches(t, condition))
        assert selected(db, "tasks", Filter.of([condition]), TASK_FIELDS) == expected, condition


# -- random records and random filters ----------------------------------------------------------------------
def values_of(kind: FieldKind) -> st.SearchStrategy[Any]:
    return st.sampled_from(VALUES[kind])


#: text as BSON can hold it (valid UTF-8: no lone surrogate)
texts = st.text(st.characters(codec="utf-8"), max_size=4)
odd_texts = values_of(S) | st.text(alphabet="ab%_.*é漢\\'\"\n\x00$", max_size=4)
maybe_texts = st.one_of(st.none(), odd_texts)
dates = st.one_of(
    st.none(), values_of(D).filter(lambda v: abs(v) < 1e11), st.floats(-10, 200, allow_nan=False)
)
map_keys = st.sampled_from(["k", "missing", "q\"u'o.te", "", "$x", "a.b", "%2E"]) | texts
tasks_strategy = cases.tasks_from(
    texts=maybe_texts,
    payloads=odd_texts,
    dates=dates,
    dependencies=st.lists(values_of(A) | texts, max_size=3),
    outputs=st.lists(values_of(A), max_size=2),
    options=st.dictionaries(map_keys, odd_texts | texts, max_size=3),
    values=VALUES,
)
FUZZ = settings(
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@FUZZ
@given(
    records=st.lists(tasks_strategy, max_size=6, unique_by=lambda t: t.task_id),
    flt=cases.filters_over(FIELDS, VALUES),
)
def test_random_task_filters_agree_with_matches(db: Database[Any], records: list[Task], flt: Filter) -> None:
    stored = stored_tasks(db, records)
    assert selected(db, "tasks", flt, TASK_FIELDS) == accepted(stored, flt, "task_id")
    assert rejected(db, "tasks", flt, TASK_FIELDS) == sorted(t.task_id for t in stored if not matches(t, flt))


SESSION_FILTER_FIELDS = {
    S: [FieldRef("session_id"), FieldRef("options.application_name"), FieldRef("options.options", "k")],
    D: [FieldRef("created_at"), FieldRef("closed_at"), FieldRef("cancelled_at")],
    T: [FieldRef("duration")],
    B: [FieldRef("client_submission"), FieldRef("worker_submission")],
    ST: [FieldRef("status")],
    A: [FieldRef("partition_ids")],
}
sessions_strategy = st.builds(
    lambda i, status, parts, created, closed, cancelled, client, worker, name, opts: Session(
        f"s{i}",
        status,
        parts,
        TaskOptions(application_name=name, options=opts),
        created if created is not None else 0.0,
        client,
        worker,
        cancelled_at=cancelled,
        closed_at=closed,
    ),
    st.integers(0, 10**6),
    st.sampled_from(list(SessionStatus)),
    st.lists(values_of(A), max_size=3),
    dates,
    dates,
    dates,
    st.booleans(),
    st.booleans(),
    odd_texts,
    st.dictionaries(map_keys, odd_texts, max_size=2),
)


@FUZZ
@given(
    records=st.lists(sessions_strategy, max_size=6, unique_by=lambda s: s.session_id),
    flt=cases.filters_over({**SESSION_FILTER_FIELDS, T: [FieldRef("duration")]}, VALUES),
)
def test_random_session_filters_agree_with_matches(
    db: Database[Any], records: list[Session], flt: Filter
) -> None:
    load(db, "sessions", [schema.session_to_document(s) for s in records])
    stored = [schema.session_from_document(d) for d in db["sessions"].find()]
    assert selected(db, "sessions", flt, SESSION_FIELDS) == accepted(stored, flt, "session_id")


# -- byte strings: a result's opaque id -----------------------------------------------------------------------
OPAQUE_IDS = [b"abc", b"\xff\xfeab", "é".encode(), b"", b"a%b", b"a\x00b", b"\xc3", b"\x0a\xbc", b"\xab\xcd"]
RESULTS = [
    Result(f"r{i}", "s", f"r{i}", ResultStatus.COMPLETED, 0.0, opaque_id=o) for i, o in enumerate(OPAQUE_IDS)
]


@pytest.mark.parametrize("op", sorted(OPERATORS[S]))
def test_opaque_id_compares_utf8_bytes(db: Database[Any], op: Op) -> None:
    load(db, "results", [schema.result_to_document(r) for r in RESULTS])
    for value in ["", "a", "ab", "abc", "b", "é", "%", "a%b", "a\x00", "\x00b", "x", "\n", "\u00bc"]:
        flt = Filter.of([c("opaque_id", S, op, value)])
        assert selected(db, "results", flt, RESULT_FIELDS) == accepted(RESULTS, flt, "result_id"), value


def test_opaque_id_matches_on_byte_boundaries(db: Database[Any]) -> None:
    """b"\\x0a\\xbc" has the hex digits "ab" in it, across two bytes: it does not contain b"\\xab"."""
    load(db, "results", [schema.result_to_document(r) for r in RESULTS])
    flt = Filter.of([c("opaque_id", S, Op.CONTAINS, "\u00ab")])  # UTF-8: c2 ab
    assert selected(db, "results", flt, RESULT_FIELDS) == accepted(RESULTS, flt, "result_id") == []


# -- ordering -------------------------------------------------------------------------------------------------
def _value_of(ref: FieldRef) -> Callable[[Task], Any]:
    return lambda record: resolve(record, ref)


def python_order(
    records: Sequence[Task], keys: Sequence[SortKey], key_of: Callable[[Task], str]
) -> list[str]:
    """What the store promises: unset values before any value ascending (after, descending), then the id."""
    ordered = sorted(records, key=key_of)
    for key in reversed(keys):
        present = [r for r in ordered if resolve(r, key.field) is not None]
        absent = [r for r in ordered if resolve(r, key.field) is None]
        present.sort(key=_value_of(key.field), reverse=key.descending)
        ordered = present + absent if key.descending else absent + present
    return [key_of(r) for r in ordered]


def ordered(db: Database[Any], *keys: SortKey) -> list[str]:
    return [d["_id"] for d in db["tasks"].find({}, {"_id": 1}).sort(compile_sort(keys, TASK_FIELDS))]


SORTABLE = [
    FieldRef("started_at"),
    FieldRef("ended_at"),
    FieldRef("payload_id"),
    FieldRef("options.priority"),
    FieldRef("options.options", "k"),
    FieldRef("processing_to_end_duration"),
    FieldRef("status"),
]


@FUZZ
@given(
    records=st.lists(tasks_strategy, min_size=1, max_size=8, unique_by=lambda t: t.task_id),
    keys=st.lists(
        st.builds(SortKey, st.sampled_from(SORTABLE), st.booleans()), max_size=2, unique_by=lambda k: k.field
    ),
)
def test_order_agrees_with_python(db: Database[Any], records: list[Task], keys: list[SortKey]) -> None:
    records = [replace(r, created_by="") for r in records]
    stored = stored_tasks(db, records)
    assert ordered(db, *keys) == python_order(stored, keys, lambda t: t.task_id)


def test_sort_ends_with_the_id_as_tie_break() -> None:
    keys = (SortKey(FieldRef("status")), SortKey(FieldRef("options.options", "a.b"), descending=True))
    assert compile_sort(keys, TASK_FIELDS) == [("Status", 1), ("Options.Options.a%2Eb", -1), ("_id", 1)]
    assert compile_sort((SortKey(FieldRef("task_id"), True),), TASK_FIELDS) == [("_id", -1)]


# -- stored form ----------------------------------------------------------------------------------------------
@given(st.text(st.characters(codec="utf-8")))
def test_map_keys_round_trip(key: str) -> None:
    encoded = schema.encode_key(key)
    assert schema.decode_key(encoded) == key
    assert encoded and "." not in encoded and "$" not in encoded and "\x00" not in encoded


@given(st.floats(-1e10, 1e10, allow_nan=False))
def test_times_round_down_to_the_millisecond_and_are_stable(seconds: float) -> None:
    stored = schema.round_time(seconds)
    assert stored <= seconds < stored + 0.0011
    assert schema.round_time(stored) == stored
    assert schema.from_date(schema.to_date(seconds)) == stored
