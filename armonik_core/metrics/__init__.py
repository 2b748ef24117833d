"""Metrics exporter: task counts per status and partition, in the Prometheus text format.

`python -m armonik_core.metrics` (console script `armonik-metrics-exporter`) serves `GET /metrics` with
upstream's gauge names (`Core:Control/Metrics/src/ArmoniKMeter.cs`), which KEDA's Prometheus triggers and
the Grafana dashboards query:

- `armonik_tasks_<status>`: tasks in that status, every partition together;
- `armonik_<partition>_tasks_<status>`: the same for one partition (`options.partition_id`);
- `armonik_tasks_queued`, `armonik_<partition>_tasks_queued`: SUBMITTED + DISPATCHED + PROCESSING, as
  upstream computes it: the tasks that need a worker, whether waiting for one or running on one;
- `armonik_queue_depth`, `armonik_<partition>_queue_depth` (not upstream): messages waiting, not leased, on
  the partition's queue, as the `TaskQueue` reports it.

It reads through the `StateStore` and `TaskQueue` interfaces, as a second process beside the control plane,
and caches one collection for `MetricsExporter__CacheValidity` so that scrapes stay cheap.
"""

from armonik_core.metrics.collector import MetricsCollector, Snapshot, metric_name, sanitize
from armonik_core.metrics.exposition import parse_text
from armonik_core.metrics.settings import MetricsExporterSettings

__all__ = ["MetricsCollector", "MetricsExporterSettings", "Snapshot", "metric_name", "parse_text", "sanitize"]
