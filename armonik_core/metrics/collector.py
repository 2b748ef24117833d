"""Collecting task counts from the state store and rendering them in the Prometheus text format.

The exposition is written by `prometheus_client` (the reference implementation, kept by the Prometheus
project), so escaping and number formats are exactly what scrapers expect.

One collection reads: the partitions (`list_partitions`), the count per status of every task
(`count_tasks_by_status(Filter())`), the same for each partition (a condition on `options.partition_id`), and,
when a queue is given, each partition's queue depth. Partitions are counted concurrently. The collection is
kept for `cache_validity` seconds, and concurrent scrapes while it runs wait for it rather than starting
their own (upstream's `ExecutionSingleizer`), so a scrape costs at most one collection per period whatever
the number of scrapers.

The totals come from their own query rather than from summing the partitions, so a task of a partition that
is not (or no longer) in the partition table still counts in `armonik_tasks_<status>`. Each query is its
own read transaction: totals and partitions may differ by the tasks that changed between them.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from armonik_core.adapters.queue.base import TaskQueue
from armonik_core.adapters.state.base import StateStore
from armonik_core.domain.filters import Condition, FieldKind, FieldRef, Filter, ListQuery, Op
from armonik_core.domain.records import Partition
from armonik_core.domain.statuses import TaskStatus
from armonik_core.metrics.settings import ALL_STATUSES, QUEUED_STATUSES

log = logging.getLogger("armonik.metrics")

PAGE_SIZE = 1000
_INVALID = re.compile(r"[^A-Za-z0-9_]")


def sanitize(partition_id: str) -> str:
    """A partition id as it appears in a metric name: every character Prometheus does not allow in a name
    (upstream replaces `-` only, the one such character its partition names usually hold) becomes `_`."""
    return _INVALID.sub("_", partition_id)


def metric_name(partition_id: str | None, suffix: str) -> str:
    """`armonik_tasks_<suffix>` for every partition (`None`), `armonik_<partition>_tasks_<suffix>` for one."""
    if partition_id is None:
        return f"armonik_{suffix}"
    return f"armonik_{sanitize(partition_id)}_{suffix}"


def partition_filter(partition_id: str) -> Filter:
    return Filter.of([Condition(FieldRef("options.partition_id"), FieldKind.STRING, Op.EQ, partition_id)])


class _Families(Collector):
    """One collection's families, handed to a registry (prometheus_client collects synchronously; the
    collection itself is async, so it is done first and the registry only writes it)."""

    def __init__(self, families: list[GaugeMetricFamily]) -> None:
        self._families = families

    def collect(self) -> Iterator[GaugeMetricFamily]:
        return iter(self._families)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One collection. Counts omit statuses with no task; `queue_depths` holds the partitions whose queue
    could be read."""

    totals: dict[TaskStatus, int]
    partitions: dict[str, dict[TaskStatus, int]]
    queue_depths: dict[str, int] = field(default_factory=dict)
    #: Seconds the collection took.
    duration: float = 0.0


