"""`armonik-deploy images build|base`: the deployment's images, for podman (or docker) on this machine."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from armonik_deploy.images import base as base_image
from armonik_deploy.images.build import build, images_of
from armonik_deploy.images.engine import EngineError, find_engine
from armonik_deploy.parameters import ParametersError, load_versions

QUICK_VERSIONS = (
    Path(__file__).resolve().parents[2] / "infrastructure/quick-deploy/localhost/versions.tfvars.json"
)

app = typer.Typer(help="Build the container images.", no_args_is_help=True, add_completion=False)
console = Console(highlight=False, stderr=True)


@app.command("build")
def build_command(
    versions: Path = typer.Option(QUICK_VERSIONS, "--versions", help="versions.tfvars.json (names and tag)."),
    base: str | None = typer.Option(
        None, "--base", help="BASE_IMAGE: a Debian-like Python image (default: the official slim one)."
    ),
    push: str | None = typer.Option(None, "--push", help="Also push each image to this registry."),
    target: list[str] = typer.Option([], "--target", help="Only this Dockerfile target (repeatable)."),
) -> None:
    """Build the six images, tagged as versions.tfvars.json says, and print each one's size."""
    try:
        images = [i for i in images_of(load_versions(versions)) if not target or i.target in target]
        built = build(find_engine(), images, base=base, push=push, progress=console.print)
    except (EngineError, ParametersError) as exc:
        console.print(f"[red]error:[/red] {exc}", soft_wrap=True, markup=False)
        raise typer.Exit(1) from None
    for item in built:
        pushed = f"  pushed {item.pushed}" if item.pushed else ""
        print(f"{item.image.reference}  {item.size / 1e6:.0f} MB  built in {item.seconds:.1f} s{pushed}")


@app.command("base")
def base_command(
    tag: str = typer.Option(base_image.DEFAULT_BASE, "--tag", help="Name of the base image."),
    rebuild: bool = typer.Option(
        False, "--rebuild", help="Run debootstrap again instead of using its cache."
    ),
) -> None:
    """Build a Debian bookworm Python base with debootstrap and `podman import` (no registry needed)."""
    try:
        print(base_image.build_base(find_engine(), tag, rebuild=rebuild))
    except EngineError as exc:
        console.print(f"[red]error:[/red] {exc}", soft_wrap=True, markup=False)
        raise typer.Exit(1) from None
