"""Building the six images of infrastructure/images/Dockerfile, named and tagged as versions.tfvars.json says.

The targets are built one after the other: they share the wheel stage and the runtime stage, which the engine
builds once and takes from its cache for the next ones (and across runs: podman's storage persists on the
machine, and the wheel stage's pip downloads are kept in a cache mount). Each build passes the host's CA
bundle as a build secret, mounted for the wheel stage's downloads only.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from armonik_deploy.images.base import DEFAULT_BASE
from armonik_deploy.images.engine import Engine, EngineError, host_ca_bundle
from armonik_deploy.parameters import Versions

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "infrastructure" / "images" / "Dockerfile"
COMPONENT = "armonik_py"
WHEEL_STAGE = "wheels"
SOURCE = "https://github.com/aneoconsulting/ArmoniK"
#: Dockerfile target -> image name, in the order of versions.tfvars.json's `armonik_images.armonik_py`.
TARGETS = {
    "control-plane": "armonik-control-plane",
    "polling-agent": "armonik-polling-agent",
    "metrics-exporter": "armonik-metrics-exporter",
    "samples-worker": "armonik-samples-worker",
    "pymonik-worker": "armonik-pymonik-worker",
    "ingress-nginx": "armonik-ingress-nginx",
}
#: Upstream images that the project builds a stand-in for (upstream name -> image name of TARGETS): the podman
#: target runs the stand-in where the pinned image is not on the machine (no registry is assumed there).
STAND_INS = {"nginxinc/nginx-unprivileged": "armonik-ingress-nginx"}


@dataclass(frozen=True, slots=True)
class Image:
    target: str
    name: str
    tag: str

    @property
    def reference(self) -> str:
        """The local name: podman qualifies a name without a registry with `localhost/`."""
        return f"localhost/{self.name}:{self.tag}"


@dataclass(frozen=True, slots=True)
class Built:
    image: Image
    seconds: float
    size: int
    pushed: str | None = None


def images_of(versions: Versions) -> list[Image]:
    """The six images, with the tag of `armonik_versions.armonik_py`; a name versions.tfvars.json does not list
    is an error, so that what is built is what the deployments will ask for."""
    listed = versions.armonik_images.get(COMPONENT, [])
    missing = [name for name in TARGETS.values() if name not in listed]
    if missing:
        raise EngineError(f"versions file: armonik_images.{COMPONENT} does not list {', '.join(missing)}")
    tag = versions.armonik_versions[COMPONENT]
    return [Image(target, name, tag) for target, name in TARGETS.items()]


def revision() -> str:
    done = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    )
    return done.stdout.strip() or "unknown"


def build_args(image: Image, base: str | None, ca_bundle: Path | None, rev: str) -> list[str]:
    """The arguments of `<engine> build` for one image."""
    args = ["build", "--file", str(DOCKERFILE), "--target", image.target, "--tag", image.reference]
    args += ["--network", "host", "--build-arg", f"VERSION={image.tag}", "--build-arg", f"REVISION={rev}"]
    args += ["--build-arg", f"SOURCE={SOURCE}"]
    if base:
        args += ["--build-arg", f"BASE_IMAGE={base}"]
    if ca_bundle is not None:
        args += ["--secret", f"id=ca_bundle,src={ca_bundle}"]
    return [*args, str(ROOT)]


def build(
    engine: Engine,
    images: list[Image],
    *,
    base: str | None = None,
    push: str | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> list[Built]:
    """Build `images` in order (then push each to registry `push`, as `<push>/<name>:<tag>`)."""
    ca_bundle = host_ca_bundle()
    rev = revision()
    built: list[Built] = []
    if not images:
        return built
    # The wheel stage first, on its own: an image's build then mounts it from the cache. Rebuilt within the
    # build of an image that mounts it, buildah once gave the image the stage's previous contents.
    wheels = Image(WHEEL_STAGE, f"armonik-{WHEEL_STAGE}", images[0].tag)
    progress(f"building the wheel stage {wheels.reference}")
    try:
        engine.run(*build_args(wheels, base, ca_bundle, rev))
    except EngineError as exc:
        if base is None and "pull" in str(exc):
            raise EngineError(
                f"{exc}\nThe default base image could not be pulled. Without a container registry, make one with "
                f"`make images-base` and name it: `make images BASE_IMAGE={DEFAULT_BASE}` "
                f"(`ARMONIK_BASE_IMAGE={DEFAULT_BASE}` for `make deploy TARGET=podman`)"
            ) from None
        raise
    for image in images:
        progress(f"building {image.reference} (target {image.target})")
        start = time.monotonic()
        engine.run(*build_args(image, base, ca_bundle, rev))
        seconds = time.monotonic() - start
        pushed = None
        if push:
            pushed = f"{push.rstrip('/')}/{image.name}:{image.tag}"
            engine.run("tag", image.reference, pushed)
            engine.run("push", pushed)
        built.append(Built(image, seconds, engine.image_size(image.reference), pushed))
    return built


def missing(engine: Engine, images: list[Image]) -> list[Image]:
    return [image for image in images if not engine.image_exists(image.reference)]


def stand_ins(images: list[Image]) -> dict[str, str]:
    """Upstream image name -> the local reference of the stand-in among `images` (see `STAND_INS`)."""
    by_name = {image.name: image.reference for image in images}
    return {upstream: by_name[name] for upstream, name in STAND_INS.items() if name in by_name}
