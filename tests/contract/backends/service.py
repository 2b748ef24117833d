"""Reachability of the servers the contract suites need."""

from __future__ import annotations

import os
import socket

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def require_service(name: str, host: str, port: int, timeout: float = 2.0) -> None:
    """Skip (workstation) or fail (CI) the calling test when `name` does not answer on host:port."""
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as error:
        message = f"{name} is not reachable on {host}:{port} ({error})"
        if in_ci():
            pytest.fail(f"{message}; CI must have it")
        pytest.skip(message)
