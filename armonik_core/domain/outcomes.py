"""What came of running a task, as the polling agent reports it to the state store."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from armonik_core.domain.records import Result, Task


class OutcomeKind(str, Enum):
    #: The worker returned `Output.ok`: apply everything it produced.
    SUCCESS = "success"
    #: The worker returned `Output.error`: the task fails for good (no retry), its outputs are aborted.
    ERROR = "error"
    #: The task ran past `max_duration`: fails for good as TIMEOUT.
    TIMEOUT = "timeout"
    #: The worker crashed or the call failed (gRPC error, lost connection): retried while retries remain.
    CRASH = "crash"
    #: The task was cancelled while running: it ends CANCELLED.
    CANCELLED = "cancelled"
    #: The agent gives the task back untouched (shutting down, worker not ready): queued again, no retry.
    RELEASED = "released"


@dataclass(frozen=True, slots=True)
class DataCompletion:
    """A result whose data the agent stored under `opaque_id`."""

    result_id: str
    size: int
    opaque_id: bytes


@dataclass(slots=True)
class TaskOutcome:
    kind: OutcomeKind
    message: str = ""
    #: Results the worker created (CreateResultsMetaData / CreateResults), with `created_by` set.
    created_results: list[Result] = field(default_factory=list)
    #: Data the worker produced (NotifyResultData, CreateResults), already in object storage.
    completions: list[DataCompletion] = field(default_factory=list)
    #: Subtasks the worker submitted, with their options merged and ids assigned.
    subtasks: list[Task] = field(default_factory=list)
    #: When the inputs were staged and the worker called (POSIX seconds), for a task whose start was not
    #: reported separately: short tasks report it with their outcome, sparing a round trip each.
    started_at: float | None = None
    #: When the inputs were in the data folder (`fetched_at`) and when the worker answered (`processed_at`),
    #: on the agent's clock: the store records them rather than the moment the outcome reached it, so that
    #: the task's timestamps tell staging, processing and reporting apart.
    fetched_at: float | None = None
    processed_at: float | None = None
