"""Creating, updating, listing and removing the podman objects of a translation (`translate.Translation`).

A deployment is everything labelled `io.armonik.podman.deployment=<prefix>`. Deploying again compares each pod's
spec hash (its label) with the new translation: a pod whose containers are unchanged keeps running (the control
plane, and with it its clients' sessions, when only the compute plane changed), a changed one is replaced, one
no longer rendered is removed. The relays to the host's services come first (the Jobs may need them), then the
Jobs run to completion, at every deployment (as the local target runs its init job), so that a new partition
reaches a running control plane.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from armonik_deploy.images.engine import Engine, EngineError
from armonik_deploy.podman.translate import LABEL, SPEC_LABEL, FileSet, Pod, Translation

POD_LABEL = "io.armonik.podman.pod"
JOB_TIMEOUT = 300.0


@dataclass(frozen=True, slots=True)
class Changes:
    kept: list[str]
    created: list[str]
    removed: list[str]


@dataclass(frozen=True, slots=True, order=True)
class ContainerStatus:
    name: str
    pod: str
    state: str
    restarts: int


def ensure_network(engine: Engine, name: str, prefix: str) -> str:
    """The deployment's network (created once, kept across deployments); its gateway address."""
    if not _exists(engine, name):
        engine.run("network", "create", "--label", f"{LABEL}={prefix}", name)
    subnets = json.loads(engine.run("network", "inspect", name))[0].get("subnets") or []
    if not subnets:
        raise EngineError(f"network {name} has no subnet")
    return str(subnets[0]["gateway"])


def _exists(engine: Engine, network: str) -> bool:
    done = engine.run("network", "inspect", network, check=False)
    return done.strip() not in ("", "[]")


def write_files(folder: Path, files: list[FileSet]) -> None:
    """ConfigMap and Secret volumes as files, owned by the pod's user, with the mode the manifest asks."""
    for fileset in files:
        target = folder / fileset.name
        target.mkdir(parents=True, exist_ok=True)
        os.chmod(target, 0o750)
        os.chown(target, 0, fileset.owner[1])
        for key, data in fileset.files.items():
            path = target / key
            path.write_bytes(data)
            os.chown(path, *fileset.owner)
            os.chmod(path, fileset.mode)


def _run_args(pod: Pod, index: int, prefix: str, files: Path) -> list[str]:
    container = pod.containers[index]
    args = [
        a.replace("@files/", f"{files}/", 1) if a.startswith("--") is False else a for a in container.args
    ]
    args = [container.image if a == "@image" else a for a in args]
    labels = ["--label", f"{LABEL}={prefix}", "--label", f"{POD_LABEL}={pod.name}"]
    in_pod = [] if pod.kind == "Job" else ["--pod", pod.name]
    return ["run", "--detach", "--log-driver", "k8s-file", *labels, *in_pod, *args]


def run_job(engine: Engine, job: Pod, prefix: str, files: Path) -> None:
    """Run a Job's containers one after the other to completion; a failure is an error with its logs."""
    for index, container in enumerate(job.containers):
        name = f"{job.name}-{container.name}"
        engine.run("rm", "--force", name, check=False)
        engine.run(*_run_args(job, index, prefix, files))
        code = engine.run("wait", name, timeout=JOB_TIMEOUT).strip()
        logs = engine.run("logs", "--tail", "20", name, check=False)
        engine.run("rm", "--force", name, check=False)
        if code != "0":
            raise EngineError(f"Job container {name} exited with {code}:\n{logs}")


def existing_pods(engine: Engine, prefix: str) -> dict[str, str]:
    """Pod name -> spec hash of the deployment's pods."""
    listed = json.loads(
        engine.run("pod", "ps", "--filter", f"label={LABEL}={prefix}", "--format", "json") or "[]"
    )
    return {p["Name"]: (p.get("Labels") or {}).get(SPEC_LABEL, "") for p in listed}


def create_pod(engine: Engine, pod: Pod, prefix: str, files: Path) -> None:
    labels = ["--label", f"{LABEL}={prefix}", "--label", f"{SPEC_LABEL}={pod.spec_hash}"]
    engine.run("pod", "create", *pod.options, *labels, "--name", pod.name)
    for volume in pod.volumes:
        engine.run(
            "volume", "create", "--label", f"{LABEL}={prefix}", "--label", f"{POD_LABEL}={pod.name}", volume
        )
    for index in range(len(pod.containers)):
        engine.run(*_run_args(pod, index, prefix, files))


