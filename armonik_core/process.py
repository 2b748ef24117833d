"""What every ArmoniK process does around its work: read its settings, and run until told to stop."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, TypeVar

from armonik_core.config import ConfigurationError

S = TypeVar("S")
T = TypeVar("T")

#: `Runtime__EventLoop`: `uvloop` (the default where it is installed) or `asyncio` (the standard loop).
EVENT_LOOPS = ("uvloop", "asyncio")


def settings_or_exit(load: Callable[[], S], program: str) -> S:
    """The settings, or exit status 2 with the offending variable named: a typo must not start a process."""
    try:
        return load()
    except ConfigurationError as exc:
        print(f"{program}: invalid configuration: {exc}", file=sys.stderr)
        sys.exit(2)


async def wait_for_stop_signal() -> None:
    """Return at the first SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def event_loop_choice(env: Mapping[str, str]) -> str:
    """The event loop a process runs on (`Runtime__EventLoop`); an unknown value is a configuration error."""
    choice = env.get("Runtime__EventLoop", "uvloop").strip().lower() or "uvloop"
    if choice not in EVENT_LOOPS:
        raise ConfigurationError(
            f"Runtime__EventLoop must be one of {', '.join(EVENT_LOOPS)}, not {choice!r}"
        )
    if choice == "uvloop":
        try:
            import uvloop  # noqa: F401
        except ImportError:  # not installed on this platform (Windows): the standard loop
            return "asyncio"
    return choice


def run_event_loop(main: Coroutine[Any, Any, T], program: str) -> T:
    """Run `main` to completion on the chosen event loop.

    The control plane and the agents spend most of their CPU in the event loop's own machinery around gRPC
    calls (callbacks, wake-ups, timers); uvloop runs that machinery in C and saves about a tenth of an
    agent's CPU per task, measured with `benchmarks/throughput.py`."""
    try:
        choice = event_loop_choice(os.environ)
    except ConfigurationError as exc:
        main.close()
        print(f"{program}: invalid configuration: {exc}", file=sys.stderr)
        sys.exit(2)
    settle_heap()
    if choice == "uvloop":
        import uvloop

        return uvloop.run(main)
    return asyncio.run(main)


def settle_heap() -> None:
    """Keep the garbage collector's full collections short: what a process holds once started (its modules,
    the protocol's descriptors) lives as long as it does, and `gc.freeze` takes it out of the collector's
    sight, so that a full collection no longer walks it. A full collection of a control plane under load
    took 10.6 ms here, a pause that every request and task in flight waits through; the 39,000 objects of a
    started control plane alone take 6 ms to walk, and none once frozen."""
    gc.collect()
    gc.freeze()
