"""`armonik-polling-agent`: take tasks of a partition and run them on the local worker until SIGTERM.

The backend is the control plane's compute gateway (`ControlPlane__Endpoint`); objects are read and
written directly in the shared object storage (`Embedded__DataDirectory/objects`). Settings: see
`armonik_core.polling_agent.settings`. Exit status: 0 after a clean stop, 2 for an invalid configuration.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import logging
import signal
import sys

from armonik_core import logs
from armonik_core.adapters.objects.base import ObjectStorage
from armonik_core.adapters.objects.filesystem import FilesystemObjectStorage
from armonik_core.config import ConfigurationError
from armonik_core.polling_agent.agent import PollingAgent
from armonik_core.polling_agent.backend import ComputeBackend
from armonik_core.polling_agent.settings import AgentSettings

log = logging.getLogger("armonik.polling_agent")


async def serve(settings: AgentSettings, backend: ComputeBackend, objects: ObjectStorage) -> None:
    """Run an agent until SIGTERM or SIGINT, then stop it cleanly and close the backend and storage."""
    agent = PollingAgent(settings, backend, objects)
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


async def _main(settings: AgentSettings) -> None:
    # Imported here: the gateway client is only needed by the real process, not by the agent's logic.
    gateway = importlib.import_module("armonik_core.polling_agent.gateway_backend")
    backend: ComputeBackend = gateway.connect_gateway_backend(settings)
    if inspect.isawaitable(backend):  # a factory that connects first may be a coroutine
        backend = await backend
    objects = FilesystemObjectStorage(settings.objects_directory, fsync=settings.durable_objects)
    await serve(settings, backend, objects)


def main() -> None:
    try:
        settings = AgentSettings.from_env()
    except ConfigurationError as exc:
        print(f"armonik-polling-agent: invalid configuration: {exc}", file=sys.stderr)
        sys.exit(2)
    logs.configure("polling-agent", settings.log_level)
    log.info(
        "starting polling agent",
        extra={"agentId": settings.agent_id, "partitionId": settings.partition_id},
    )
    asyncio.run(_main(settings))


if __name__ == "__main__":
    main()
