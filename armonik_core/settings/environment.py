"""The `Section__Key` environment variables every settings module reads, and the error a bad one raises.

The lowest settings module: it imports nothing of the project, so that `armonik_core.config`, the TLS
settings and the backends' own settings all read variables the same way without importing one another.
Keys are matched case-insensitively, as .NET's configuration does upstream.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

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
        raw = self.get(key, str(default))
        try:
            return int(raw)
        except ValueError:
            raise ConfigurationError(f"{key}={raw!r}: expected an integer") from None

    def get_float(self, key: str, default: float) -> float:
        raw = self.get(key, str(default))
        try:
            return float(raw)
        except ValueError:
            raise ConfigurationError(f"{key}={raw!r}: expected a number") from None

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

    def indexed(self, prefix: str) -> list[str]:
        """Values of `prefix__0`, `prefix__1`, ... in index order (the .NET array convention)."""
        head = prefix.lower() + "__"
        found: list[tuple[int, str]] = []
        for key, value in self._values.items():
            if key.startswith(head) and key[len(head) :].isdigit():
                found.append((int(key[len(head) :]), value))
        return [value for _, value in sorted(found)]
