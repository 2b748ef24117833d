"""PymoniK's worker processor, for a polling agent that runs it in its own process (`Worker__Module`).

PymoniK builds its processor inside `run_pymonik_worker()`, decorated with the worker SDK's
`armonik_worker()`, and serves it at once; it is not a module attribute that an agent could import. Here
`run_pymonik_worker()` is run once with that decorator, in PymoniK's module only, replaced by one that keeps
the processor instead of serving it: the processor is then PymoniK's own, unchanged, whatever version of
PymoniK is installed. Use it as `module = "armonik_samples.pymonik_processor:processor"`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pymonik.worker as pymonik_worker


class _Captured:
    """What the replaced decorator returns: keeps the processor; `run()` serves nothing."""

    def __init__(self, processor: Callable[..., Any]) -> None:
        self.processor = processor

    def run(self, *args: Any, **kwargs: Any) -> None:
        return None


def _capture() -> Callable[..., Any]:
    original = pymonik_worker.armonik_worker
    captured: list[_Captured] = []

    def decorator(**kwargs: Any) -> Callable[[Callable[..., Any]], _Captured]:
        def wrap(function: Callable[..., Any]) -> _Captured:
            captured.append(_Captured(function))
            return captured[-1]

        return wrap

    pymonik_worker.armonik_worker = decorator  # type: ignore[assignment]
    try:
        pymonik_worker.run_pymonik_worker()
    finally:
        pymonik_worker.armonik_worker = original
    if len(captured) != 1:
        raise ImportError("run_pymonik_worker() did not define exactly one processor with armonik_worker()")
    return captured[0].processor


#: PymoniK's processor: takes a `TaskHandler`, returns an `Output`.
processor = _capture()
