"""Task options and the rule that merges them, as ArmoniK.Core's `TaskOptions.Merge(task, default)` does."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class TaskOptions:
    """Options of a session (its defaults) or of a task. `max_duration` is in seconds."""

    max_duration: float = 0.0
    max_retries: int = 0
    priority: int = 0
    partition_id: str = ""
    application_name: str = ""
    application_version: str = ""
    application_namespace: str = ""
    application_service: str = ""
    engine_type: str = ""
    options: dict[str, str] = field(default_factory=dict)

    def copy(self) -> TaskOptions:
        # Spelled out: dataclasses.replace is several times slower, and this runs once per task.
        return TaskOptions(
            self.max_duration,
            self.max_retries,
            self.priority,
            self.partition_id,
            self.application_name,
            self.application_version,
            self.application_namespace,
            self.application_service,
            self.engine_type,
            dict(self.options),
        )


#: The string fields of TaskOptions, which merge and convert alike.
STRING_FIELDS = (
    "partition_id",
    "application_name",
    "application_version",
    "application_namespace",
    "application_service",
    "engine_type",
)


def merge_options(task: TaskOptions | None, default: TaskOptions) -> TaskOptions:
    """Fill what `task` leaves unset from `default`.

    The free-form maps are unioned, the task's keys winning. Numbers and strings fall back to the default
    when the task leaves them zero or empty. Priority is the exception upstream keeps: it always comes from
    the task, because 0 is a legitimate (lowest) priority that a task may ask for explicitly.
    """
    if task is None:
        return default.copy()
    merged = TaskOptions(
        max_duration=task.max_duration or default.max_duration,
        max_retries=task.max_retries or default.max_retries,
        priority=task.priority,
        options={**default.options, **task.options},
    )
    for name in STRING_FIELDS:
        setattr(merged, name, getattr(task, name) or getattr(default, name))
    return merged


def effective_options(
    session_defaults: TaskOptions, request_options: TaskOptions | None, task_options: TaskOptions | None
) -> TaskOptions:
    """Options a submitted task runs with: task options over request options over session defaults."""
    return merge_options(task_options, merge_options(request_options, session_defaults))
