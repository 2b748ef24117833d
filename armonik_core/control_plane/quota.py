"""The optional quota on the data one session stores through client uploads (`Submitter__MaxSessionDataBytes`).

Off by default, and then free: the results service asks nothing of it. When on, the bytes a session holds
are read from the state (the sizes of its results, task outputs included) the first time the session
uploads, then kept in memory, counted up by each upload and read again from the state after
`REFRESH_SECONDS` (which also takes in deletions, task outputs and uploads through other control plane
replicas). A quota is therefore exact within one control plane process and may be overrun by what the other
replicas accepted within the refresh period. The task path (agents' outputs through the compute gateway)
is not checked, so that running tasks costs nothing more; what they store counts at the next refresh.
"""

from __future__ import annotations

import time

from armonik_core.adapters.state.base import StateStore
from armonik_core.domain.errors import QuotaExceeded
from armonik_core.domain.filters import Condition, FieldKind, FieldRef, Filter, ListQuery, Op
from armonik_core.ids import quote_id

REFRESH_SECONDS = 30.0
_PAGE = 1000


class SessionDataQuota:
    def __init__(self, state: StateStore, limit: int) -> None:
        self._state = state
        self.limit = limit
        #: session id -> (bytes held, when read from the state)
        self._used: dict[str, tuple[int, float]] = {}

    @property
    def enabled(self) -> bool:
        return self.limit > 0

    async def _stored(self, session_id: str) -> int:
        query_filter = Filter.of([Condition(FieldRef("session_id"), FieldKind.STRING, Op.EQ, session_id)])
        total, page = 0, 0
        while True:
            count, results = await self._state.list_results(
                ListQuery(filter=query_filter, page=page, page_size=_PAGE)
            )
            total += sum(r.size for r in results)
            page += 1
            if page * _PAGE >= count or not results:
                return total

    async def reserve(self, session_id: str, size: int) -> None:
        """Count `size` more bytes for the session, or raise QuotaExceeded (nothing counted)."""
        if not self.enabled:
            return
        now = time.monotonic()
        used, read_at = self._used.get(session_id, (0, float("-inf")))
        if now - read_at > REFRESH_SECONDS:
            used, read_at = await self._stored(session_id), now
        if used + size > self.limit:
            self._used[session_id] = (used, read_at)
            raise QuotaExceeded(
                f"Session {quote_id(session_id)} may store at most {self.limit} bytes "
                f"(Submitter__MaxSessionDataBytes); it holds {used} and this upload needs {size} more"
            )
        self._used[session_id] = (used + size, read_at)

    def release(self, session_id: str, size: int) -> None:
        """Give back bytes reserved for an upload that failed."""
        if self.enabled and session_id in self._used:
            used, read_at = self._used[session_id]
            self._used[session_id] = (max(0, used - size), read_at)
