"""What every part of the renderer needs: the parameters, the versions, image names, credentials, TLS.

Images: this project's processes speak its own gateway protocol between the control plane and the polling
agents, so the upstream .NET images that `parameters.tfvars` names by default (`dockerhubaneo/armonik_control`,
`..._pollingagent`, `..._control_metrics`) are replaced by this project's (`armonik-control-plane`, ...,
listed in versions.tfvars.json under `armonik_py`). Any other image is used as written. Tags follow upstream's
rule, `Versions.tag_of`: a tag in the parameters wins, else the image's version from versions.tfvars.json.

Credentials: a password the parameters do not give is generated once and kept in a `Credentials` map that the
caller persists (`armonik-deploy render` keeps it in `<DIR>/credentials.json`), so that rendering again does
not change the passwords of running services, as Terraform's `random_password` kept in its state.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path

from armonik_deploy.parameters import Parameters, Versions

CONTROL_PLANE_IMAGE = "armonik-control-plane"
POLLING_AGENT_IMAGE = "armonik-polling-agent"
METRICS_EXPORTER_IMAGE = "armonik-metrics-exporter"
SAMPLES_WORKER_IMAGE = "armonik-samples-worker"
PYMONIK_WORKER_IMAGE = "armonik-pymonik-worker"

#: Upstream's default images of the processes this project replaces -> this project's image.
OWN_IMAGES = {
    "dockerhubaneo/armonik_control": CONTROL_PLANE_IMAGE,
    "dockerhubaneo/armonik_pollingagent": POLLING_AGENT_IMAGE,
    "dockerhubaneo/armonik_control_metrics": METRICS_EXPORTER_IMAGE,
}


class RenderError(ValueError):
    """The parameters cannot be rendered for Kubernetes; the message names the key and what to change."""


@dataclass(slots=True)
class Credentials:
    """Generated passwords by name, kept between renders (see the module docstring)."""

    values: dict[str, str] = field(default_factory=dict)

    def get(self, name: str, given: object = None) -> str:
        """The password the parameters give, else the one generated for `name` before, else a new one."""
        if isinstance(given, str) and given:
            return given
        if name not in self.values:
            self.values[name] = secrets.token_urlsafe(18)
        return self.values[name]


@dataclass(slots=True)
class Context:
    params: Parameters
    versions: Versions
    file: Path
    credentials: Credentials
    #: Where generated certificates are kept (TLS of the control plane), reused while valid.
    certificates: Path
    warnings: list[str] = field(default_factory=list)

    @property
    def ns(self) -> str:
        return self.params.namespace

    def host(self, service: str) -> str:
        """The in-cluster name of a Service of the deployment."""
        return f"{service}.{self.ns}.svc"

    def image(self, name: str | None, tag: str | None, where: str) -> str:
        """`name:tag`, the tag from the parameters or versions.tfvars.json (upstream's `tag_of`)."""
        if not name:
            raise RenderError(f"{self.file}: {where}.image: required on Kubernetes (the container image)")
        name = OWN_IMAGES.get(name, name)
        resolved = self.versions.tag_of(name, tag)
        if not resolved:
            raise RenderError(
                f"{self.file}: {where}.tag: no tag for image {name}: set it, or list the image in "
                "versions.tfvars.json (armonik_images with a version, or image_tags)"
            )
        return f"{name}:{resolved}"
