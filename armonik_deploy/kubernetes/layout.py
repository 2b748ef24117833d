"""Where a Kubernetes deployment keeps its files, the error every step of it raises, and the end of a tool's
output that such an error quotes."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path


class DeployError(RuntimeError):
    """A step of the Kubernetes deployment failed; the message names the step and what the tool said."""


# -- files --------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class KubernetesLayout:
    """Where a Kubernetes deployment keeps its files, all under the generated folder."""

    generated: Path

    @property
    def certificates(self) -> Path:
        return self.generated / "certificates"

    @property
    def folder(self) -> Path:
        return self.generated / "kubernetes"

    @property
    def tfvars(self) -> Path:
        return self.folder / "terraform.tfvars.json"

    @property
    def state(self) -> Path:
        return self.folder / "terraform.tfstate"

    @property
    def data_dir(self) -> Path:
        return self.folder / ".terraform"

    @property
    def charts_record(self) -> Path:
        """Who installed the third-party charts, and which releases helm installed (`ChartsRecord`)."""
        return self.folder / "charts.json"


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
