"""Reachability of the servers the contract suites need."""

from __future__ import annotations

import socket

from tests.support import unavailable


def require_service(name: str, host: str, port: int, timeout: float = 2.0) -> None:
    """Skip (workstation) or fail (CI) the calling test when `name` does not answer on host:port."""
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as error:
        message = f"{name} is not reachable on {host}:{port} ({error})"
        unavailable(message, f"{message}; CI must have it")
