"""`armonik-control-plane`: serve the ArmoniK API until SIGTERM or SIGINT, then stop cleanly."""

from __future__ import annotations

import logging

from armonik_core import logs
from armonik_core.config import ControlPlaneSettings
from armonik_core.control_plane.server import start_control_plane
from armonik_core.process import run_event_loop, settings_or_exit, wait_for_stop_signal

log = logging.getLogger("armonik.control_plane")


async def serve(settings: ControlPlaneSettings) -> None:
    plane = await start_control_plane(settings)
    await wait_for_stop_signal()
    log.info("stopping control plane")
    await plane.stop()
    log.info("control plane stopped")


def main() -> None:
    settings = settings_or_exit(ControlPlaneSettings.from_env, "armonik-control-plane")
    logs.configure("control-plane", settings.log_level)
    run_event_loop(serve(settings), "armonik-control-plane")


if __name__ == "__main__":
    main()
