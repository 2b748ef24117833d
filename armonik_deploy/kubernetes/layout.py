"""Where a Kubernetes deployment keeps its files, the error every step of it raises, and the end of a tool's
output that such an error quotes."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from armonik_deploy.paths import Below


class DeployError(RuntimeError):
    """A step of the Kubernetes deployment failed; the message names the step and what the tool said."""


# -- files --------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class KubernetesLayout:
    """Where a Kubernetes deployment keeps its files, all under the generated folder."""

    generated: Path

    certificates = Below("generated", "certificates")
    folder = Below("generated", "kubernetes")
    tfvars = folder / "terraform.tfvars.json"
    state = folder / "terraform.tfstate"
    data_dir = folder / ".terraform"
    #: Who installed the third-party charts, and which releases helm installed (`ChartsRecord`).
    charts_record = folder / "charts.json"


@contextlib.contextmanager
def environment(overrides: Mapping[str, str]) -> Iterator[None]:
    """python-terraform runs terraform with a copy of os.environ and takes no environment of its own: the
    overrides are set for the duration of the call and restored after."""
    saved = {key: os.environ.get(key) for key in overrides}
    os.environ.update(overrides)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def last_lines(output: str | bytes | None, count: int) -> list[str]:
    """The last `count` non-blank lines of a tool's output (terraform's, helm's stderr), right-stripped: what an
    error quotes of it."""
    if isinstance(output, bytes):
        output = output.decode(errors="replace")
    kept = [line.rstrip() for line in (output or "").splitlines() if line.strip()]
    return kept[-count:]
