"""The Admin GUI's build for the local ingress, taken from upstream's image where a container engine has it.

Upstream ships the GUI as an nginx image whose `/usr/share/nginx/html/admin/browser/` is the build (one folder
per locale, base href `/admin/`). With `admin_gui = {}` and no `dist`, `deploy` copies that folder out of the
image (present, or pulled by podman or docker) into `<generated>/admin-gui/<tag>/`, once per tag: the container
is created, never started, and removed. Where no engine can give the image (none installed, no registry
reachable), `deploy` says so and `/admin/` serves the project's console; nothing fails.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from armonik_deploy.images.engine import Engine, EngineError, find_engine
from armonik_deploy.plan import Plan

#: Where the build is inside upstream's image.
BUILD_PATH = "/usr/share/nginx/html/admin/browser"


def has_build(folder: Path) -> bool:
    return folder.is_dir() and any((child / "index.html").is_file() for child in folder.iterdir())


def extract(engine: Engine, image: str, folder: Path) -> None:
    """Copy the build out of `image` (pulled if absent) into `folder`, replaced whole; EngineError if it cannot."""
    if not engine.image_exists(image):
        engine.run("pull", image, timeout=600)
    # a command is given so that an image without one can be created too; the container never runs
    container = engine.run("create", image, "true").strip()
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder.parent) as temporary:
            copy = Path(temporary) / "browser"
            engine.run("cp", f"{container}:{BUILD_PATH}", str(copy))
            if not has_build(copy):
                raise EngineError(f"{image}: {BUILD_PATH} holds no build (no <locale>/index.html)")
            shutil.rmtree(folder, ignore_errors=True)
            copy.rename(folder)
    finally:
        engine.run("rm", "--force", container, check=False)


def prepare_admin_gui(plan: Plan, engine: Engine | None = None) -> str | None:
    """Take the GUI's build for `plan` unless it is there already; a warning when it cannot be had."""
    image = plan.admin_gui_image
    ingress = next((p for p in plan.processes if p.role == "ingress"), None)
    if image is None or ingress is None or "Ingress__AdminGuiDirectory" not in ingress.env:
        return None
    folder = Path(ingress.env["Ingress__AdminGuiDirectory"])
    if has_build(folder):
        return None
    try:
        extract(engine or find_engine(), image, folder)
    except (EngineError, OSError) as exc:
        return (
            f"admin_gui: no build taken from {image} ({exc}); /admin/ serves the console until one is: "
            'name a build with admin_gui = { dist = "..." } (docs/admin-gui.md)'
        )
    return None
