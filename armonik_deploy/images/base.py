"""The registry-free Python base: tools/images/build-base.sh (debootstrap + podman import), run as a command."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from armonik_deploy.images.engine import Engine, EngineError

SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "images" / "build-base.sh"
DEFAULT_BASE = "localhost/armonik-python-base:bookworm"


def build_base(engine: Engine, tag: str = DEFAULT_BASE, *, rebuild: bool = False) -> str:
    """Build the base image `tag` (debootstrap's tree is cached by the script; `rebuild` makes it anew)."""
    env = {**engine.env, "ENGINE": engine.executable}
    if rebuild:
        env["REBUILD"] = "1"

    done = subprocess.run(
        ["bash", str(SCRIPT), tag], env={**os.environ, **env}, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise EngineError(f"{SCRIPT.name} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return tag
