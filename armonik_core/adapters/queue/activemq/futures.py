"""Settling the futures the asyncio side waits on, from the reactor thread: once, whoever comes first."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any


def resolve(future: Future[Any], value: Any) -> None:
    if not future.done():
        future.set_result(value)


def fail(future: Future[Any], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)


def nothing() -> None:
    pass


class Countdown:
    """Resolves `future` once `count` parts are done (at once when there are none)."""

    def __init__(self, future: Future[Any], count: int) -> None:
        self._future = future
        self._left = count
        if count == 0:
            resolve(future, None)

    def done(self) -> None:
        self._left -= 1
        if self._left == 0:
            resolve(self._future, None)
