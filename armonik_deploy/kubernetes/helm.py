"""The third-party Helm charts of a Kubernetes deployment: which ones it needs, with which values, rendered
into manifests (`armonik-deploy render`) or installed (`armonik-deploy deploy --charts helm`) through pyhelm3.

The charts and their releases are the ones Terraform installs with `helm_release` (infrastructure/modules/keda
and infrastructure/modules/storage/mongodb), from the repositories and versions of `helm_charts` in
versions.tfvars.json:

- KEDA (`keda`, release `keda` in `keda.namespace`, default `default`), when a partition scales with a
  ScaledObject: the renderer's own rule (`armonik.scaled_object`: an `hpa` with a trigger it maps). Its images
  are the versions' `ghcr.io/kedacore/keda` and `ghcr.io/kedacore/keda-metrics-apiserver`, given to the chart as
  registry + repository (the chart writes `<registry>/<repository>:<tag>`).
- The Percona operator (`psmdb-operator`, release `mongodb-psmdb-operator` in the deployment's namespace), when
  the `mongodb` block is set: it runs the `PerconaServerMongoDB` resource the renderer writes.

pyhelm3 drives the `helm` executable, which is a separate install: without it `template` reports each chart
it could not render (the rest of the deployment is still rendered), and `install` and `uninstall` (what
`armonik-deploy destroy` does after a `--charts helm` deployment) fail with a `ChartError`.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from armonik_deploy.kubernetes import armonik
from armonik_deploy.kubernetes.context import Context, Credentials
from armonik_deploy.kubernetes.layout import last_lines
from armonik_deploy.kubernetes.objects import Manifest
from armonik_deploy.parameters import HelmChart, Parameters, Versions

EXECUTABLE = "helm"
INSTALL_HELP = "install Helm 3 (https://helm.sh/docs/intro/install/)"
#: Helm keeps its releases in ConfigMaps, as Terraform's helm provider does here (`helm_driver` in
#: quick-deploy/localhost/providers.tf), so that `helm list` sees the releases whichever installed them.
ENVIRONMENT = {"HELM_DRIVER": "configmap"}
#: Terraform's helm_release waits 300 s for the release's resources by default.
INSTALL_TIMEOUT = "5m"
#: How many lines of helm's stderr a message quotes.
STDERR_TAIL_LINES = 10

KEDA_IMAGE = "ghcr.io/kedacore/keda"
KEDA_METRICS_IMAGE = "ghcr.io/kedacore/keda-metrics-apiserver"
#: Namespaces every cluster has: no Namespace object is rendered for a chart installed into one of them.
BUILT_IN_NAMESPACES = frozenset({"default", "kube-system", "kube-public", "kube-node-lease"})
#: Kinds without a namespace: helm leaves them so, any other object of a chart goes to the release's namespace.
CLUSTER_SCOPED = frozenset(
    {
        "APIService",
        "CSIDriver",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "IngressClass",
        "MutatingWebhookConfiguration",
        "Namespace",
        "PersistentVolume",
        "PriorityClass",
        "RuntimeClass",
        "StorageClass",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "ValidatingWebhookConfiguration",
    }
)


class ChartError(RuntimeError):
    """Helm cannot render or install a chart; the message names the chart, or the executable, and why."""


@dataclass(frozen=True, slots=True)
class Chart:
    """One chart to install as one release, as a Terraform `helm_release` states it."""

    release: str
    name: str
    repository: str
    version: str
    namespace: str
    values: Mapping[str, Any] = field(default_factory=dict)
    #: Helm creates the namespace (Terraform's `create_namespace`); false for the deployment's own namespace,
    #: which Terraform creates.
    create_namespace: bool = False
    #: The kinds of the deployment's resources that need this chart's CRDs and controller.
    needed_by: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.name} {self.version} from {self.repository} (release {self.release}, namespace {self.namespace})"


# -- which charts ----------------------------------------------------------------------------------------------
def required_charts(params: Parameters, versions: Versions, file: Path) -> list[Chart]:
    """The charts the deployment of `params` needs: KEDA when a partition scales, the Percona operator with
    the `mongodb` block. Raises ChartError when versions.tfvars.json does not pin one of them."""
    charts = []
    if scales_with_keda(params, versions, file):
        charts.append(keda_chart(params, versions))
    if params.mongodb is not None:
        charts.append(percona_operator_chart(params, versions))
    return charts


def scales_with_keda(params: Parameters, versions: Versions, file: Path) -> bool:
    """Whether the renderer writes a ScaledObject for some partition (asked to the renderer itself, so that
    the chart follows its rule; its warnings about dropped triggers belong to the render)."""
    ctx = Context(params, versions, file, Credentials(), certificates=Path())
    return any(armonik.scaled_object(ctx, name, p) is not None for name, p in params.compute_plane.items())


def _pinned(versions: Versions, key: str, what: str) -> HelmChart:
    pinned = versions.helm_charts.get(key)
    if pinned is None:
        raise ChartError(
            f"versions.tfvars.json: helm_charts.{key}: missing (the repository and version of {what})"
        )
    return pinned


def image_values(image: str, tag: str | None) -> dict[str, str]:
    """A chart's image as registry + repository (+ tag when the versions give one), as KEDA's chart reads
    it: `ghcr.io/kedacore/keda` is registry `ghcr.io`, repository `kedacore/keda`."""
    first, _, rest = image.partition("/")
    is_host = bool(rest) and ("." in first or ":" in first or first == "localhost")
    values = {"registry": first, "repository": rest} if is_host else {"registry": "", "repository": image}
    return {**values, "tag": tag} if tag else values


def keda_chart(params: Parameters, versions: Versions) -> Chart:
    pinned = _pinned(versions, "keda", "the KEDA chart")
    given = params.keda if isinstance(params.keda, dict) else {}
    namespace = str(given.get("namespace") or "default")
    return Chart(
        release="keda",
        name="keda",
        repository=pinned.repository,
        version=pinned.version,
        namespace=namespace,
        values={
            "image": {
                "keda": image_values(KEDA_IMAGE, versions.tag_of(KEDA_IMAGE)),
                "metricsApiServer": image_values(KEDA_METRICS_IMAGE, versions.tag_of(KEDA_METRICS_IMAGE)),
            }
        },
        create_namespace=namespace != params.namespace,
        needed_by=("ScaledObject",),
    )


def percona_operator_chart(params: Parameters, versions: Versions) -> Chart:
    pinned = _pinned(versions, "mongodb", "the Percona operator's chart (psmdb-operator)")
    return Chart(
        release="mongodb-psmdb-operator",
        name="psmdb-operator",
        repository=pinned.repository,
        version=pinned.version,
        namespace=params.namespace,
        needed_by=("PerconaServerMongoDB",),
    )


# -- what helm prints, made appliable ------------------------------------------------------------------------
def _is_test_hook(document: Manifest) -> bool:
    hooks = ((document.get("metadata") or {}).get("annotations") or {}).get("helm.sh/hook", "")
    return any(hook.strip().startswith("test") for hook in str(hooks).split(","))


def chart_manifests(chart: Chart, documents: Iterable[Any]) -> list[Manifest]:
    """The objects of `helm template` output as `kubectl apply` needs them: no empty documents nor test
    hooks (`helm test` pods are no part of a deployment), the release's namespace on every namespaced object
    that does not name one (helm install puts them there; kubectl would use the current context's), and the
    CRDs first."""
    kept: list[Manifest] = []
    for document in documents:
        if not isinstance(document, dict) or not document.get("kind") or _is_test_hook(document):
            continue
        metadata = dict(document.get("metadata") or {})
        if document["kind"] not in CLUSTER_SCOPED and not metadata.get("namespace"):
            metadata["namespace"] = chart.namespace
        kept.append({**document, "metadata": metadata})
    return sorted(kept, key=lambda m: m["kind"] != "CustomResourceDefinition")


def in_apply_order(
    manifests: Sequence[Manifest], charts: Sequence[tuple[Chart, list[Manifest]]], namespace: str
) -> list[Manifest]:
    """The deployment's manifests with the charts' objects right after the deployment's Namespace (the
    operator runs in it) and before every other object, so before the resources that need their CRDs and
    controllers (ScaledObject, PerconaServerMongoDB); a chart whose namespace helm would create gets its
    Namespace first."""
    head = 1 if manifests and manifests[0]["kind"] == "Namespace" else 0
    added: list[Manifest] = []
    created = {namespace, *BUILT_IN_NAMESPACES}
    for chart, objects in charts:
        if chart.create_namespace and chart.namespace not in created:
            added.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": chart.namespace}})
            created.add(chart.namespace)
        added += objects
    return [*manifests[:head], *added, *manifests[head:]]


# -- pyhelm3 -------------------------------------------------------------------------------------------------
def _tail(text: str | bytes | None, lines: int = STDERR_TAIL_LINES) -> str:
    return " | ".join(last_lines(text, lines))


def _helm_failure(exc: BaseException) -> str:
    """What helm said (pyhelm3's errors carry its stderr), else the exception's own message."""
    return _tail(getattr(exc, "stderr", None)) or str(exc) or type(exc).__name__


def _failures() -> tuple[type[BaseException], ...]:
    """How a helm command fails through pyhelm3: helm's exit status (its stderr kept), the process, output
    that is not YAML, and pydantic's checks of what helm printed (ValueErrors)."""
    from pyhelm3.errors import Error

    return (Error, OSError, ValueError, yaml.YAMLError)


def _missing(executable: str) -> str:
    if "/" in executable:
        return f"the helm executable {executable} does not exist or is not executable: {INSTALL_HELP}"
    return f"{executable} is not on PATH: {INSTALL_HELP}"


@dataclass(slots=True)
class RenderedCharts:
    """Each rendered chart with its objects, and a warning per chart that could not be rendered."""

    charts: list[tuple[Chart, list[Manifest]]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Helm:
    """A pyhelm3 `Client` on one helm executable (and, to install, one cluster)."""

    client: Any

    @classmethod
    def connect(
        cls, executable: str = EXECUTABLE, *, kubeconfig: Path | None = None, kubecontext: str | None = None
    ) -> Helm:
        """pyhelm3 checks the executable and asks its version; a missing or broken helm is a ChartError."""
        from pyhelm3 import Client

        try:
            return cls(Client(executable=executable, kubeconfig=kubeconfig, kubecontext=kubecontext))
        except AssertionError:  # pyhelm3 asserts that the executable exists
            raise ChartError(_missing(executable)) from None
        except subprocess.CalledProcessError as exc:
            if exc.returncode == 127:  # the shell did not find it
                raise ChartError(_missing(executable)) from None
            raise ChartError(
                f"`{executable} version` failed (exit {exc.returncode}): {_tail(exc.stderr)}"
            ) from None
        except (OSError, ValueError) as exc:
            raise ChartError(f"`{executable} version` gave no Helm version: {exc}") from None

    async def _chart(self, chart: Chart) -> Any:
        return await self.client.get_chart(chart.name, repo=chart.repository, version=chart.version)

    async def _template(self, chart: Chart) -> list[Manifest]:
        resolved = await self._chart(chart)
        documents = await self.client.template_resources(
            resolved, chart.release, dict(chart.values), include_crds=True, namespace=chart.namespace
        )
        return chart_manifests(chart, list(documents))

    def template(self, charts: Sequence[Chart]) -> RenderedCharts:
        """`helm template --include-crds` of each chart; one that fails is a warning naming it and why."""

        async def run() -> RenderedCharts:
            out = RenderedCharts()
            for chart in charts:
                try:
                    out.charts.append((chart, await self._template(chart)))
                except _failures() as exc:
                    out.warnings.append(not_rendered(chart, f"helm template failed: {_helm_failure(exc)}"))
            return out

        return asyncio.run(run())

    def install(self, charts: Sequence[Chart], timeout: str = INSTALL_TIMEOUT) -> list[str]:
        """`helm upgrade --install --wait` of each chart in order; the first failure is a ChartError naming
        the release. Returns a line per release (revision, status)."""

        async def run() -> list[str]:
            done = []
            for chart in charts:
                try:
                    revision = await self.client.install_or_upgrade_release(
                        chart.release,
                        await self._chart(chart),
                        dict(chart.values),
                        namespace=chart.namespace,
                        create_namespace=chart.create_namespace,
                        wait=True,
                        timeout=timeout,
                    )
                except _failures() as exc:
                    raise ChartError(f"helm install of {chart} failed: {_helm_failure(exc)}") from None
                status = getattr(revision.status, "value", revision.status)
                done.append(f"{chart.release} {chart.version}: revision {revision.revision}, {status}")
            return done

        return asyncio.run(run())

    def uninstall(self, charts: Sequence[Chart], timeout: str = INSTALL_TIMEOUT) -> list[str]:
        """`helm uninstall --wait` of each chart's release, in order (pyhelm3 counts a release already gone
        as uninstalled); the first failure is a ChartError naming the release. Returns a line per release."""

        async def run() -> list[str]:
            done = []
            for chart in charts:
                try:
                    await self.client.uninstall_release(
                        chart.release, namespace=chart.namespace, wait=True, timeout=timeout
                    )
                except _failures() as exc:
                    raise ChartError(f"helm uninstall of {chart} failed: {_helm_failure(exc)}") from None
                done.append(f"{chart.release} (namespace {chart.namespace}): uninstalled")
            return done

        return asyncio.run(run())


def not_rendered(chart: Chart, why: str) -> str:
    needs = " and ".join(chart.needed_by) or "other"
    return (
        f"Helm chart {chart} not rendered: {why}. The deployment's {needs} resources need it: render "
        "again with helm, or install the chart first (as `make deploy TARGET=kubernetes` does)"
    )


def template(charts: Sequence[Chart], executable: str = EXECUTABLE) -> RenderedCharts:
    """Each chart's objects, or a warning per chart helm could not render (helm missing: every chart)."""
    if not charts:
        return RenderedCharts()
    try:
        helm = Helm.connect(executable)
    except ChartError as exc:
        return RenderedCharts(warnings=[not_rendered(chart, str(exc)) for chart in charts])
    return helm.template(charts)


def install(
    charts: Sequence[Chart],
    *,
    executable: str = EXECUTABLE,
    kubeconfig: Path | None = None,
    kubecontext: str | None = None,
) -> list[str]:
    """Install or upgrade each chart on the cluster; ChartError when helm is missing or a release fails."""
    return Helm.connect(executable, kubeconfig=kubeconfig, kubecontext=kubecontext).install(charts)
