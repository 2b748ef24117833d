"""Folders that name their files: a layout class declares each of its paths once, as a path below one of its
fields, rather than as a property that repeats the join."""

from __future__ import annotations

from pathlib import Path
from typing import Any, overload


class Below:
    """The path `parts` below the path the instance holds in its field `field`, computed on each access like
    a read-only property: `deploy = Below("generated", "deploy")`, then `plan = deploy / "plan.json"`."""

    __slots__ = ("field", "parts")

    def __init__(self, field: str, *parts: str) -> None:
        self.field = field
        self.parts = parts

    def __truediv__(self, name: str) -> Below:
        return Below(self.field, *self.parts, name)

    @overload
    def __get__(self, instance: None, owner: type[Any]) -> Below: ...

    @overload
    def __get__(self, instance: object, owner: type[Any]) -> Path: ...

    def __get__(self, instance: object | None, owner: type[Any]) -> Below | Path:
        if instance is None:
            return self
        base: Path = getattr(instance, self.field)
        return base.joinpath(*self.parts)