def remove_pod(engine: Engine, name: str, prefix: str) -> None:
    engine.run("pod", "rm", "--force", "--time", "10", name, check=False)
    # A container podman restarted after a crash may no longer be listed in its pod: removed by its label.
    left = engine.run("ps", "--all", "--quiet", "--filter", f"label={POD_LABEL}={name}", check=False).split()
    if left:
        engine.run("rm", "--force", "--time", "10", *left, check=False)
    volumes = engine.run(
        "volume", "ls", "--quiet", "--filter", f"label={POD_LABEL}={name}", check=False
    ).split()
    if volumes:
        engine.run("volume", "rm", "--force", *volumes, check=False)


def apply(engine: Engine, translation: Translation, prefix: str, files: Path) -> Changes:
    """Bring the deployment to `translation` (see the module's notes)."""
    write_files(files, translation.files)
    for volume in translation.volumes:
        if not _volume_exists(engine, volume):
            engine.run("volume", "create", "--label", f"{LABEL}={prefix}", volume)
    existing = existing_pods(engine, prefix)
    changes = Changes([], [], [])
    _bring(engine, translation.relays, existing, prefix, files, changes)
    for job in translation.jobs:
        run_job(engine, job, prefix, files)
    wanted = {pod.name for pod in translation.pods + translation.relays}
    changes.removed.extend(name for name in existing if name not in wanted)
    for name in changes.removed:
        remove_pod(engine, name, prefix)
    _bring(engine, translation.pods, existing, prefix, files, changes)
    return changes


def _bring(
    engine: Engine, pods: list[Pod], existing: dict[str, str], prefix: str, files: Path, changes: Changes
) -> None:
    """Keep (and start) the pods whose spec is unchanged, replace the others, create the new ones."""
    for pod in pods:
        if existing.get(pod.name) == pod.spec_hash:
            engine.run("pod", "start", pod.name, check=False)
            changes.kept.append(pod.name)
            continue
        if pod.name in existing:
            remove_pod(engine, pod.name, prefix)
        create_pod(engine, pod, prefix, files)
        changes.created.append(pod.name)


def _volume_exists(engine: Engine, volume: str) -> bool:
    return engine.run("volume", "inspect", volume, check=False).strip() not in ("", "[]")


def containers(engine: Engine, prefix: str) -> list[dict[str, Any]]:
    """The deployment's containers as `podman ps` describes them, without the pods' infra containers (which
    carry their pod's labels, and only hold its network namespace)."""
    listed = json.loads(
        engine.run("ps", "--all", "--filter", f"label={LABEL}={prefix}", "--format", "json") or "[]"
    )
    return [c for c in listed if not c.get("IsInfra")]


def status(engine: Engine, prefix: str) -> list[ContainerStatus]:
    listed = containers(engine, prefix)
    names = [c["Names"][0] for c in listed]
    restarts: dict[str, int] = {}
    if names:
        for item in json.loads(engine.run("container", "inspect", *names)):
            restarts[item["Name"]] = int(item.get("RestartCount", 0))
    return (
        sorted(
            ContainerStatus(
                c["Names"][0],
                (c.get("Labels") or {}).get(POD_LABEL, ""),
                c.get("State", ""),
                restarts.get(c["Names"][0], 0),
            )
            for c in listed
        )
        if listed
        else []
    )


def destroy(engine: Engine, prefix: str, network: str, *, purge: bool = False) -> list[str]:
    """Remove every pod and container of the deployment, its pods' volumes and its network; the data volumes
    (claims) only with `purge`. The names of what was removed."""
    removed = []
    for name in existing_pods(engine, prefix):
        remove_pod(engine, name, prefix)
        removed.append(name)
    left = engine.run("ps", "--all", "--quiet", "--filter", f"label={LABEL}={prefix}", check=False).split()
    if left:
        engine.run("rm", "--force", "--time", "10", *left, check=False)
    if purge:
        volumes = engine.run(
            "volume", "ls", "--quiet", "--filter", f"label={LABEL}={prefix}", check=False
        ).split()
        if volumes:
            engine.run("volume", "rm", "--force", *volumes, check=False)
            removed += volumes
    if _exists(engine, network):
        engine.run("network", "rm", "--force", network, check=False)
    return removed
