"""The podman target's side of `armonik-deploy deploy|status|destroy` (kept out of the CLI module)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from armonik_deploy.images.engine import EngineError
from armonik_deploy.kubernetes.apply import DeployError
from armonik_deploy.parameters import ParametersError
from armonik_deploy.podman import target
from armonik_deploy.podman.translate import TranslationError

console = Console(highlight=False)
errors = Console(stderr=True, highlight=False)
FAILURES = (EngineError, DeployError, ParametersError, TranslationError, TimeoutError, OSError)


def _fail(exc: Exception) -> typer.Exit:
    errors.print(f"[red]error:[/red] {str(exc).replace('[', chr(92) + '[')}", soft_wrap=True)
    return typer.Exit(1)


def deploy(parameters: Path, versions: Path, generated: Path, timeout: float | None) -> None:
    try:
        with console.status("Images, certificates, rendering, then podman pods..."):
            done = target.deploy(parameters, versions, generated, timeout=timeout)
    except FAILURES as exc:
        raise _fail(exc) from None
    for warning in done.warnings:
        errors.print(f"[yellow]warning:[/yellow] {warning}", soft_wrap=True, markup=False)
    for image in done.built:
        console.print(f"built {image}", soft_wrap=True, markup=False)
    changes = done.changes
    console.print(
        f"[green]ArmoniK is up[/green] on podman: control plane at [bold]{done.url}[/bold] "
        f"(pods created {len(changes.created)}, kept {len(changes.kept)}, removed {len(changes.removed)})",
        soft_wrap=True,
    )
    console.print(f"Outputs: {done.output}", soft_wrap=True, markup=False)
    print(f"export AKCONFIG={done.cli}")


def status(parameters: Path, generated: Path) -> None:
    try:
        rows = target.status(parameters, generated)
    except FAILURES as exc:
        raise _fail(exc) from None
    if not rows:
        console.print("Nothing is running on podman for " + str(generated.resolve()), markup=False)
        return
    table = Table("container", "pod", "state", "restarts")
    for row in rows:
        style = "green" if row.state == "running" else "yellow"
        table.add_row(row.name, row.pod or "-", f"[{style}]{row.state}[/{style}]", str(row.restarts))
    console.print(table)


def destroy(parameters: Path, generated: Path, purge: bool) -> None:
    try:
        removed = target.destroy(parameters, generated, purge=purge)
    except FAILURES as exc:
        raise _fail(exc) from None
    kept = "" if purge else " (data volumes kept: --purge removes them)"
    console.print(f"Removed: {', '.join(removed) or 'nothing'}{kept}", soft_wrap=True, markup=False)
