"""`armonik-polling-agent`: take tasks of a partition and run them on the local worker until SIGTERM.

The backend is the control plane's compute gateway (`ControlPlane__Endpoint`); objects are read and
written directly in the object storage the settings choose (`Components__ObjectStorage`: the shared folder
`Embedded__DataDirectory/objects` by default, Redis or S3). Settings: see
`armonik_core.polling_agent.settings`. Exit status: 0 after a clean stop, 2 for an invalid configuration (an in-process worker that cannot be
imported included), 3 when an in-process worker stuck in an abandoned task made the agent stop.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from armonik_core import logs
from armonik_core.adapters import factory
from armonik_core.adapters.objects.base import ObjectStorage
from armonik_core.polling_agent.agent import PollingAgent
from armonik_core.polling_agent.backend import ComputeBackend
from armonik_core.polling_agent.gateway_backend import connect_gateway_backend
from armonik_core.polling_agent.inprocess import RESTART_EXIT_CODE, Processor, load_processor
from armonik_core.polling_agent.settings import AgentSettings
from armonik_core.process import run_event_loop, settings_or_exit

log = logging.getLogger("armonik.polling_agent")


async def serve(
    settings: AgentSettings,
    backend: ComputeBackend,
    objects: ObjectStorage,
    processor: Processor | None = None,
) -> PollingAgent:
    """Run an agent until SIGTERM or SIGINT, then stop it cleanly and close the backend and storage."""
    agent = PollingAgent(settings, backend, objects, processor)
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        loop.add_signal_handler(sig, agent.stop)
    try:
        await agent.run()
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
        await backend.close()
        await objects.close()
    return agent


async def _main(settings: AgentSettings, processor: Processor | None) -> bool:
    """True when the agent stopped for its supervisor to restart it."""
    backend = connect_gateway_backend(settings)
    objects = factory.open_object_storage(
        settings.environment, settings.object_storage, settings.data_directory, settings.durable_objects
    )
    agent = await serve(settings, backend, objects, processor)
    return agent.restart_requested


def main() -> None:
    settings = settings_or_exit(AgentSettings.from_env, "armonik-polling-agent")
    logs.configure("polling-agent", settings.log_level)
    log.info(
        "starting polling agent",
        extra={"agentId": settings.agent_id, "partitionId": settings.partition_id},
    )
    # An in-process worker is imported once logging is configured (the worker SDK configures it otherwise).
    processor = (
        settings_or_exit(lambda: load_processor(settings.worker_module), "armonik-polling-agent")
        if settings.worker_module
        else None
    )
    if run_event_loop(_main(settings, processor), "armonik-polling-agent"):
        sys.exit(RESTART_EXIT_CODE)


if __name__ == "__main__":
    main()
