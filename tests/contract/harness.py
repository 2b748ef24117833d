"""Harnesses the contract suites drive backends through (so a suite never names a concrete class)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from armonik_core.adapters.objects.base import ObjectStorage
from armonik_core.adapters.queue.base import TaskQueue


class ManualClock:
    """A clock that moves only when told to. It starts at the wall-clock time so that it stays comparable
    with the real clock of a helper process sharing the backend."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class QueueBackend:
    """One queue backend under test.

    `new_client()` opens another client on the same queue: a second process, or the same one after a restart.
    `clock` is None when the backend's time can't be injected (a broker's own timers); tests then wait for
    real, so `lease_seconds` must be short. `subprocess_setup` is Python source defining `make_queue()` that
    builds a client in another process, or None when the backend cannot be driven from a helper process.
    """

    name: str
    new_client: Callable[[], TaskQueue]
    clock: ManualClock | None
    lease_seconds: float
    subprocess_setup: str | None = None
    #: False when the backend gives a client's leases back as soon as the client closes or its process dies
    #: (a broker requeues the deliveries of a closed connection at once) rather than when they expire.
    leases_outlive_client: bool = True
    clients: list[TaskQueue] = field(default_factory=list)

    @property
    def supports_clock(self) -> bool:
        return self.clock is not None

    def open(self) -> TaskQueue:
        client = self.new_client()
        self.clients.append(client)
        return client

    async def advance(self, seconds: float) -> None:
        """Let `seconds` pass: instantly with an injected clock, by sleeping otherwise."""
        if self.clock is not None:
            self.clock.advance(seconds)
        else:
            await asyncio.sleep(seconds)

    async def expire_leases(self) -> None:
        """Let every lease taken so far (for `lease_seconds`) run out."""
        await self.advance(self.lease_seconds * 1.5)


@dataclass
class StorageBackend:
    """One object storage backend under test; `new_client()` opens another client on the same store."""

    name: str
    new_client: Callable[[], ObjectStorage]
    clients: list[ObjectStorage] = field(default_factory=list)

    def open(self) -> ObjectStorage:
        client = self.new_client()
        self.clients.append(client)
        return client
