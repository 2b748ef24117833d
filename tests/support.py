"""Helpers shared by the suites that drive real processes."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import grpc
import pytest
from armonik.common import TaskOptions


def rpc_error(code: grpc.StatusCode, call: Callable[..., Any], *args: Any, **kwargs: Any) -> grpc.RpcError:
    """Run `call`, which must fail with exactly `code`; return the error for further checks."""
    with pytest.raises(grpc.RpcError) as caught:
        call(*args, **kwargs)
    error = caught.value
    assert error.code() == code, f"expected {code.name}, got {error.code().name}: {error.details()}"
    return error


def options(**overrides: Any) -> TaskOptions:
    values: dict[str, Any] = {"max_duration": timedelta(seconds=30), "priority": 1, "max_retries": 2}
    values.update(overrides)
    return TaskOptions(**values)


def close_to_now(value: datetime | None, slack: float = 60.0) -> bool:
    return value is not None and abs((datetime.now(timezone.utc) - value).total_seconds()) < slack


def internal_errors(logs: str) -> list[str]:
    """Tracebacks of requests the control plane answered with INTERNAL (an unhandled exception)."""
    return [
        json.loads(line).get("@x", line)
        for line in logs.splitlines()
        if line.startswith("{") and "unhandled error" in line
    ]


def free_port() -> int:
    """A port free on 127.0.0.1 now (the kernel's pick)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
