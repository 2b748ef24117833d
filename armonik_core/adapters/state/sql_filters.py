"""Compile the domain filter model to SQLite, with the semantics of `armonik_core.domain.filters.matches`.

The store supplies `column_for`, the SQL expression of each field, stored as: dates and durations REAL
seconds (NULL when unset), statuses INTEGER, booleans INTEGER 0/1, arrays JSON text arrays, strings TEXT.
A compiled condition is 1 exactly when `matches` accepts the record and 0 otherwise, never NULL, so the
store may combine or negate it freely. Values are always bound as `?` parameters; only `json_member`
writes a value (a map key) into the SQL text, as a properly quoted literal.

Unset values, as `matches` reads them: an unset string is "", an unset array is empty, and an unset date,
duration or number equals nothing, differs from everything, and is neither before nor after anything.

String operators other than equality work on the UTF-8 bytes (`CAST(... AS BLOB)`): for text that is the
same as comparing characters, it cannot be fooled by `%` or `_` the way LIKE would, it is case-sensitive
(LIKE is not), and it gives byte-string columns such as a result's opaque id a meaning, the one `matches`
uses. For equality on such a column the store should expose it as `CAST(opaque_id AS TEXT)`, since SQLite
never finds a BLOB equal to a TEXT value.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from armonik_core.domain.filters import OPERATORS, Condition, FieldKind, FieldRef, Filter, Op, SortKey

ColumnFor = Callable[[FieldRef], str]
_Sql = tuple[str, tuple[Any, ...]]

_ORDERING = {Op.LT: "<", Op.LE: "<=", Op.GE: ">=", Op.GT: ">"}


def compile_filter(flt: Filter, column_for: ColumnFor) -> tuple[str, list[Any]]:
    """A WHERE expression (parenthesised, "1" when the filter is empty) and its positional parameters.

    SQLite refuses expressions nested more than 1000 deep, and `a OR b OR c ...` nests one level per term:
    the SDK's `wait_for_result_availability` sends a thousand `result_id ==` alternatives at once. Equality
    alternatives on one field therefore become a single `IN (...)`, and what remains is OR-ed as a balanced
    tree, whose depth grows with the logarithm of the number of terms."""
    if flt.is_empty:
        return "1", []
    params: list[Any] = []
    disjuncts: list[str] = []
    alternatives: dict[str, list[Any]] = {}
    for conjunction in flt.any_of:
        conditions = [_condition(condition, column_for(condition.field)) for condition in conjunction]
        if len(conditions) == 1 and conditions[0][0].endswith(_IS_PARAMETER) and len(conditions[0][1]) == 1:
            sql, (value,) = conditions[0]
            alternatives.setdefault(sql[: -len(_IS_PARAMETER)], []).append(value)
            continue
        for _, condition_params in conditions:
            params.extend(condition_params)
        disjuncts.append(_balanced(" AND ", [sql for sql, _ in conditions]) if conditions else "1")
    for expression, values in alternatives.items():
        if None in values:  # `x IN (NULL)` is never true, where `x IS NULL` may be
            disjuncts.extend(f"{expression}{_IS_PARAMETER}" for _ in values)
            params.extend(values)
            continue
        if len(values) == 1:  # the usual `session_id == X`
            disjuncts.append(f"{expression}{_IS_PARAMETER}")
        else:
            # A compiled condition is 1 or 0, never NULL, and an unset column IN (...) would be NULL: the
            # NULL test makes it 0 without wrapping the column in a function (COALESCE), which would hide
            # it from its index and turn every listing of a session into a scan of the whole table.
            places = ",".join("?" * len(values))
            disjuncts.append(f"({expression} IN ({places}) AND {expression} IS NOT NULL)")
        params.extend(values)
    return "(" + _balanced(" OR ", disjuncts) + ")", params


_IS_PARAMETER = " IS ?"


def _balanced(operator: str, terms: list[str]) -> str:
    """`t1 op t2 op ...` parenthesised as a balanced binary tree (SQLite nests left-deep otherwise)."""
    if len(terms) == 1:
        return f"({terms[0]})"
    middle = len(terms) // 2
    return f"({_balanced(operator, terms[:middle])}{operator}{_balanced(operator, terms[middle:])})"


def compile_order(sort: Sequence[SortKey], column_for: ColumnFor) -> str:
    """An ORDER BY body (empty when `sort` is: then omit the clause) with unset values first ascending and
    last descending, as if they were smaller than any value."""
    return ", ".join(
        f"{column_for(key.field)} {'DESC NULLS LAST' if key.descending else 'ASC NULLS FIRST'}"
        for key in sort
    )


def json_member(json_column: str, key: str) -> str:
    """The SQL expression reading text value `key` of the JSON object in `json_column` (NULL if absent).

    `json_each` rather than `json_extract`: a JSON path cannot name a key containing a double quote in
    SQLite before 3.45, whereas `json_each.key` is the decoded key and any key can be a quoted literal.
    (SQLite 3.40 cuts JSON strings at an escaped NUL, so keys and values holding one cannot be matched.)
    """
    return f"(SELECT json_each.value FROM json_each({json_column}) WHERE json_each.key = {sql_literal(key)})"


def sql_literal(text: str) -> str:
    """`text` as an SQL string literal: quotes doubled, and NUL characters (which cannot appear in the
    statement text) spliced in with char(0)."""
    quoted = "'" + text.replace("'", "''") + "'"
    return quoted.replace("\x00", "' || char(0) || '")


def _condition(condition: Condition, column: str) -> _Sql:
    kind, op, value = condition.kind, condition.op, condition.value
    if op not in OPERATORS[kind]:
        raise ValueError(f"operator {op.value} does not apply to a {kind.value} field ({condition.field})")
    if kind is FieldKind.ARRAY:
        return _array(op, column, value)
    if kind is FieldKind.STRING:
        return _string(op, column, str(value))
    if kind is FieldKind.BOOLEAN:
        value = int(bool(value))
    elif kind is FieldKind.STATUS:
        value = int(value)
    return _scalar(op, column, value)


def _scalar(op: Op, column: str, value: Any) -> _Sql:
    """Numbers, dates, durations, booleans and statuses. `IS` / `IS NOT` make NULL differ from any value,
    and the NULL test keeps an ordering comparison with NULL false rather than unknown; both still let
    SQLite use an index on the column."""
    if op is Op.EQ:
        return f"{column} IS ?", (value,)
    if op is Op.NE:
        return f"{column} IS NOT ?", (value,)
    return f"({column} IS NOT NULL AND {column} {_ORDERING[op]} ?)", (value,)


def _string(op: Op, column: str, value: str) -> _Sql:
    if op in (Op.EQ, Op.NE):
        return _string_equality(op is Op.EQ, column, value)
    text = f"CAST(COALESCE({column}, '') AS BLOB)"
    needle = value.encode("utf-8")
    if op is Op.CONTAINS:
        return f"instr({text}, ?) > 0", (needle,)
    if op is Op.NOT_CONTAINS:
        return f"instr({text}, ?) = 0", (needle,)
    # substr of an empty BLOB is NULL, hence the COALESCE. For ENDS_WITH, the start index is <= 0 only when
    # the needle is longer than the text, and then substr returns at most the text, which cannot match.
    if op is Op.STARTS_WITH:
        return f"COALESCE(substr({text}, 1, length(?)), x'') = ?", (needle, needle)
    return f"COALESCE(substr({text}, length({text}) - length(?) + 1), x'') = ?", (needle, needle)


def _string_equality(equal: bool, column: str, value: str) -> _Sql:
    """An unset string equals "". Only comparing with "" needs COALESCE, which would hide the column
    from its index: a NULL column cannot equal a non-empty value."""
    if value == "":
        return f"COALESCE({column}, '') {'=' if equal else '<>'} ''", ()
    return f"{column} {'IS' if equal else 'IS NOT'} ?", (value,)


def _array(op: Op, column: str, value: Any) -> _Sql:
    exists = f"EXISTS (SELECT 1 FROM json_each({column}) WHERE json_each.value = ?)"
    return (exists if op is Op.CONTAINS else "NOT " + exists), (value,)
