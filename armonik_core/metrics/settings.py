"""Settings of the metrics exporter, from `Section__Key` environment variables."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from armonik_core.config import ConfigurationError, Environment
from armonik_core.domain.statuses import TaskStatus
from armonik_core.settings import components

#: Every status a task can be in (UNSPECIFIED never is).
ALL_STATUSES: tuple[TaskStatus, ...] = tuple(s for s in TaskStatus if s is not TaskStatus.UNSPECIFIED)

#: Statuses summed into the computed `queued` gauge (upstream's `ComputedStatuses["queued"]`).
QUEUED_STATUSES: tuple[TaskStatus, ...] = (TaskStatus.SUBMITTED, TaskStatus.DISPATCHED, TaskStatus.PROCESSING)

_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d+):(\d+):(\d+(?:\.\d+)?)$")


def parse_duration(raw: str, variable: str) -> float:
    """Seconds from a .NET TimeSpan (`[d.]hh:mm:ss[.fff]`, as upstream's `CacheValidity`) or a plain number
    of seconds (`1.5`)."""
    text = raw.strip()
    match = _TIMESPAN.match(text)
    if match:
        days, hours, minutes, seconds = match.groups()
        return int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    try:
        value = float(text)
    except ValueError:
        raise ConfigurationError(f"{variable}={raw!r}: expected seconds or hh:mm:ss") from None
    if value < 0:
        raise ConfigurationError(f"{variable}={raw!r}: must not be negative")
    return value


def parse_metrics(raw: str, variable: str) -> tuple[TaskStatus, ...]:
    """The statuses to export. Empty: all of them. Otherwise upstream's comma-separated list of status names
    (and `Queued`); the statuses `queued` is made of are always exported, as upstream does."""
    names = [part.strip().lower() for part in raw.split(",") if part.strip()]
    if not names:
        return ALL_STATUSES
    wanted = set(QUEUED_STATUSES)
    by_name = {status.name.lower(): status for status in ALL_STATUSES}
    for name in names:
        if name == "queued":
            continue
        if name not in by_name:
            known = ", ".join(sorted([*by_name, "queued"]))
            raise ConfigurationError(f"{variable}: unknown metric {name!r} (known: {known})")
        wanted.add(by_name[name])
    return tuple(status for status in ALL_STATUSES if status in wanted)


@dataclass(slots=True)
class MetricsExporterSettings:
    host: str = "127.0.0.1"
    port: int = 9419
    data_directory: Path = Path("generated/data")
    #: How long one collection answers scrapes, in seconds.
    cache_validity: float = 1.0
    statuses: tuple[TaskStatus, ...] = field(default=ALL_STATUSES)
    #: Also export the depth of each partition's queue, read from the queue itself: any queue of its own
    #: (embedded file, RabbitMQ, ActiveMQ); the control plane's in-memory queue is exactly its SUBMITTED
    #: tasks, which `armonik_<partition>_tasks_queued` already counts.
    queue_depth: bool = False
    log_level: str = "INFO"
    #: The control plane's backends (Components__TableStorage, Components__QueueStorage).
    table_storage: str = "sqlite"
    queue_storage: str = "memory"
    #: The variables the exporter was started with: the backends read their own sections from them.
    environment: Environment = field(default_factory=lambda: Environment({}))

    @staticmethod
    def from_env(environ: Mapping[str, str] | None = None) -> MetricsExporterSettings:
        env = Environment(environ)
        queue_storage = components.queue_storage(env)
        port = env.get_int("MetricsExporter__Port", 9419)
        if not 0 <= port <= 65535:
            raise ConfigurationError(f"MetricsExporter__Port={port}: not a port number")
        return MetricsExporterSettings(
            host=env.get("MetricsExporter__Host", "127.0.0.1"),
            port=port,
            data_directory=Path(env.get("Embedded__DataDirectory", "generated/data")),
            cache_validity=parse_duration(
                env.get("MetricsExporter__CacheValidity", "1"), "MetricsExporter__CacheValidity"
            ),
            statuses=parse_metrics(env.get("MetricsExporter__Metrics", ""), "MetricsExporter__Metrics"),
            queue_depth=env.get_bool("MetricsExporter__QueueDepth", queue_storage != "memory"),
            table_storage=components.table_storage(env),
            queue_storage=queue_storage,
            log_level=env.log_level(),
            environment=env,
        )
