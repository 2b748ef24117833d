"""The `Section__Key` environment variables every settings module reads, and the error a bad one raises.

The lowest settings module: it imports nothing of the project, so that `armonik_core.config`, the TLS
settings and the backends' own settings all read variables the same way without importing one another.
Keys are matched case-insensitively, as .NET's configuration does upstream.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

_Number = TypeVar("_Number", int, float)
_SERILOG_LEVELS = {
    "verbose": "DEBUG",
    "debug": "DEBUG",
    "information": "INFO",
    "info": "INFO",
    "warning": "WARNING",
    "error": "ERROR",
    "fatal": "CRITICAL",
    "critical": "CRITICAL",
}


def key_name(attribute: str) -> str:
    """The `Key` of a `Section__Key` variable that a settings attribute reads: `ca_path` -> `CaPath`."""
    return attribute.title().replace("_", "")


class ConfigurationError(ValueError):
    """A setting has a value that cannot be used; the message names the variable."""


class Environment:
    """Case-insensitive view of `Section__Key` variables."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        source = os.environ if environ is None else environ
        self._values = {key.lower(): value for key, value in source.items()}

    def get(self, key: str, default: str) -> str:
        return self._values.get(key.lower(), default)

    def get_int(self, key: str, default: int) -> int:
        return self._parsed(key, default, int, "an integer")

    def get_float(self, key: str, default: float) -> float:
        return self._parsed(key, default, float, "a number")

    def _parsed(self, key: str, default: _Number, parse: Callable[[str], _Number], expected: str) -> _Number:
        raw = self.get(key, str(default))
        try:
            return parse(raw)
        except ValueError:
            raise ConfigurationError(f"{key}={raw!r}: expected {expected}") from None

    def log_level(self) -> str:
        """`Serilog__MinimumLevel` (upstream's names: Verbose, Debug, Information, Warning, Error, Fatal, or
        Python's) as a Python logging level name."""
        raw = self.get("Serilog__MinimumLevel", "Information")
        level = _SERILOG_LEVELS.get(raw.strip().lower())
        if level is None:
            raise ConfigurationError(
                f"Serilog__MinimumLevel={raw!r}: expected one of Verbose, Debug, Information, Warning, Error, Fatal"
            )
        return level

    def get_bool(self, key: str, default: bool) -> bool:
        raw = self.get(key, str(default)).strip().lower()
        if raw in ("1", "true", "yes", "on"):
            return True
        if raw in ("0", "false", "no", "off"):
            return False
        raise ConfigurationError(f"{key}={raw!r}: expected true or false")

    def section(
        self, section: str, default: object, names: str, renamed: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """The attributes `names` (space-separated) of the settings `default`, each read from
        `{section}__{Name}` (the attribute in CamelCase, unless `renamed` names its key), as keyword arguments
        of the settings' class: a key that is unset keeps `default`'s value, and is read as that value's type."""
        renamed = renamed or {}
        values: dict[str, Any] = {}
        for name in names.split():
            key = f"{section}__{renamed.get(name) or key_name(name)}"
            value = getattr(default, name)
            if isinstance(value, bool):
                values[name] = self.get_bool(key, value)
            elif isinstance(value, int):
                values[name] = self.get_int(key, value)
            elif isinstance(value, float):
                values[name] = self.get_float(key, value)
            else:
                values[name] = self.get(key, value)
        return values

    def indexed(self, prefix: str) -> list[str]:
        """Values of `prefix__0`, `prefix__1`, ... in index order (the .NET array convention)."""
        head = prefix.lower() + "__"
        found: list[tuple[int, str]] = []
        for key, value in self._values.items():
            if key.startswith(head) and key[len(head) :].isdigit():
                found.append((int(key[len(head) :]), value))
        return [value for _, value in sorted(found)]
