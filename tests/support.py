"""Helpers shared by the suites that drive real processes."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from armonik.common import TaskOptions

if TYPE_CHECKING:
    from armonik_deploy.kubernetes import Rendered

ROOT = Path(__file__).resolve().parents[1]
QUICK_DEPLOY = ROOT / "infrastructure" / "quick-deploy" / "localhost"


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


def run_module(
    module: str, *args: str, env: dict[str, str] | None = None, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """`python -m MODULE ARGS` from the repository's root, to its end; its output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def deploy_cli(generated: Path, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """`armonik-deploy ARGS --generated GENERATED`, run as a user runs it (wide enough that its tables are
    not wrapped)."""
    env = {**os.environ, "COLUMNS": "200"}
    return run_module("armonik_deploy", *args, "--generated", str(generated), env=env, timeout=timeout)


@contextmanager
def short_folder(prefix: str) -> Iterator[Path]:
    """A folder of its own right under /tmp (`prefix`...), removed afterwards: unix socket paths under it stay
    within the hundred-odd bytes they are allowed."""
    root = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def local_deployment(parameters: dict[str, Any], prefix: str) -> Iterator[Path]:
    """A local deployment of `parameters` in a folder of its own under /tmp (`prefix`...): its generated
    folder while it runs; destroyed and removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    file = root / "parameters.tfvars.json"
    file.write_text(json.dumps(parameters))
    generated = root / "generated"
    done = deploy_cli(generated, "deploy", "--parameters", str(file))
    try:
        assert done.returncode == 0, f"deploy failed:\n{done.stdout}\n{done.stderr}"
        yield generated
    finally:
        deploy_cli(generated, "destroy")
        shutil.rmtree(root, ignore_errors=True)


def render_file(file: Path, certificates: Path) -> Rendered:
    """The Kubernetes objects `armonik-deploy render` makes of a parameters file, with the shipped versions
    and the certificates generated in `certificates`."""
    from armonik_deploy.kubernetes import render
    from armonik_deploy.parameters import load_parameters, load_versions

    return render(
        load_parameters(file),
        load_versions(QUICK_DEPLOY / "versions.tfvars.json"),
        file,
        certificates=certificates,
    )
