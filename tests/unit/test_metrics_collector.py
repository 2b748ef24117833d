"""The metrics collector: names, values, partition filters, caching, and the text format it writes."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from armonik_core.adapters.queue.base import TaskQueue
from armonik_core.adapters.state.base import StateStore
from armonik_core.config import ConfigurationError
from armonik_core.domain.filters import FieldKind, FieldRef, Filter, ListQuery, Op
from armonik_core.domain.records import Partition
from armonik_core.domain.statuses import TaskStatus
from armonik_core.metrics import MetricsCollector, metric_name, parse_text, sanitize
from armonik_core.metrics.settings import (
    ALL_STATUSES,
    MetricsExporterSettings,
    parse_duration,
    parse_metrics,
)

S = TaskStatus


class FakeState:
    """The two StateStore methods the collector uses, over a fixed table of (partition, status) counts."""

    def __init__(self, counts: dict[tuple[str, TaskStatus], int], partitions: list[str]) -> None:
        self.counts = counts
        self.partitions = partitions
        self.count_calls: list[Filter] = []
        self.fail = False

    async def list_partitions(self, query: ListQuery) -> tuple[int, list[Partition]]:
        if self.fail:
            raise RuntimeError("database is locked")
        start = query.page * query.page_size
        page = self.partitions[start : start + query.page_size]
        return len(self.partitions), [Partition(partition_id=p) for p in page]

    async def count_tasks_by_status(self, flt: Filter) -> dict[TaskStatus, int]:
        self.count_calls.append(flt)
        await asyncio.sleep(0)
        partition = None
        if not flt.is_empty:
            ((condition,),) = flt.any_of
            assert condition.field == FieldRef("options.partition_id")
            assert (condition.kind, condition.op) == (FieldKind.STRING, Op.EQ)
            partition = condition.value
        found: dict[TaskStatus, int] = {}
        for (p, status), n in self.counts.items():
            if partition is None or p == partition:
                found[status] = found.get(status, 0) + n
        return found


class FakeQueue:
    def __init__(self, depths: dict[str, int], fail_on: str | None = None) -> None:
        self.depths = depths
        self.fail_on = fail_on

    async def depth(self, partition_id: str) -> int:
        if partition_id == self.fail_on:
            raise OSError("queue unreachable")
        return self.depths.get(partition_id, 0)


COUNTS = {
    ("default", S.SUBMITTED): 3,
    ("default", S.CREATING): 2,
    ("default", S.COMPLETED): 7,
    ("default", S.PROCESSING): 1,
    ("gpu-large", S.SUBMITTED): 4,
    ("gpu-large", S.DISPATCHED): 2,
    ("gpu-large", S.ERROR): 1,
    ("retired", S.COMPLETED): 5,  # tasks of a partition no longer in the partition table
}


def collector(
    state: FakeState | None = None, queue: FakeQueue | None = None, **kwargs: Any
) -> tuple[MetricsCollector, FakeState]:
    state = state or FakeState(dict(COUNTS), ["default", "gpu-large", "pymonik"])
    made = MetricsCollector(cast(StateStore, state), cast(TaskQueue, queue), **kwargs)
    return made, state


async def test_totals_and_per_partition_counts() -> None:
    made, _ = collector()
    values = parse_text(await made.metrics_text())
    assert values["armonik_tasks_submitted"] == 7
    assert values["armonik_tasks_completed"] == 12  # the retired partition's tasks count in the totals
    assert values["armonik_tasks_creating"] == 2
    assert values["armonik_tasks_cancelled"] == 0
    assert values["armonik_default_tasks_submitted"] == 3
    assert values["armonik_default_tasks_creating"] == 2
    assert values["armonik_default_tasks_completed"] == 7
    assert values["armonik_gpu_large_tasks_dispatched"] == 2
    assert values["armonik_gpu_large_tasks_error"] == 1
    assert values["armonik_pymonik_tasks_submitted"] == 0
    assert not any(name.startswith("armonik_retired_") for name in values)


async def test_queued_is_submitted_dispatched_and_processing() -> None:
    made, _ = collector()
    values = parse_text(await made.metrics_text())
    assert values["armonik_default_tasks_queued"] == 3 + 1
    assert values["armonik_gpu_large_tasks_queued"] == 4 + 2
    assert values["armonik_pymonik_tasks_queued"] == 0
    assert values["armonik_tasks_queued"] == 10


async def test_every_status_of_every_partition_has_a_gauge_with_help_and_type() -> None:
    made, _ = collector()
    text = await made.metrics_text()
    values = parse_text(text)
    for scope in (
        "armonik_tasks_",
        "armonik_default_tasks_",
        "armonik_gpu_large_tasks_",
        "armonik_pymonik_tasks_",
    ):
        for status in ALL_STATUSES:
            name = scope + status.name.lower()
            assert name in values
            assert f"# TYPE {name} gauge" in text
            assert f"# HELP {name} " in text
    assert "armonik_tasks_unspecified" not in values


async def test_output_is_valid_prometheus_text() -> None:
    parser = pytest.importorskip("prometheus_client.parser")
    made, _ = collector(queue=FakeQueue({"default": 3}))
    text = await made.metrics_text()
    families = {family.name: family for family in parser.text_string_to_metric_families(text)}
    assert families["armonik_default_tasks_submitted"].type == "gauge"
    assert families["armonik_default_tasks_submitted"].samples[0].value == 3
    assert families["armonik_default_queue_depth"].samples[0].value == 3


async def test_counts_per_partition_filter_on_the_partition_option() -> None:
    made, state = collector()
    await made.snapshot()
    partitions = sorted(f.any_of[0][0].value for f in state.count_calls if not f.is_empty)
    assert partitions == ["default", "gpu-large", "pymonik"]
    assert sum(1 for f in state.count_calls if f.is_empty) == 1


async def test_partitions_are_read_page_by_page() -> None:
    names = [f"p{i:04d}" for i in range(2500)]
    made, _ = collector(FakeState({("p2499", S.SUBMITTED): 1}, names))
    snapshot = await made.snapshot()
    assert len(snapshot.partitions) == 2500
    assert snapshot.partitions["p2499"] == {S.SUBMITTED: 1}


async def test_queue_depth_gauges_and_a_failing_queue() -> None:
    made, _ = collector(queue=FakeQueue({"default": 3, "gpu-large": 1}, fail_on="pymonik"))
    values = parse_text(await made.metrics_text())
    assert values["armonik_default_queue_depth"] == 3
    assert values["armonik_gpu_large_queue_depth"] == 1
    assert "armonik_pymonik_queue_depth" not in values  # unreadable: left out, the counts still served
    assert values["armonik_queue_depth"] == 4
    assert values["armonik_pymonik_tasks_submitted"] == 0


async def test_no_queue_no_depth() -> None:
    made, _ = collector()
    values = parse_text(await made.metrics_text())
    assert not any(name.endswith("queue_depth") for name in values)


def test_partition_names_are_sanitised() -> None:
    assert sanitize("gpu-large.v2 é") == "gpu_large_v2__"
    assert metric_name("gpu-large", "tasks_queued") == "armonik_gpu_large_tasks_queued"
    assert metric_name(None, "tasks_queued") == "armonik_tasks_queued"


async def test_colliding_partition_names_are_emitted_once() -> None:
    state = FakeState({("a-b", S.SUBMITTED): 1, ("a_b", S.SUBMITTED): 2}, ["a-b", "a_b"])
    made, _ = collector(state)
    values = parse_text(await made.metrics_text())  # raises on a duplicate sample
    assert values["armonik_a_b_tasks_submitted"] == 1  # the first partition in id order
    assert values["armonik_tasks_submitted"] == 3


async def test_help_text_is_escaped() -> None:
    state = FakeState({}, ["bad\\name\nline"])
    made, _ = collector(state)
    text = await made.metrics_text()
    assert "partition bad\\\\name\\nline." in text
    parse_text(text)


async def test_collections_are_cached_for_the_validity_period() -> None:
    now = [100.0]
    made, state = collector(cache_validity=1.0, clock=lambda: now[0])
    first = await made.snapshot()
    state.counts[("default", S.SUBMITTED)] = 30
    now[0] += 0.5
    assert await made.snapshot() is first
    assert made.collections == 1
    now[0] += 0.6
    second = await made.snapshot()
    assert made.collections == 2
    assert second.partitions["default"][S.SUBMITTED] == 30


async def test_concurrent_scrapes_share_one_collection() -> None:
    made, _ = collector(cache_validity=5.0)
    texts = await asyncio.gather(*(made.metrics_text() for _ in range(20)))
    assert made.collections == 1
    assert len(set(texts)) == 1


async def test_zero_validity_collects_every_time() -> None:
    made, _ = collector(cache_validity=0.0)
    await made.snapshot()
    await made.snapshot()
    assert made.collections == 2


async def test_a_failed_collection_is_not_cached() -> None:
    made, state = collector(cache_validity=60.0)
    state.fail = True
    with pytest.raises(RuntimeError):
        await made.snapshot()
    state.fail = False
    assert (await made.snapshot()).partitions["default"][S.SUBMITTED] == 3


async def test_selected_statuses_only() -> None:
    made, _ = collector(statuses=parse_metrics("Completed, error", "MetricsExporter__Metrics"))
    values = parse_text(await made.metrics_text())
    kinds = {
        name.removeprefix("armonik_default_tasks_") for name in values if name.startswith("armonik_default_")
    }
    assert kinds == {"submitted", "dispatched", "processing", "completed", "error", "queued"}


# -- settings ------------------------------------------------------------------------------------------------
def test_settings_defaults() -> None:
    settings = MetricsExporterSettings.from_env({})
    assert (settings.host, settings.port, settings.cache_validity) == ("127.0.0.1", 9419, 1.0)
    assert settings.statuses == ALL_STATUSES
    assert settings.queue_depth is False
    assert MetricsExporterSettings.from_env({"Components__QueueStorage": "embedded"}).queue_depth is True


def test_settings_from_environment() -> None:
    settings = MetricsExporterSettings.from_env(
        {
            "METRICSEXPORTER__HOST": "0.0.0.0",
            "MetricsExporter__Port": "1080",
            "MetricsExporter__CacheValidity": "00:00:05",
            "MetricsExporter__Metrics": "queued",
            "MetricsExporter__QueueDepth": "false",
            "Embedded__DataDirectory": "/var/lib/armonik",
        }
    )
    assert (settings.host, settings.port, settings.cache_validity) == ("0.0.0.0", 1080, 5.0)
    assert settings.statuses == (S.SUBMITTED, S.DISPATCHED, S.PROCESSING)
    assert settings.queue_depth is False
    assert str(settings.data_directory) == "/var/lib/armonik"


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [("1", 1.0), ("0.25", 0.25), ("00:00:05", 5.0), ("00:01:00.5", 60.5), ("1.00:00:00", 86400.0)],
)
def test_durations(raw: str, seconds: float) -> None:
    assert parse_duration(raw, "X") == seconds


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"MetricsExporter__CacheValidity": "soon"}, "MetricsExporter__CacheValidity"),
        ({"MetricsExporter__CacheValidity": "-1"}, "MetricsExporter__CacheValidity"),
        ({"MetricsExporter__Port": "99999"}, "MetricsExporter__Port"),
        ({"MetricsExporter__Metrics": "Completed,Finished"}, "finished"),
    ],
)
def test_bad_settings_name_the_variable(variables: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        MetricsExporterSettings.from_env(variables)


def test_parse_text_rejects_what_the_format_forbids() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        parse_text("a 1\na 2\n")
    with pytest.raises(ValueError, match="bad metric name"):
        parse_text("# TYPE 1a gauge\n")
    with pytest.raises(ValueError, match="after its sample"):
        parse_text("a 1\n# TYPE a gauge\n")
    with pytest.raises(ValueError, match="bad value"):
        parse_text("a one\n")
    assert parse_text("# HELP a x y\n# TYPE a gauge\na 1.5\n") == {"a": 1.5}