class MetricsCollector:
    def __init__(
        self,
        state: StateStore,
        queue: TaskQueue | None = None,
        *,
        cache_validity: float = 1.0,
        statuses: Iterable[TaskStatus] = ALL_STATUSES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._state = state
        self._queue = queue
        self._cache_validity = cache_validity
        self._statuses = tuple(statuses)
        self._clock = clock
        self._lock = asyncio.Lock()
        self._cached: Snapshot | None = None
        self._cached_at = 0.0
        self._warned: set[str] = set()
        #: Number of collections run (not served from the cache).
        self.collections = 0

    async def snapshot(self) -> Snapshot:
        """The cached collection while it is valid, else a new one (one at a time)."""
        async with self._lock:
            if self._cached is not None and self._clock() - self._cached_at < self._cache_validity:
                return self._cached
            snapshot = await self._collect()
            self._cached, self._cached_at = snapshot, self._clock()
            return snapshot

    async def metrics_text(self) -> str:
        return self.render(await self.snapshot())

    async def _partitions(self) -> list[Partition]:
        found: list[Partition] = []
        page = 0
        while True:
            total, partitions = await self._state.list_partitions(ListQuery(page=page, page_size=PAGE_SIZE))
            found.extend(partitions)
            if not partitions or len(found) >= total:
                return found
            page += 1

    async def _depth(self, partition_id: str) -> int | None:
        if self._queue is None:
            return None
        try:
            return await self._queue.depth(partition_id)
        except Exception:  # the counts are still worth serving without the depth
            log.warning("cannot read the queue depth", extra={"partition": partition_id}, exc_info=True)
            return None

    async def _collect(self) -> Snapshot:
        started = time.perf_counter()
        self.collections += 1
        partitions = [p.partition_id for p in await self._partitions()]
        totals, *per_partition = await asyncio.gather(
            self._state.count_tasks_by_status(Filter()),
            *(self._state.count_tasks_by_status(partition_filter(p)) for p in partitions),
        )
        depths = await asyncio.gather(*(self._depth(p) for p in partitions))
        return Snapshot(
            totals=dict(totals),
            partitions={p: dict(counts) for p, counts in zip(partitions, per_partition, strict=True)},
            queue_depths={p: d for p, d in zip(partitions, depths, strict=True) if d is not None},
            duration=time.perf_counter() - started,
        )

    # -- rendering ---------------------------------------------------------------------------------------
    def families(self, snapshot: Snapshot) -> list[GaugeMetricFamily]:
        """The gauges of one collection, as `prometheus_client` metric families."""
        found: list[GaugeMetricFamily] = []
        emitted: set[str] = set()

        def gauge(name: str, help_text: str, value: float) -> None:
            found.append(GaugeMetricFamily(name, help_text, value=value))
            emitted.add(name)

        def counts_of(scope: str, counts: dict[TaskStatus, int], where: str) -> None:
            for status in self._statuses:
                gauge(
                    scope + status.name.lower(),
                    f"Number of tasks in status {status.name}{where}.",
                    counts.get(status, 0),
                )
            gauge(
                scope + "queued",
                f"Tasks needing a worker (SUBMITTED + DISPATCHED + PROCESSING){where}.",
                sum(counts.get(status, 0) for status in QUEUED_STATUSES),
            )

        counts_of("armonik_tasks_", snapshot.totals, ", all partitions")
        if snapshot.queue_depths:
            gauge(
                "armonik_queue_depth",
                "Messages waiting (not leased) on the task queues, all partitions.",
                sum(snapshot.queue_depths.values()),
            )
        for partition_id in sorted(snapshot.partitions):
            scope = metric_name(partition_id, "tasks_")
            if scope + "queued" in emitted:
                self._warn_collision(partition_id)
                continue
            counts_of(scope, snapshot.partitions[partition_id], f", partition {partition_id}")
            if partition_id in snapshot.queue_depths:
                gauge(
                    metric_name(partition_id, "queue_depth"),
                    f"Messages waiting (not leased) on the task queue of partition {partition_id}.",
                    snapshot.queue_depths[partition_id],
                )
        gauge(
            "armonik_metrics_exporter_collect_seconds",
            "Time the last collection of these metrics took.",
            round(snapshot.duration, 6),
        )
        return found

    def render(self, snapshot: Snapshot) -> str:
        """The Prometheus text exposition (format 0.0.4) of one collection, written by `prometheus_client`."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Families(self.families(snapshot)))
        return generate_latest(registry).decode("utf-8")

    def _warn_collision(self, partition_id: str) -> None:
        if partition_id not in self._warned:
            self._warned.add(partition_id)
            log.warning(
                "partition skipped: its metric names collide with another partition's",
                extra={"partition": partition_id, "sanitized": sanitize(partition_id)},
            )
