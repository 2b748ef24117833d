"""The List RPCs' filter model, independent of protobuf and of any database.

A filter is a disjunction of conjunctions of conditions (the DNF the ArmoniK protos carry); an empty
disjunction matches everything. A field is named by a dotted path in the record (`status`,
`options.partition_id`) or, for the free-form options map, by `FieldRef("options.options", key)`.
Backends compile this to their query language; `matches` evaluates it in memory (the Events service
filters live changes with it), and both must agree.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import Any


class FieldKind(str, Enum):
    STRING = "string"
    NUMBER = "number"
    DATE = "date"
    DURATION = "duration"
    BOOLEAN = "boolean"
    ARRAY = "array"
    STATUS = "status"


class Op(str, Enum):
    EQ = "eq"
    NE = "ne"
    LT = "lt"
    LE = "le"
    GE = "ge"
    GT = "gt"
    CONTAINS = "contains"
    NOT_CONTAINS = "not_contains"
    STARTS_WITH = "starts_with"
    ENDS_WITH = "ends_with"


_ORDERED_OPS = frozenset({Op.EQ, Op.NE, Op.LT, Op.LE, Op.GE, Op.GT})

#: The operators that apply to each kind of field: exactly the pairs the protobuf filters can express.
#: `matches` and every backend reject the others rather than each inventing a meaning for them.
OPERATORS: MappingProxyType[FieldKind, frozenset[Op]] = MappingProxyType(
    {
        FieldKind.STRING: frozenset(
            {Op.EQ, Op.NE, Op.CONTAINS, Op.NOT_CONTAINS, Op.STARTS_WITH, Op.ENDS_WITH}
        ),
        FieldKind.NUMBER: _ORDERED_OPS,
        FieldKind.DATE: _ORDERED_OPS,
        FieldKind.DURATION: _ORDERED_OPS,
        FieldKind.BOOLEAN: frozenset({Op.EQ, Op.NE}),
        FieldKind.STATUS: frozenset({Op.EQ, Op.NE}),
        FieldKind.ARRAY: frozenset({Op.CONTAINS, Op.NOT_CONTAINS}),
    }
)


@dataclass(frozen=True, slots=True)
class FieldRef:
    """A record attribute (`path`), or one key of a mapping attribute when `key` is set."""

    path: str
    key: str | None = None

    def __str__(self) -> str:
        return self.path if self.key is None else f"{self.path}[{self.key!r}]"


@dataclass(frozen=True, slots=True)
class Condition:
    """`field op value`. Values are str, int, float seconds (dates and durations), bool or int status."""

    field: FieldRef
    kind: FieldKind
    op: Op
    value: Any


@dataclass(frozen=True, slots=True)
class Filter:
    """OR of ANDs. `Filter()` matches everything."""

    any_of: tuple[tuple[Condition, ...], ...] = ()

    @staticmethod
    def of(*conjunctions: Sequence[Condition]) -> Filter:
        return Filter(tuple(tuple(c) for c in conjunctions))

    @property
    def is_empty(self) -> bool:
        return not self.any_of


@dataclass(frozen=True, slots=True)
class SortKey:
    field: FieldRef
    descending: bool = False


@dataclass(frozen=True, slots=True)
class ListQuery:
    """One page of a filtered, sorted listing. `page` counts from 0."""

    filter: Filter = field(default_factory=Filter)
    sort: tuple[SortKey, ...] = ()
    page: int = 0
    page_size: int = 100


def resolve(record: Any, ref: FieldRef) -> Any:
    """Value of `ref` on a record (attributes, nested attributes and one mapping key)."""
    value = record
    for part in ref.path.split("."):
        value = value.get(part) if isinstance(value, dict) else getattr(value, part, None)
        if value is None:
            return None
    if ref.key is not None:
        return value.get(ref.key) if isinstance(value, dict) else None
    return value


def _compare(op: Op, actual: Any, expected: Any) -> bool:
    if op is Op.EQ:
        return bool(actual == expected)
    if op is Op.NE:
        return bool(actual != expected)
    if actual is None:
        return False
    if op is Op.LT:
        return bool(actual < expected)
    if op is Op.LE:
        return bool(actual <= expected)
    if op is Op.GE:
        return bool(actual >= expected)
    if op is Op.GT:
        return bool(actual > expected)
    if op is Op.CONTAINS:
        return bool(expected in actual)
    if op is Op.NOT_CONTAINS:
        return bool(expected not in actual)
    if op is Op.STARTS_WITH:
        return bool(actual.startswith(expected))
    if op is Op.ENDS_WITH:
        return bool(actual.endswith(expected))
    raise ValueError(f"operator {op.value} does not apply here")


def _string_operands(actual: Any, expected: Any) -> tuple[Any, Any]:
    """Unset strings read as "". Byte strings (a result's opaque id) are compared with the UTF-8 encoding
    of the value, byte by byte: the same answer as comparing text for valid UTF-8, and still defined (as it
    is in SQL) when the bytes are not UTF-8."""
    if actual is None:
        return "", str(expected)
    if isinstance(actual, (bytes, bytearray)):
        return bytes(actual), str(expected).encode("utf-8")
    return str(actual), str(expected)


def condition_matches(record: Any, condition: Condition) -> bool:
    kind, op, expected = condition.kind, condition.op, condition.value
    if op not in OPERATORS[kind]:
        raise ValueError(f"operator {op.value} does not apply to a {kind.value} field")
    actual = resolve(record, condition.field)
    if kind is FieldKind.ARRAY:
        present = expected in list(actual or ())
        return present if op is Op.CONTAINS else not present
    if kind is FieldKind.STRING:
        actual, expected = _string_operands(actual, expected)
    elif kind is FieldKind.STATUS and actual is not None:
        actual = int(actual)
    return _compare(op, actual, expected)


def matches(record: Any, flt: Filter) -> bool:
    if flt.is_empty:
        return True
    return any(all(condition_matches(record, c) for c in conj) for conj in flt.any_of)


Matcher = Callable[[Any], bool]


def _equality_field(conjunction: tuple[Condition, ...]) -> FieldRef | None:
    """The field of a conjunction that is one string equality (`field == "value"`), else None."""
    if len(conjunction) != 1:
        return None
    condition = conjunction[0]
    if condition.kind is FieldKind.STRING and condition.op is Op.EQ:
        return condition.field
    return None


def _membership(ref: FieldRef, values: frozenset[str]) -> Matcher:
    encoded = frozenset(value.encode("utf-8") for value in values)

    def member(record: Any) -> bool:
        actual = resolve(record, ref)
        if actual is None:
            return "" in values
        if isinstance(actual, (bytes, bytearray)):
            return bytes(actual) in encoded
        return str(actual) in values

    return member


def compile_matcher(flt: Filter) -> Matcher:
    """`matches(record, flt)` as a function, for a filter applied to many records (an event stream).

    Clients waiting on results send one conjunction `result_id == x` per result, thousands at once: such
    equalities on one field become a set lookup, so a record costs O(1) instead of O(conjunctions)."""
    if flt.is_empty:
        return lambda record: True
    by_field: dict[FieldRef, set[str]] = {}
    others: list[tuple[Condition, ...]] = []
    for conjunction in flt.any_of:
        ref = _equality_field(conjunction)
        if ref is None:
            others.append(conjunction)
        else:
            by_field.setdefault(ref, set()).add(str(conjunction[0].value))
    tests = [_membership(ref, frozenset(values)) for ref, values in by_field.items()]
    if others:
        rest = Filter(tuple(others))
        tests.append(lambda record: matches(record, rest))
    if len(tests) == 1:
        return tests[0]
    return lambda record: any(test(record) for test in tests)
