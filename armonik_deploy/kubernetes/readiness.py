"""Step 3 of a Kubernetes deployment (see `apply`): waiting until the control plane's and every partition's
Deployment is rolled out."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from armonik_deploy.kubernetes.layout import DeployError
from armonik_deploy.parameters import Parameters

POLL_INTERVAL = 5.0

Dict = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class DeploymentStatus:
    ready: bool
    detail: str
    #: The rollout cannot finish by waiting (progress deadline exceeded).
    failed: bool = False


def deployment_status(deployment: Dict | None) -> DeploymentStatus:
    """Whether a Deployment (the client's `to_dict()`) is rolled out: its controller observed the latest
    spec, and it has as many updated and available replicas as it wants (0 wanted, e.g. scaled to zero by
    KEDA, is ready)."""
    if deployment is None:
        return DeploymentStatus(False, "not found")
    meta, spec, status = (deployment.get(k) or {} for k in ("metadata", "spec", "status"))
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Progressing" and condition.get("reason") == "ProgressDeadlineExceeded":
            return DeploymentStatus(False, f"progress deadline exceeded: {condition.get('message')}", True)
    observed, generation = status.get("observed_generation"), meta.get("generation")
    if observed is None or (generation is not None and observed < generation):
        return DeploymentStatus(False, "its latest spec is not observed yet")
    wanted = 1 if spec.get("replicas") is None else int(spec["replicas"])
    updated = int(status.get("updated_replicas") or 0)
    available = int(status.get("available_replicas") or 0)
    if updated < wanted:
        return DeploymentStatus(False, f"{updated}/{wanted} replicas updated")
    if available < wanted:
        return DeploymentStatus(False, f"{available}/{wanted} replicas available")
    return DeploymentStatus(True, f"{available}/{wanted} replicas available")


def deployment_names(params: Parameters) -> list[str]:
    """The Deployments a deployment waits for: the control plane's, then one per partition."""
    return [params.control_plane.name, *(f"compute-plane-{p}" for p in params.compute_plane)]


def wait_ready(
    read: Callable[[str], Dict | None],
    names: Sequence[str],
    timeout: float,
    *,
    poll: float = POLL_INTERVAL,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Poll `read(name)` (a Deployment dict, None when absent) until every one is ready, else DeployError
    naming each one still waited for and why."""
    deadline = clock() + timeout
    while True:
        statuses = {name: deployment_status(read(name)) for name in names}
        failed = {n: s for n, s in statuses.items() if s.failed}
        pending = {n: s for n, s in statuses.items() if not s.ready}
        if failed or (pending and clock() >= deadline):
            why = "failed" if failed else f"not ready after {timeout:g}s"
            listing = "; ".join(f"{n}: {s.detail}" for n, s in (failed or pending).items())
            raise DeployError(f"waiting for the Deployments: {why}: {listing}")
        if not pending:
            return
        sleep(max(0.0, min(poll, deadline - clock())))
