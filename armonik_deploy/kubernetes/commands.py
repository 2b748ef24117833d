"""What `armonik-deploy render` and `armonik-deploy plan --target kubernetes` do (the CLI only wires them)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from rich.table import Column, Table

from armonik_deploy.kubernetes.context import RenderError
from armonik_deploy.kubernetes.render import Rendered, images, render, render_folder
from armonik_deploy.parameters import load_parameters, load_versions


def load_and_render_folder(parameters: Path, versions: Path, folder: Path) -> tuple[Rendered, list[Path]]:
    """Raises ParametersError or RenderError with a message naming the file and key."""
    params, the_versions = load_parameters(parameters), load_versions(versions)
    return render_folder(params, the_versions, parameters, folder)


def plan_table(parameters: Path, versions: Path) -> tuple[Table, Rendered]:
    """What `render` would write, as a table (kind, name, namespace, images); nothing is kept."""
    params, the_versions = load_parameters(parameters), load_versions(versions)
    with tempfile.TemporaryDirectory(prefix="armonik-plan-") as scratch:
        rendered = render(params, the_versions, parameters, certificates=Path(scratch))
    table = Table(
        Column("kind", no_wrap=True),
        Column("name", no_wrap=True),
        "namespace",
        Column("image", overflow="fold"),
    )
    for manifest in rendered.manifests:
        meta = manifest["metadata"]
        table.add_row(
            manifest["kind"], meta["name"], meta.get("namespace", "-"), ", ".join(images(manifest)) or "-"
        )
    return table, rendered


__all__ = ["RenderError", "load_and_render_folder", "plan_table"]
