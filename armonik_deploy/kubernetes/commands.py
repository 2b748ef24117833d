"""What `armonik-deploy render` and `armonik-deploy plan --target kubernetes` do (the CLI only wires them)."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rich.table import Column, Table

from armonik_deploy.kubernetes import helm
from armonik_deploy.kubernetes.context import RenderError
from armonik_deploy.kubernetes.render import Rendered, images, render, render_folder
from armonik_deploy.parameters import load_parameters, load_versions


def load_and_render_folder(parameters: Path, versions: Path, folder: Path) -> tuple[Rendered, list[Path]]:
    """Raises ParametersError or RenderError with a message naming the file and key."""
    params, the_versions = load_parameters(parameters), load_versions(versions)
    return render_folder(params, the_versions, parameters, folder)


@dataclass(slots=True)
class KubernetesPlan:
    """What a Kubernetes deployment would create: the rendered objects and the third-party Helm charts
    installed before them (by Terraform's helm_release, or by helm with `--charts helm`), each as a table."""

    rendered: Rendered
    charts: list[helm.Chart]
    objects_table: Table
    charts_table: Table
    warnings: list[str] = field(default_factory=list)


def objects_table(rendered: Rendered) -> Table:
    """Kind, name, namespace and images of each object `render` would write."""
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
    return table


def charts_table(charts: Sequence[helm.Chart]) -> Table:
    """Release, chart, version, namespace and repository of each chart, and the kinds that need it."""
    table = Table(
        Column("release", no_wrap=True),
        Column("chart", no_wrap=True),
        Column("version", no_wrap=True),
        Column("namespace", no_wrap=True),
        Column("repository", overflow="fold"),
        "for",
        title="Helm charts",
    )
    for chart in charts:
        table.add_row(
            chart.release,
            chart.name,
            chart.version,
            chart.namespace,
            chart.repository,
            ", ".join(chart.needed_by) or "-",
        )
    return table


def plan_table(parameters: Path, versions: Path) -> KubernetesPlan:
    """What `render` would write and the charts installed first, as tables; nothing is kept. A chart that
    versions.tfvars.json does not pin is a warning (the objects are still listed)."""
    params, the_versions = load_parameters(parameters), load_versions(versions)
    with tempfile.TemporaryDirectory(prefix="armonik-plan-") as scratch:
        rendered = render(params, the_versions, parameters, certificates=Path(scratch))
    warnings = list(rendered.warnings)
    try:
        charts = helm.required_charts(params, the_versions, parameters)
    except helm.ChartError as exc:
        charts = []
        warnings.append(f"Helm charts not listed: {exc}")
    return KubernetesPlan(rendered, charts, objects_table(rendered), charts_table(charts), warnings)


__all__ = ["KubernetesPlan", "RenderError", "load_and_render_folder", "plan_table"]
