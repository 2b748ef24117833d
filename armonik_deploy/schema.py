"""Typed reading of Terraform-style variable files into dataclasses, with errors that name the key path.

A schema is a dataclass whose fields carry type hints (`str`, `int`, `float`, `bool`, `Any`, `list[T]`,
`dict[str, T]`, `Literal[...]`, unions, nested dataclasses) and defaults. As in Terraform's
`optional(type, default)`, a missing key or an explicit `null` takes the field's default; a field typed
`X | None` keeps `null` (a disabled block). A field without default is required. Field metadata may add
constraints: `min`, `max`, `pattern`, `non_empty`.

Every problem raises `SchemaError(path, message)`, where `path` reads like `compute_plane.default.worker[0]`.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar, Union

T = TypeVar("T")

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


class SchemaError(ValueError):
    """A value does not fit the schema; `path` locates it, `message` says what was expected."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message


def key_path(parent: str, key: str) -> str:
    """`parent.key`, or `parent["key"]` when the key is not a plain identifier."""
    if _IDENTIFIER.match(key):
        return f"{parent}.{key}" if parent else key
    return f'{parent}["{key}"]'


def index_path(parent: str, index: int) -> str:
    return f"{parent}[{index}]"


def _origin(hint: Any) -> Any:
    return typing.get_origin(hint)


def _is_union(hint: Any) -> bool:
    return _origin(hint) in (Union, types.UnionType)


def describe(hint: Any) -> str:
    """What a type means to a person writing the file: 'an integer', 'a list of strings', ..."""
    if hint is Any:
        return "any value"
    if hint is str:
        return "a string"
    if hint is bool:
        return "true or false"
    if hint is int:
        return "an integer"
    if hint is float:
        return "a number"
    if _origin(hint) is Literal:
        return "one of " + ", ".join(repr(v) for v in typing.get_args(hint))
    if _is_union(hint):
        parts = [describe(a) for a in typing.get_args(hint) if a is not type(None)]
        text = " or ".join(dict.fromkeys(parts))
        return text + (" or null" if type(None) in typing.get_args(hint) else "")
    if _origin(hint) is list:
        (item,) = typing.get_args(hint)
        return f"a list of {_plural(item)}"
    if _origin(hint) is dict:
        _, value = typing.get_args(hint)
        return f"a map of {_plural(value)}" if value is not Any else "an object"
    if dataclasses.is_dataclass(hint):
        return "an object"
    return getattr(hint, "__name__", str(hint))


def _plural(hint: Any) -> str:
    words = {str: "strings", int: "integers", float: "numbers", bool: "booleans", Any: "values"}
    if hint in words:
        return words[hint]
    if dataclasses.is_dataclass(hint):
        return "objects"
    return f"({describe(hint)})"


