"""`armonik-metrics-exporter`: serve the task metrics until SIGTERM or SIGINT, then stop cleanly.

It opens the state store (and the queue, for its depth) the control plane's settings choose
(`Components__*`) and only reads them: with the embedded SQLite state, WAL mode lets it read while the
control plane writes.
"""

from __future__ import annotations

import logging
import sys

from armonik_core import logs
from armonik_core.adapters import factory
from armonik_core.adapters.queue.base import TaskQueue
from armonik_core.metrics.collector import MetricsCollector
from armonik_core.metrics.server import MetricsHttpServer
from armonik_core.metrics.settings import MetricsExporterSettings
from armonik_core.process import run_event_loop, settings_or_exit, wait_for_stop_signal

log = logging.getLogger("armonik.metrics")


async def serve(settings: MetricsExporterSettings) -> None:
    root = settings.data_directory
    env = settings.environment
    root.mkdir(parents=True, exist_ok=True)
    queue_kind = settings.queue_storage
    state = factory.open_state_store(
        env, settings.table_storage, root, "NORMAL", outbox=queue_kind != "memory"
    )
    queue: TaskQueue | None = None
    if settings.queue_depth and queue_kind != "memory":
        queue = factory.open_external_queue(env, queue_kind, root, durable=False)
    collector = MetricsCollector(
        state, queue, cache_validity=settings.cache_validity, statuses=settings.statuses
    )
    server = MetricsHttpServer(collector, settings.host, settings.port)
    try:
        port = await server.start()
        log.info(
            "metrics exporter listening",
            extra={"address": f"{settings.host}:{port}", "data_directory": str(root)},
        )
        await wait_for_stop_signal()
        log.info("stopping metrics exporter")
    finally:
        await server.stop()
        await state.close()
        if queue is not None:
            await queue.close()
    log.info("metrics exporter stopped")


def main() -> None:
    settings = settings_or_exit(MetricsExporterSettings.from_env, "armonik-metrics-exporter")
    logs.configure("metrics-exporter", settings.log_level)
    try:
        run_event_loop(serve(settings), "armonik-metrics-exporter")
    except OSError as exc:
        log.error("cannot serve metrics", extra={"error": str(exc)})
        sys.exit(1)


if __name__ == "__main__":
    main()
