"""What every ArmoniK process does around its work: read its settings, and run until told to stop."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable
from typing import TypeVar

from armonik_core.config import ConfigurationError

S = TypeVar("S")


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
