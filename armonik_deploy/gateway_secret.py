"""The compute gateway's deployment secret and the agents' credentials, kept under `generated/gateway/`.

The secret is made once (like the TLS authority under `generated/certificates/`) and kept across redeploys,
so that agents and a restarted control plane agree on it; only the control plane reads it. Each partition's
agents get their own credential, derived from it (`armonik_core.gateway.auth.agent_credential`), in a file
of its own: an agent of partition A holds nothing that lets it take partition B's tasks. Files are 0600 in
a 0700 folder, and processes get their paths, not their contents, so that no secret is in a process listing
or in the supervisor's state.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from armonik_core.gateway.auth import agent_credential

if TYPE_CHECKING:
    from armonik_deploy.plan import Plan

FOLDER = "gateway"
SECRET_FILE = "deployment.secret"


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text + "\n")
    os.chmod(path, 0o600)


def secret_file(generated: Path) -> Path:
    return generated / FOLDER / SECRET_FILE


def credential_file(generated: Path, partition: str) -> Path:
    return generated / FOLDER / f"agent-{partition}.credential"


def ensure_secret(generated: Path) -> bytes:
    """The deployment secret, made the first time."""
    path = secret_file(generated)
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    if not path.exists():
        _write_private(path, secrets.token_hex(32))
    return path.read_text().strip().encode()


def ensure_credentials(generated: Path, partitions: list[str]) -> dict[str, Path]:
    """Each partition's agent credential file, (re)written from the secret: partition -> file."""
    secret = ensure_secret(generated)
    files = {}
    for partition in partitions:
        path = credential_file(generated, partition)
        credential = agent_credential(secret, partition)
        if not path.exists() or path.read_text().strip() != credential:
            _write_private(path, credential)
        files[partition] = path
    return files


def prepare_gateway_files(plan: Plan) -> None:
    """Make or keep the files `plan`'s control plane and agents name (before any process starts)."""
    ensure_credentials(Path(plan.generated), [str(p["PartitionId"]) for p in plan.partitions])
