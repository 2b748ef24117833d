"""Helpers shared by the suites that drive real processes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

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


def in_ci() -> bool:
    """CI runs with CI=true: there every tool and service the tests use must be present."""
    return os.environ.get("CI", "").lower() == "true"


def unavailable(reason: str, in_ci_message: str | None = None) -> NoReturn:
    """Skip the calling test on a machine that lacks what it needs (`reason`); fail it in CI, which must have
    everything (`in_ci_message`, else `reason`)."""
    if in_ci():
        pytest.fail(in_ci_message or reason)
    pytest.skip(reason)


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


#: The start of a parameters file (HCL, a `str.format` template of `port`) for local deployments under test:
#: processes restarted and stopped quickly, the control plane on `port` with partition `default`.
QUICK_RESTARTS = """
local = {{
  restart_delay     = 0.2
  max_restart_delay = 1
  stop_grace_period = 5
}}
control_plane = {{
  port              = {port}
  default_partition = "default"
}}
"""


def two_pairs_parameters(control_plane_port: int, **blocks: Any) -> dict[str, Any]:
    """Parameters of a local deployment for fault tests: partition `default` with two pairs of the bundled
    generic worker, quick to stop, no metrics exporter; `blocks` (storage, `local`) added as given."""
    return {
        **blocks,
        "control_plane": {"port": control_plane_port},
        "metrics_exporter": None,
        "compute_plane": {
            "default": {
                "replicas": 2,
                "termination_grace_period_seconds": 5,
                "worker": [{"command": ["{python}", "-m", "armonik_samples.worker"]}],
            }
        },
    }


def sample_options(
    sample: str,
    *,
    partition: str = "default",
    max_retries: int = 2,
    max_duration: timedelta = timedelta(minutes=1),
    **options: str,
) -> TaskOptions:
    """The SDK's task options running a sample of the generic worker (`options`: its arguments)."""
    return TaskOptions(
        max_duration=max_duration,
        priority=1,
        max_retries=max_retries,
        partition_id=partition,
        options={"sample": sample, **options},
    )


def attach_diagnostics(outcome: Any, title: str, deployment: Any) -> None:
    """In a `pytest_runtest_makereport` hook wrapper: a failed test's report gets the running deployment's
    diagnostics (`deployment.diagnostics()`, None outside of one) as a section, so that a failure in CI can
    be diagnosed from the output alone."""
    report = outcome.get_result()
    if report.failed and deployment is not None:
        report.sections.append((title, deployment.diagnostics()))


def short_folder(prefix: str) -> Iterator[Path]:
    """A folder of its own under /tmp (`prefix`...), removed afterwards: short, because unix socket paths
    (under it) are limited to about 100 bytes; a module's `tmp_path` fixture yields from it."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def key_pair_files(*names: str) -> list[str]:
    """The files of the certificates and keys named, in name order: `<name>.crt` and `<name>.key` each."""
    return sorted(f"{name}.{kind}" for name in names for kind in ("crt", "key"))


def clear_deployment_folder(folder: Path, pids: Iterable[int]) -> None:
    """After a test's local deployment: the process groups of `pids` still alive killed (a test that failed
    may have left them), then the folder removed."""
    from armonik_deploy import procs

    for pid in pids:
        if procs.alive(pid):
            procs.signal_group(pid, signal.SIGKILL)
    shutil.rmtree(folder, ignore_errors=True)


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
