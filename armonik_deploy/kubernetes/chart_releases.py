"""The third-party charts installed with helm (`armonik-deploy deploy --target kubernetes --charts helm`) rather
than by Terraform's helm_release: the checks made before Terraform runs, the install and uninstall through
`helm.Helm`, and the record, under the generated folder, of which way a deployment's charts were installed (so
that `destroy` undoes it, and a later `deploy` does not install the releases a second time)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from armonik_deploy.kubernetes import helm
from armonik_deploy.kubernetes.layout import DeployError, KubernetesLayout, environment
from armonik_deploy.parameters import Parameters, Versions

#: Who installs the third-party charts: Terraform's helm_release (the default) or helm through pyhelm3.
CHARTS = ("terraform", "helm")
#: The quick-deploy variable that turns Terraform's own helm_release of the charts off.
INSTALL_CHARTS_VARIABLE = "install_helm_charts"
#: The quick-deploy modules holding the resources a chart's controller must see deleted (a chart's
#: `needed_by` kind -> its module): destroyed before helm uninstalls the charts.
CHART_USERS = {"ScaledObject": "module.compute_plane", "PerconaServerMongoDB": "module.mongodb"}


# -- the charts through helm (charts="helm") ----------------------------------------------------------------
def declares_variable(working_dir: Path, name: str) -> bool:
    """Whether a .tf file of `working_dir` declares `variable "<name>"` (a variable it does not declare
    would be ignored by terraform, with a warning only)."""
    declaration = re.compile(rf'^\s*variable\s+"{re.escape(name)}"', re.M)
    return any(declaration.search(tf.read_text(encoding="utf-8")) for tf in working_dir.glob("*.tf"))


@dataclass(slots=True)
class ChartInstall:
    """What `charts="helm"` installs, on which helm, checked before terraform runs."""

    client: helm.Helm
    charts: list[helm.Chart]
    #: A chart goes into the deployment's namespace, which Terraform creates: it is created first.
    needs_namespace: bool


def plan_chart_install(
    params: Parameters, versions: Versions, parameters_file: Path, working_dir: Path, executable: str
) -> ChartInstall:
    """The charts to install and a helm client on the deployment's cluster; DeployError when Terraform
    would install them too, when versions.tfvars.json does not pin one, or when helm is missing."""
    if not declares_variable(working_dir, INSTALL_CHARTS_VARIABLE):
        raise DeployError(
            f"helm charts: {working_dir} declares no variable {INSTALL_CHARTS_VARIABLE}, so Terraform "
            "would install the same releases again; deploy with --charts terraform"
        )
    try:
        charts = helm.required_charts(params, versions, parameters_file)
    except helm.ChartError as exc:
        raise DeployError(f"helm charts: {exc}") from None
    client = connect_helm(params, executable)
    return ChartInstall(client, charts, any(c.namespace == params.namespace for c in charts))


def connect_helm(params: Parameters, executable: str, why: str = "") -> helm.Helm:
    """A helm client on the deployment's cluster (its kubeconfig and context); DeployError when helm is
    missing or broken, `why` telling what it was needed for."""
    try:
        return helm.Helm.connect(
            executable,
            kubeconfig=Path(os.path.expanduser(params.k8s_config_path)),
            kubecontext=params.k8s_config_context,
        )
    except helm.ChartError as exc:
        raise DeployError(f"helm charts: {exc}{why}") from None


def install_charts(plan: ChartInstall) -> list[str]:
    """Install or upgrade the charts (helm's releases in ConfigMaps, as Terraform's helm provider keeps
    them); DeployError naming the release that failed."""
    try:
        with environment(helm.ENVIRONMENT):
            return plan.client.install(plan.charts)
    except helm.ChartError as exc:
        raise DeployError(f"helm charts: {exc}") from None


def uninstall_charts(client: helm.Helm, charts: Sequence[helm.Chart]) -> list[str]:
    """Uninstall the releases (helm's records in ConfigMaps, where `install_charts` put them), in the reverse
    order of their installation; DeployError naming the release that failed."""
    try:
        with environment(helm.ENVIRONMENT):
            return client.uninstall(list(reversed(charts)))
    except helm.ChartError as exc:
        raise DeployError(f"helm charts: {exc}") from None


# -- who installed the charts -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ChartsRecord:
    """How the last deploy installed the third-party charts (`CHARTS`) and, through helm, which releases."""

    installed_by: str = "terraform"
    charts: tuple[helm.Chart, ...] = ()

    def users(self) -> list[str]:
        """The quick-deploy modules to destroy before the releases are uninstalled (`CHART_USERS`; a kind it
        does not know has no resource in the quick-deploy)."""
        kinds = {kind for chart in self.charts for kind in chart.needed_by}
        return sorted(CHART_USERS[kind] for kind in kinds if kind in CHART_USERS)


def write_charts_record(layout: KubernetesLayout, record: ChartsRecord) -> Path:
    """The record as JSON: each release with its chart, version, repository, namespace and users (its values
    are not needed to uninstall it)."""
    releases = [
        {
            "release": c.release,
            "chart": c.name,
            "version": c.version,
            "repository": c.repository,
            "namespace": c.namespace,
            "needed_by": list(c.needed_by),
        }
        for c in record.charts
    ]
    data = {"installed_by": record.installed_by, "releases": releases}
    layout.charts_record.parent.mkdir(parents=True, exist_ok=True)
    layout.charts_record.write_text(json.dumps(data, indent=2) + "\n")
    return layout.charts_record


def read_charts_record(layout: KubernetesLayout) -> ChartsRecord:
    """The record of the last deploy; none (a deployment made before records, or destroyed): Terraform's."""
    path = layout.charts_record
    if not path.exists():
        return ChartsRecord()
    try:
        data = json.loads(path.read_text())
        charts = tuple(
            helm.Chart(
                release=str(r["release"]),
                name=str(r["chart"]),
                repository=str(r["repository"]),
                version=str(r["version"]),
                namespace=str(r["namespace"]),
                needed_by=tuple(str(kind) for kind in r.get("needed_by", ())),
            )
            for r in data.get("releases", [])
        )
        record = ChartsRecord(str(data["installed_by"]), charts)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DeployError(f"{path}: unreadable record of the charts ({exc}); fix or remove it") from None
    if record.installed_by not in CHARTS:
        raise DeployError(f"{path}: installed_by {record.installed_by!r}: expected {' or '.join(CHARTS)}")
    return record


def check_same_charts_way(layout: KubernetesLayout, charts: str) -> None:
    """A deployment keeps the way its charts were installed: the other way would install the releases a
    second time, or Terraform would remove what helm installed."""
    if not layout.charts_record.exists():
        return  # a first deployment (or one destroyed since)
    recorded = read_charts_record(layout).installed_by
    if recorded != charts:
        raise DeployError(
            f"--charts {charts}: this deployment's charts were installed by {recorded} "
            f"({layout.charts_record}); deploy with --charts {recorded}, or destroy it first"
        )