def show(value: Any) -> str:
    """The kind of a value found in the file, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, str):
        text = value if len(value) <= 40 else value[:37] + "..."
        return f'the string "{text}"'
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _mismatch(path: str, hint: Any, value: Any) -> SchemaError:
    return SchemaError(path, f"expected {describe(hint)}, got {show(value)}")


def convert(value: Any, hint: Any, path: str) -> Any:
    """`value` (from JSON or HCL) checked against `hint` and converted (dataclasses built)."""
    if hint is Any:
        return value
    if _is_union(hint):
        return _convert_union(value, hint, path)
    if value is None:
        raise SchemaError(path, f"expected {describe(hint)}, got null")
    if hint is str:
        if isinstance(value, str):
            return value
        raise _mismatch(path, hint, value)
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise _mismatch(path, hint, value)
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise _mismatch(path, hint, value)
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise _mismatch(path, hint, value)
    origin = _origin(hint)
    if origin is Literal:
        if value in typing.get_args(hint) and type(value) in {type(a) for a in typing.get_args(hint)}:
            return value
        raise _mismatch(path, hint, value)
    if origin is list:
        if not isinstance(value, list):
            raise _mismatch(path, hint, value)
        (item,) = typing.get_args(hint)
        return [convert(v, item, index_path(path, i)) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise _mismatch(path, hint, value)
        _, item = typing.get_args(hint)
        for key in value:
            if not isinstance(key, str) or not key:
                raise SchemaError(path, f"keys must be non-empty strings, got {key!r}")
        return {k: convert(v, item, key_path(path, k)) for k, v in value.items()}
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return build(hint, value, path)
    raise TypeError(f"unsupported schema type {hint!r} at {path}")


def _convert_union(value: Any, hint: Any, path: str) -> Any:
    options = typing.get_args(hint)
    if value is None:
        if type(None) in options:
            return None
        raise SchemaError(path, f"expected {describe(hint)}, got null")
    candidates = [o for o in options if o is not type(None)]
    # Prefer the alternative whose shape matches, so that its own (more precise) error is reported.
    shaped = [o for o in candidates if _shape_matches(o, value)]
    errors: list[SchemaError] = []
    for option in shaped or candidates:
        try:
            return convert(value, option, path)
        except SchemaError as exc:
            errors.append(exc)
    if len(shaped) == 1 and errors:
        raise errors[0]
    raise _mismatch(path, hint, value)


def _shape_matches(hint: Any, value: Any) -> bool:
    origin = _origin(hint)
    if isinstance(value, dict):
        return origin is dict or (dataclasses.is_dataclass(hint) and isinstance(hint, type)) or hint is Any
    if isinstance(value, list):
        return origin is list or hint is Any
    return not (origin in (dict, list) or dataclasses.is_dataclass(hint))


def build(cls: type[T], value: Any, path: str) -> T:
    """An instance of the dataclass `cls` from a mapping; unknown keys, missing required keys are errors."""
    if not isinstance(value, Mapping):
        raise SchemaError(path, f"expected an object, got {show(value)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    for key in value:
        if key not in fields:
            raise SchemaError(key_path(path, str(key)), unknown_key_message(str(key), fields))
    arguments: dict[str, Any] = {}
    for name, spec in fields.items():
        here = key_path(path, name)
        hint = hints[name]
        has_default = (
            spec.default is not dataclasses.MISSING or spec.default_factory is not dataclasses.MISSING
        )
        raw = value.get(name)
        if raw is None and not (name in value and _is_union(hint) and type(None) in typing.get_args(hint)):
            if not has_default:
                raise SchemaError(here, f"required: {describe(hint)}")
            continue  # the field's default, as Terraform's optional(type, default) does for null
        converted = convert(raw, hint, here)
        check_constraints(converted, spec.metadata, here)
        arguments[name] = converted
    instance = cls(**arguments)
    validate = getattr(instance, "validate", None)
    if callable(validate):
        validate(path)
    return instance


def unknown_key_message(key: str, allowed: Mapping[str, Any] | list[str]) -> str:
    names = sorted(allowed)
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"unknown key (expected one of: {', '.join(names)}){hint}"


def check_constraints(value: Any, metadata: Mapping[str, Any], path: str) -> None:
    if value is None:
        return
    if "min" in metadata and value < metadata["min"]:
        raise SchemaError(path, f"must be at least {metadata['min']}, got {value}")
    if "max" in metadata and value > metadata["max"]:
        raise SchemaError(path, f"must be at most {metadata['max']}, got {value}")
    if metadata.get("non_empty") and len(value) == 0:
        raise SchemaError(path, "must not be empty")
    pattern = metadata.get("pattern")
    if pattern is not None:
        names = value if isinstance(value, dict) else [value]
        for name in names:
            if not re.fullmatch(pattern, name):
                where = key_path(path, name) if isinstance(value, dict) else path
                raise SchemaError(where, f"{metadata.get('pattern_text', 'does not match ' + pattern)}")


def constraint(**metadata: Any) -> dict[str, Any]:
    """Field metadata, e.g. `field(default=1, metadata=constraint(min=0))`."""
    return metadata


def to_plain(value: Any) -> Any:
    """A dataclass tree back to JSON-friendly dicts and lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_plain(v) for v in value]
    return value
