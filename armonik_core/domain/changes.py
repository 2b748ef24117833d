"""Changes committed by the state store, as the Events service streams them.

Every write transaction yields the list of changes it made, published only after commit, so a subscriber
never sees a change that was rolled back.
"""

from __future__ import annotations

from dataclasses import dataclass

from armonik_core.domain.records import Result, Task
from armonik_core.domain.statuses import EventType


@dataclass(slots=True)
class Change:
    """Not frozen: a submission builds two per task, and frozen dataclasses are several times slower to build."""

    kind: EventType
    session_id: str
    entity_id: str
    status: int = 0
    #: The whole record for NEW_TASK / NEW_RESULT.
    record: Task | Result | None = None
    previous_owner: str = ""
    current_owner: str = ""
