"""The container engine of this machine and the settings every call to it shares.

podman is preferred, docker used where it is what the machine has. Two settings podman needs on machines like
the ones this project runs on are written once into a `containers.conf` that every podman call reads (through
`CONTAINERS_CONF`), so that builds, `podman run` and `podman kube play` (which takes no `--ulimit`) agree:
- the OCI runtime is runc (crun refuses hosts whose cgroups are in hybrid mode);
- the default rlimits are set below the host's hard ones (podman's defaults ask for more open files than an
  unprivileged container host may grant, and the container fails to start with `setrlimit: Operation not
  permitted`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

ULIMITS = ("nofile=20000:20000", "nproc=32768:32768")
CA_CANDIDATES = ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")
DEFAULT_CA = "/etc/ssl/certs/ca-certificates.crt"


class EngineError(RuntimeError):
    """No container engine, or one of its commands failed (the message has its output)."""


def containers_conf(runtime: str | None) -> str:
    """The text of the containers.conf every podman call reads."""
    ulimits = ", ".join(f'"{limit}"' for limit in ULIMITS)
    lines = ["[containers]", f"default_ulimits = [{ulimits}]", ""]
    if runtime:
        lines += ["[engine]", f'runtime = "{runtime}"', ""]
    return "\n".join(lines)


@dataclass(slots=True)
class Engine:
    """`podman` or `docker`, with the environment its calls run in."""

    executable: str
    env: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return Path(self.executable).name

    @property
    def is_podman(self) -> bool:
        return self.name == "podman"

    def run(self, *args: str, check: bool = True, timeout: float | None = None) -> str:
        """Run the engine with `args`; its stdout, or EngineError with its stderr when it fails and `check`."""
        done = subprocess.run(
            [self.executable, *args],
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            command = " ".join([self.name, *args[:3]])
            raise EngineError(f"{command} ... failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
        return done.stdout

    def image_exists(self, image: str) -> bool:
        return self.run("image", "inspect", image, check=False).strip() not in ("", "[]")

    def image_size(self, image: str) -> int:
        return int(self.run("image", "inspect", "--format", "{{.Size}}", image).strip() or 0)


def find_engine(config_dir: Path | None = None, preferred: str | None = None) -> Engine:
    """podman, else docker (`ARMONIK_CONTAINER_ENGINE` or `preferred` chooses); podman gets the
    containers.conf of this module, written under `config_dir` (default: ~/.cache/armonik)."""
    wanted = preferred or os.environ.get("ARMONIK_CONTAINER_ENGINE")
    for name in (wanted,) if wanted else ("podman", "docker"):
        path = shutil.which(name)
        if path is None:
            continue
        if Path(path).name != "podman":
            return Engine(path)
        folder = config_dir or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "armonik"
        folder.mkdir(parents=True, exist_ok=True)
        conf = folder / "containers.conf"
        text = containers_conf("runc" if shutil.which("runc") else None)
        if not conf.exists() or conf.read_text(encoding="utf-8") != text:
            conf.write_text(text, encoding="utf-8")
        return Engine(path, {"CONTAINERS_CONF": str(conf)})
    raise EngineError(
        f"no container engine: {wanted or 'podman or docker'} not found (apt-get install podman runc debootstrap)"
    )


def host_ca_bundle() -> Path | None:
    """The CA bundle this machine's pip trusts (PIP_CERT, REQUESTS_CA_BUNDLE, SSL_CERT_FILE, else the system's):
    builds mount it for their downloads, for networks that present their own TLS authority."""
    for name in CA_CANDIDATES:
        value = os.environ.get(name)
        if value and Path(value).is_file():
            return Path(value)
    return Path(DEFAULT_CA) if Path(DEFAULT_CA).is_file() else None
