"""`armonik-control-plane`: serve the ArmoniK API until SIGTERM or SIGINT, then stop cleanly."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from armonik_core import logs
from armonik_core.config import ConfigurationError, ControlPlaneSettings
from armonik_core.control_plane.server import start_control_plane

log = logging.getLogger("armonik.control_plane")


async def serve(settings: ControlPlaneSettings) -> None:
    plane = await start_control_plane(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("stopping control plane")
    await plane.stop()
    log.info("control plane stopped")


def main() -> None:
    try:
        settings = ControlPlaneSettings.from_env()
    except ConfigurationError as exc:
        print(f"armonik-control-plane: invalid configuration: {exc}", file=sys.stderr)
        sys.exit(2)
    logs.configure("control-plane", settings.log_level)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
