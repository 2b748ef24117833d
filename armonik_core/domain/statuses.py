"""Status enums with the wire values of `armonik.api.grpc.v1`.

They are redefined here rather than imported from the generated protos so that the domain stays free of
any transport dependency; `tests/unit/test_statuses.py` checks that every value matches the protos.
"""

from __future__ import annotations

from enum import IntEnum


class TaskStatus(IntEnum):
    UNSPECIFIED = 0
    CREATING = 1
    SUBMITTED = 2
    DISPATCHED = 3
    COMPLETED = 4
    ERROR = 5
    TIMEOUT = 6
    CANCELLING = 7
    CANCELLED = 8
    PROCESSING = 9
    PROCESSED = 10
    RETRIED = 11
    PENDING = 12
    PAUSED = 13


class SessionStatus(IntEnum):
    UNSPECIFIED = 0
    RUNNING = 1
    CANCELLED = 2
    PAUSED = 3
    CLOSED = 4
    PURGED = 5
    DELETED = 6


class ResultStatus(IntEnum):
    UNSPECIFIED = 0
    CREATED = 1
    COMPLETED = 2
    ABORTED = 3
    DELETED = 4
    NOTFOUND = 127


class EventType(IntEnum):
    UNSPECIFIED = 0
    NEW_TASK = 1
    TASK_STATUS_UPDATE = 2
    NEW_RESULT = 3
    RESULT_STATUS_UPDATE = 4
    RESULT_OWNER_UPDATE = 5


#: A task in one of these states will never run again.
FINAL_TASK_STATUSES = frozenset(
    {
        TaskStatus.COMPLETED,
        TaskStatus.ERROR,
        TaskStatus.TIMEOUT,
        TaskStatus.CANCELLED,
        TaskStatus.RETRIED,
    }
)
