"""The control plane's own queue on the embedded target: an in-memory index over the state store.

When the control plane owns the state store (the local target), the queue need not be a second durable
store: a ready task *is* a SUBMITTED row in the state, committed in the very transaction that made it ready.
This queue keeps, per partition, a heap of those tasks (highest priority first, then first in) and the
leases of the tasks agents hold, and is rebuilt from the state at start-up (`recover`). Publishing, taking
and acknowledging cost no I/O at all, where a file queue costs a commit each, on every task's path.

A million queued tasks must fit in a few hundred megabytes: a waiting task is one heap entry
`(key, task id, session id, deliveries)`, its priority and order folded into one integer key, its session's
id shared by every task of the session (interned), and its partition implied by its heap; the
`QueueMessage` is rebuilt when the task is taken. A message object, a separate order counter and a copy of
the session and partition ids per task cost about 390 bytes per queued task; this about 230.

Lease handles are `<task id>@<agent>`, so that after a restart of the control plane the leases rebuilt from
the tasks' owners match what the agents hold and their heartbeats keep the tasks theirs; an agent whose
lease expired and whose task went to another agent holds a different handle, which acks and renews nothing.
"""

from __future__ import annotations

import heapq
import itertools
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from armonik_core.adapters.queue.base import Lease, QueueMessage, TaskQueue

#: Orders of arrival per priority level in a heap key (`-priority * _ORDERS + order`): far more than a
#: control plane ever numbers.
_ORDERS = 1 << 62


@dataclass(slots=True)
class _Held:
    lease: Lease
    expires: float


class MemoryQueue(TaskQueue):
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._order = itertools.count()
        #: Per partition: (key, task id, session id, deliveries), the key = -priority, then order of arrival.
        self._heaps: dict[str, list[tuple[int, str, str, int]]] = {}
        self._waiting: set[str] = set()
        self._held: dict[str, _Held] = {}

    @staticmethod
    def handle_for(task_id: str, consumer: str) -> str:
        return f"{task_id}@{consumer}"

    def _push(self, message: QueueMessage, deliveries: int = 0) -> None:
        if message.task_id in self._waiting:
            return
        self._waiting.add(message.task_id)
        heap = self._heaps.setdefault(message.partition_id, [])
        key = -message.priority * _ORDERS + next(self._order)
        heapq.heappush(heap, (key, message.task_id, sys.intern(message.session_id), deliveries))

    def _expire(self) -> None:
        now = self._clock()
        for handle in [h for h, held in self._held.items() if held.expires <= now]:
            held = self._held.pop(handle)
            self._push(held.lease.message, held.lease.deliveries)

    async def publish(self, messages: Sequence[QueueMessage]) -> None:
        for message in messages:
            self._push(message)

    def hold(self, message: QueueMessage, consumer: str, lease_seconds: float, deliveries: int = 1) -> Lease:
        """Record a lease directly (a task already running when the control plane restarted)."""
        lease = Lease(self.handle_for(message.task_id, consumer), message, deliveries)
        self._held[lease.handle] = _Held(lease, self._clock() + lease_seconds)
        return lease

    async def pull(
        self, partition_id: str, max_messages: int, lease_seconds: float, consumer: str
    ) -> list[Lease]:
        self._expire()
        heap = self._heaps.get(partition_id, [])
        leases: list[Lease] = []
        while heap and len(leases) < max_messages:
            key, task_id, session_id, deliveries = heapq.heappop(heap)
            self._waiting.discard(task_id)
            message = QueueMessage(task_id, session_id, partition_id, -(key // _ORDERS))
            leases.append(self.hold(message, consumer, lease_seconds, deliveries + 1))
        return leases

    async def renew(self, leases: Sequence[Lease], lease_seconds: float) -> None:
        until = self._clock() + lease_seconds
        for lease in leases:
            held = self._held.get(lease.handle)
            if held is not None:
                held.expires = until

    async def ack(self, leases: Sequence[Lease]) -> None:
        for lease in leases:
            self._held.pop(lease.handle, None)

    async def release(self, leases: Sequence[Lease]) -> None:
        for lease in leases:
            held = self._held.pop(lease.handle, None)
            if held is not None:
                self._push(held.lease.message, held.lease.deliveries)

    async def depth(self, partition_id: str) -> int:
        self._expire()
        return len(self._heaps.get(partition_id, []))
