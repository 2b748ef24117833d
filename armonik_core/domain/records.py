"""The entities ArmoniK stores: sessions, tasks, results and partitions.

Timestamps are POSIX seconds (float, UTC) and `None` while the event has not happened; durations are seconds.
These are plain data: the rules that change them live in the sibling modules.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from armonik_core.domain.options import TaskOptions
from armonik_core.domain.statuses import ResultStatus, SessionStatus, TaskStatus


@dataclass(slots=True)
class Partition:
    partition_id: str
    parent_partition_ids: list[str] = field(default_factory=list)
    pod_reserved: int = 1
    pod_max: int = 100
    preemption_percentage: int = 0
    priority: int = 1
    pod_configuration: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Session:
    session_id: str
    status: SessionStatus
    partition_ids: list[str]
    options: TaskOptions
    created_at: float
    client_submission: bool = True
    worker_submission: bool = True
    cancelled_at: float | None = None
    closed_at: float | None = None
    purged_at: float | None = None
    deleted_at: float | None = None

    @property
    def duration(self) -> float | None:
        """Time from creation to the end of the session (closed or cancelled), once it has ended."""
        end = self.closed_at or self.cancelled_at
        return None if end is None else max(0.0, end - self.created_at)


@dataclass(slots=True)
class Task:
    task_id: str
    session_id: str
    status: TaskStatus
    options: TaskOptions
    payload_id: str
    created_at: float
    expected_output_ids: list[str] = field(default_factory=list)
    data_dependencies: list[str] = field(default_factory=list)
    parent_task_ids: list[str] = field(default_factory=list)
    retry_of_ids: list[str] = field(default_factory=list)
    initial_task_id: str = ""
    created_by: str = ""
    owner_pod_id: str = ""
    pod_hostname: str = ""
    status_message: str = ""
    error: str = ""
    submitted_at: float | None = None
    received_at: float | None = None
    acquired_at: float | None = None
    fetched_at: float | None = None
    started_at: float | None = None
    processed_at: float | None = None
    ended_at: float | None = None
    pod_ttl: float | None = None

    @property
    def creation_to_end_duration(self) -> float | None:
        return _span(self.created_at, self.ended_at)

    @property
    def processing_to_end_duration(self) -> float | None:
        return _span(self.started_at, self.ended_at)

    @property
    def received_to_end_duration(self) -> float | None:
        return _span(self.received_at, self.ended_at)

    @property
    def succeeded(self) -> bool:
        return self.status == TaskStatus.COMPLETED


#: A task's timestamps (seconds since the epoch; all but `created_at` unset until reached), in the order of
#: its fields: what every representation of a task (rows, messages, the compute gateway's JSON) carries.
TASK_TIMES = (
    "created_at",
    "submitted_at",
    "received_at",
    "acquired_at",
    "fetched_at",
    "started_at",
    "processed_at",
    "ended_at",
    "pod_ttl",
)


@dataclass(slots=True)
class Result:
    result_id: str
    session_id: str
    name: str
    status: ResultStatus
    created_at: float
    owner_task_id: str = ""
    created_by: str = ""
    completed_at: float | None = None
    size: int = 0
    opaque_id: bytes = b""
    manual_deletion: bool = False


def _span(start: float | None, end: float | None) -> float | None:
    if start is None or end is None:
        return None
    return max(0.0, end - start)
