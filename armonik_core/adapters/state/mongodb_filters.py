"""Compile the domain filter model to MongoDB queries, with the semantics of `domain.filters.matches`.

Each listed entity has a `FieldMap` (record attribute -> document field, and how the field is stored);
`compile_filter` builds a query document and `compile_sort` a sort specification from it. The store
keeps every field it writes, so an unset value is a null field: an unset string reads as "", an unset
date equals nothing, differs from everything and is neither before nor after anything, as in `matches`.

- Strings: equality is binary, like Python's; contains / starts with / ends with are regular expressions
  whose every ASCII character other than a letter or digit is written `\\xHH`, which PCRE (the server) and
  Python's `re` (mongomock) both read as that literal character, NUL included (a BSON regex cannot hold a
  raw NUL). "Ends with" is anchored by `(?![\\s\\S])`, since `$` also matches before a final newline and
  the two engines spell "end of text" differently (`\\z`, `\\Z`).
- Byte strings (a result's opaque id) are compared through their hexadecimal text, on byte boundaries.
- Dates are BSON dates (milliseconds): a value is compared with the stored milliseconds through
  `mongodb_schema.to_millis`, so that a value between two milliseconds compares as `matches` does on the
  records read back.
- Negation is `$nor`, which MongoDB applies to null and missing fields the same way as to set ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from armonik_core.adapters.state import mongodb_schema as schema
from armonik_core.domain.errors import InvalidArgument
from armonik_core.domain.filters import OPERATORS, Condition, FieldKind, FieldRef, Filter, Op, SortKey

Query = dict[str, Any]

ALWAYS: Query = {}
NEVER: Query = {"_id": {"$in": []}}

_OPTIONS_MAP = "options.options"


class Storage(str, Enum):
    PLAIN = "plain"
    DATE = "date"
    #: bytes stored next to their hexadecimal text, which is what is compared
    BYTES = "bytes"


@dataclass(frozen=True, slots=True)
class Target:
    """Where a record attribute is in the document, and how it is stored."""

    path: str
    storage: Storage = Storage.PLAIN


@dataclass(frozen=True, slots=True)
class FieldMap:
    """The fields of one entity that filters and sorts may name. `options_path` is the document path of the
    task options (None when the entity has none); `map_path` the one of its free-form options map."""

    fields: Mapping[str, Target]
    options_path: str | None = None

    def target(self, ref: FieldRef) -> Target:
        if ref.key is not None:
            if ref.path != _OPTIONS_MAP or self.options_path is None:
                raise InvalidArgument(f"Field {ref} cannot be filtered on")
            return Target(f"{self.options_path}.Options.{schema.encode_key(ref.key)}")
        found = self.fields.get(ref.path)
        if found is None and self.options_path is not None and ref.path.startswith("options."):
            name = schema.OPTION_FIELDS.get(ref.path.removeprefix("options."))
            found = Target(f"{self.options_path}.{name}") if name else None
        if found is None:
            raise InvalidArgument(f"Field {ref} cannot be filtered or sorted on here")
        return found


def _plain(fields: Mapping[str, str]) -> dict[str, Target]:
    return {attribute: Target(path) for attribute, path in fields.items()}


def _dates(fields: Mapping[str, str]) -> dict[str, Target]:
    return {attribute: Target(path, Storage.DATE) for attribute, path in fields.items()}


TASK_FIELDS = FieldMap(
    {
        **_plain(schema.TASK_FIELDS),
        **_dates(schema.TASK_DATES),
        **_plain(schema.TASK_DURATIONS),
    },
    options_path="Options",
)
SESSION_FIELDS = FieldMap(
    {**_plain(schema.SESSION_FIELDS), **_dates(schema.SESSION_DATES)}, options_path="Options"
)
RESULT_FIELDS = FieldMap(
    {
        **_plain(schema.RESULT_FIELDS),
        **_dates(schema.RESULT_DATES),
        "opaque_id": Target("OpaqueIdHex", Storage.BYTES),
    }
)
PARTITION_FIELDS = FieldMap(_plain(schema.PARTITION_FIELDS))
#: Applications are filtered as the tasks they group (the task options)...
APPLICATION_FILTER_FIELDS = FieldMap({}, options_path="Options")
#: ... and sorted on the fields of the groups, `_id.<option>`.
APPLICATION_SORT_FIELDS = FieldMap(
    {
        f"options.{attribute}": Target(f"_id.{schema.OPTION_FIELDS[attribute]}")
        for attribute in (
            "application_name",
            "application_version",
            "application_namespace",
            "application_service",
        )
    }
)


# -- filters ------------------------------------------------------------------------------------------------
def compile_filter(flt: Filter, fields: FieldMap) -> Query:
    """The query selecting exactly the documents whose records `matches` accepts.

    Alternatives that are a lone equality on the same string or status field (the SDK waits for a thousand
    results with a thousand `result_id ==` alternatives) become one `$in`, which an index serves."""
    if flt.is_empty:
        return ALWAYS
    disjuncts: list[Query] = []
    alternatives: dict[str, list[Any]] = {}
    for conjunction in flt.any_of:
        if len(conjunction) == 1 and _collapsible(conjunction[0], fields):
            condition = conjunction[0]
            alternatives.setdefault(fields.target(condition.field).path, []).append(
                _equality_value(condition)
            )
            continue
        disjuncts.append(_all_of([_condition(condition, fields) for condition in conjunction]))
    for path, values in alternatives.items():
        if "" in values:  # an unset string reads as ""
            values = [*values, None]
        disjuncts.append({path: {"$in": values}} if len(values) > 1 else {path: values[0]})
    return _any_of(disjuncts)


def _collapsible(condition: Condition, fields: FieldMap) -> bool:
    return (
        condition.op is Op.EQ
        and condition.kind in (FieldKind.STRING, FieldKind.STATUS)
        and condition.op in OPERATORS[condition.kind]
        and fields.target(condition.field).storage is Storage.PLAIN
    )


def _equality_value(condition: Condition) -> Any:
    return str(condition.value) if condition.kind is FieldKind.STRING else int(condition.value)


def _all_of(queries: list[Query]) -> Query:
    if any(q is NEVER for q in queries):
        return NEVER
    queries = [q for q in queries if q]
    if not queries:
        return ALWAYS
    return queries[0] if len(queries) == 1 else {"$and": queries}


def _any_of(queries: list[Query]) -> Query:
    if any(not q for q in queries):
        return ALWAYS
    queries = [q for q in queries if q is not NEVER]
    if not queries:
        return NEVER
    return queries[0] if len(queries) == 1 else {"$or": queries}


def _negate(query: Query) -> Query:
    if query is NEVER:
        return ALWAYS
    if not query:
        return NEVER
    return {"$nor": [query]}


def _condition(condition: Condition, fields: FieldMap) -> Query:
    kind, op, value = condition.kind, condition.op, condition.value
    if op not in OPERATORS[kind]:
        raise ValueError(f"operator {op.value} does not apply to a {kind.value} field ({condition.field})")
    target = fields.target(condition.field)
    if kind is FieldKind.ARRAY:
        return {target.path: value} if op is Op.CONTAINS else {target.path: {"$ne": value}}
    if kind is FieldKind.STRING:
        if target.storage is Storage.BYTES:
            return _bytes(op, target.path, str(value).encode("utf-8").hex())
        return _string(op, target.path, str(value))
    if target.storage is Storage.DATE:
        return _date(op, target.path, float(value))
    if kind is FieldKind.BOOLEAN:
        value = bool(value)
    elif kind is FieldKind.STATUS:
        value = int(value)
    return _scalar(op, target.path, value)


_ORDERING = {Op.LT: "$lt", Op.LE: "$lte", Op.GE: "$gte", Op.GT: "$gt"}


def _scalar(op: Op, path: str, value: Any) -> Query:
    """Numbers, durations, booleans and statuses. `$ne` matches null (unset differs from any value), and an
    ordering operator never does (MongoDB compares numbers only with numbers)."""
    if op is Op.EQ:
        return {path: value}
    if op is Op.NE:
        return {path: {"$ne": value}}
    return {path: {_ORDERING[op]: value}}


def _date(op: Op, path: str, seconds: float) -> Query:
    """Stored dates are whole milliseconds m, read back as m / 1000. With f the largest m such that
    m / 1000 <= seconds: m / 1000 < seconds is m < f when seconds is exactly f / 1000, else m <= f; and so on."""
    millis = schema.to_millis(seconds)
    exact = millis / 1000 == seconds
    if millis > schema.MAX_MILLIS:  # after every date a BSON date can be read back as
        set_values = {path: {"$ne": None}}
        return {Op.LT: set_values, Op.LE: set_values, Op.NE: ALWAYS}.get(op, NEVER)
    if millis < schema.MIN_MILLIS:
        set_values = {path: {"$ne": None}}
        return {Op.GT: set_values, Op.GE: set_values, Op.NE: ALWAYS}.get(op, NEVER)
    date = schema.date_from_millis(millis)
    if op is Op.EQ:
        return {path: date} if exact else NEVER
    if op is Op.NE:
        return {path: {"$ne": date}} if exact else ALWAYS
    if op is Op.LT:
        return {path: {"$lt" if exact else "$lte": date}}
    if op is Op.GE:
        return {path: {"$gte" if exact else "$gt": date}}
    return {path: {_ORDERING[op]: date}}


def _string(op: Op, path: str, value: str) -> Query:
    if op is Op.EQ:
        return {path: {"$in": ["", None]}} if value == "" else {path: value}
    if op is Op.NE:
        return {path: {"$nin": ["", None]}} if value == "" else {path: {"$ne": value}}
    if value == "":  # every string, unset ones included, contains, starts and ends with ""
        return NEVER if op is Op.NOT_CONTAINS else ALWAYS
    pattern = literal_pattern(value)
    if op is Op.CONTAINS:
        return {path: {"$regex": pattern}}
    if op is Op.NOT_CONTAINS:
        return _negate({path: {"$regex": pattern}})
    if op is Op.STARTS_WITH:
        return {path: {"$regex": "^" + pattern}}
    return {path: {"$regex": pattern + _END}}


_END = r"(?![\s\S])"


def _bytes(op: Op, path: str, hex_value: str) -> Query:
    """The hexadecimal text of bytes: two digits per byte, so a match inside must start on an even digit."""
    if op is Op.EQ:
        return {path: hex_value}
    if op is Op.NE:
        return {path: {"$ne": hex_value}}
    if hex_value == "":
        return NEVER if op is Op.NOT_CONTAINS else ALWAYS
    if op is Op.CONTAINS:
        return {path: {"$regex": "^(?:[0-9a-f]{2})*?" + hex_value}}
    if op is Op.NOT_CONTAINS:
        return _negate({path: {"$regex": "^(?:[0-9a-f]{2})*?" + hex_value}})
    if op is Op.STARTS_WITH:
        return {path: {"$regex": "^" + hex_value}}
    return {path: {"$regex": hex_value + _END}}


def literal_pattern(text: str) -> str:
    """A regular expression matching `text` literally, in PCRE and in Python's `re` alike."""
    return "".join(c if c.isalnum() or ord(c) > 127 else f"\\x{ord(c):02x}" for c in text)


# -- sorting ------------------------------------------------------------------------------------------------
def compile_sort(
    sort: Sequence[SortKey], fields: FieldMap, tie_break: str | None = "_id"
) -> list[tuple[str, int]]:
    """A sort specification. MongoDB puts null first ascending and last descending, as if it were smaller
    than any value, as the SQLite store does; `tie_break` (ascending) makes pages stable."""
    spec: list[tuple[str, int]] = []
    for key in sort:
        path = fields.target(key.field).path
        if all(path != existing for existing, _ in spec):
            spec.append((path, -1 if key.descending else 1))
    if tie_break is not None and all(path != tie_break for path, _ in spec):
        spec.append((tie_break, 1))
    return spec
