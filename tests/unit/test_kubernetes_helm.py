"""The third-party Helm charts of the Kubernetes target (armonik_deploy/kubernetes/helm.py).

What is decided in Python is tested for real: which charts a deployment needs (against what the renderer
writes), their releases (against Terraform's helm_release) and values, what is kept of `helm template`'s output,
the apply order, and the warning and errors when helm is missing, through pyhelm3's own Client (this machine
has no helm). `STAND_IN_HELM` (helm_support) stands in for the external helm executable where its output must be parsed: it
answers the commands pyhelm3 runs with what helm prints and records what it was given; the assertions are on
our handling of it (values passed, objects kept and ordered, valid manifests, failures reported). Deploying,
destroying and planning with the charts are in `test_kubernetes_helm_deploy`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import hcl2
import jsonschema
import kubernetes_validate
import pytest
import yaml

from armonik_deploy.kubernetes import chart_releases, helm, render, render_folder
from armonik_deploy.kubernetes import layout as layout_module
from armonik_deploy.parameters import Versions
from tests.unit.helm_support import (
    AUTH_READER,
    CLUSTER_ROLE,
    CRD,
    INSTALL_HELP,
    TEST_HOOK,
    as_helm_prints,
    deployment,
    parameters,
    stand_in,
)
from tests.unit.kubernetes_render_support import CUSTOM_SCHEMAS, VARIANT
from tests.unit.quick_deploy import QUICK_DEPLOY, ROOT, VERSIONS_FILE

MODULES = ROOT / "infrastructure" / "modules"


def terraform_release(module: str) -> dict[str, Any]:
    options = hcl2.SerializationOptions(
        with_comments=False,
        strip_string_quotes=True,
        preserve_heredocs=False,
        preserve_scientific_notation=False,
    )
    data = hcl2.loads((MODULES / module / "main.tf").read_text(), serialization_options=options)
    releases = [r["helm_release"] for r in data["resource"] if "helm_release" in r]
    assert len(releases) == 1
    return next(iter(releases[0].values()))  # type: ignore[no-any-return]


# -- which charts, with what -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    [
        (QUICK_DEPLOY / "parameters.tfvars").read_text(),
        VARIANT,
        'compute_plane = { a = { worker = [{ image = "armonik-samples-worker" }] } }\n',
        'compute_plane = { a = { worker = [{ image = "armonik-samples-worker" }], '
        'hpa = { triggers = [{ type = "kafka" }] } } }\n',
    ],
    ids=["quick-deploy", "variant", "no-hpa", "unmapped-trigger"],
)
def test_keda_exactly_when_the_renderer_writes_a_scaled_object(
    text: str, versions: Versions, tmp_path: Path
) -> None:
    params, file = parameters(tmp_path, text)
    rendered = render(params, versions, file, certificates=tmp_path / "certs")
    charts = {c.name for c in helm.required_charts(params, versions, file)}
    assert ("keda" in charts) == bool(rendered.of_kind("ScaledObject"))
    assert ("psmdb-operator" in charts) == bool(rendered.of_kind("PerconaServerMongoDB"))


def test_releases_are_terraform_s(versions: Versions, tmp_path: Path) -> None:
    params, file = parameters(tmp_path, VARIANT)
    keda, operator = helm.required_charts(params, versions, file)
    pinned = json.loads(VERSIONS_FILE.read_text())["helm_charts"]
    for chart, module, key in ((keda, "keda", "keda"), (operator, "storage/mongodb", "mongodb")):
        release = terraform_release(module)
        assert (chart.release, chart.name) == (release["name"], release["chart"])
        assert chart.create_namespace == release.get("create_namespace", False)
        assert (chart.repository, chart.version) == (pinned[key]["repository"], pinned[key]["version"])
    assert keda.namespace == "default" and keda.needed_by == ("ScaledObject",)
    assert operator.namespace == "armonik-test" and operator.needed_by == ("PerconaServerMongoDB",)
    assert operator.values == {}


def test_keda_images_are_the_versions_as_the_chart_composes_them(versions: Versions, tmp_path: Path) -> None:
    params, file = parameters(tmp_path, VARIANT)
    keda = helm.keda_chart(params, versions)
    for key, image in (("keda", helm.KEDA_IMAGE), ("metricsApiServer", helm.KEDA_METRICS_IMAGE)):
        given = keda.values["image"][key]
        # the chart writes "<registry>/<repository>:<tag>" when a registry is set, else "<repository>:<tag>"
        written = "/".join(p for p in (given["registry"], given["repository"]) if p) + ":" + given["tag"]
        assert written == f"{image}:{versions.tag_of(image)}"


def test_image_values_split_a_registry_host_only() -> None:
    assert helm.image_values("ghcr.io/kedacore/keda", "2.19.0") == {
        "registry": "ghcr.io",
        "repository": "kedacore/keda",
        "tag": "2.19.0",
    }
    assert helm.image_values("localhost:5000/keda", None) == {
        "registry": "localhost:5000",
        "repository": "keda",
    }
    assert helm.image_values("kedacore/keda", None) == {"registry": "", "repository": "kedacore/keda"}


def test_keda_namespace_from_parameters(versions: Versions, tmp_path: Path) -> None:
    own, file = parameters(tmp_path, 'keda = { namespace = "autoscaling" }\n')
    assert (helm.keda_chart(own, versions).namespace, helm.keda_chart(own, versions).create_namespace) == (
        "autoscaling",
        True,
    )
    shared, _ = parameters(tmp_path, 'namespace = "apps"\nkeda = { namespace = "apps" }\n')
    # Terraform creates the deployment's namespace: helm must not
    assert helm.keda_chart(shared, versions).create_namespace is False


def test_a_chart_missing_from_the_versions_is_named(versions: Versions, tmp_path: Path) -> None:
    params, file = parameters(tmp_path, VARIANT)
    without = Versions(versions.armonik_versions, versions.armonik_images, versions.image_tags, {})
    with pytest.raises(helm.ChartError, match=r"helm_charts\.keda: missing"):
        helm.required_charts(params, without, file)
    rendered, _ = render_folder(params, without, file, tmp_path / "out")
    assert any("helm_charts.keda: missing" in w for w in rendered.warnings)


# -- helm template's output --------------------------------------------------------------------------------
def test_chart_manifests_keep_appliable_objects_crds_first() -> None:
    chart = helm.Chart("keda", "keda", "https://example.org/charts", "1.0.0", "autoscaling")
    documents = [None, deployment("keda-operator"), TEST_HOOK, CLUSTER_ROLE, AUTH_READER, "", CRD]
    kept = helm.chart_manifests(chart, documents)
    assert [m["kind"] for m in kept] == [
        "CustomResourceDefinition",
        "Deployment",
        "ClusterRole",
        "RoleBinding",
    ]
    by_kind = {m["kind"]: m["metadata"] for m in kept}
    assert by_kind["Deployment"]["namespace"] == "autoscaling"
    assert by_kind["RoleBinding"]["namespace"] == "kube-system"
    assert (
        "namespace" not in by_kind["ClusterRole"] and "namespace" not in by_kind["CustomResourceDefinition"]
    )
    assert "namespace" not in documents[1]["metadata"]  # type: ignore[index]


def test_chart_objects_come_after_the_namespace_and_before_what_needs_them(
    versions: Versions, tmp_path: Path
) -> None:
    params, file = parameters(tmp_path, VARIANT + 'keda = { namespace = "autoscaling" }\n')
    rendered = render(params, versions, file, certificates=tmp_path / "certs")
    keda, operator = helm.required_charts(params, versions, file)
    charts = [
        (keda, helm.chart_manifests(keda, [CRD, deployment("keda-operator")])),
        (operator, helm.chart_manifests(operator, [deployment("percona-server-mongodb-operator")])),
    ]
    ordered = helm.in_apply_order(rendered.manifests, charts, params.namespace)
    kinds_names = [(m["kind"], m["metadata"]["name"]) for m in ordered]
    assert kinds_names[:5] == [
        ("Namespace", "armonik-test"),
        ("Namespace", "autoscaling"),
        ("CustomResourceDefinition", "scaledobjects.keda.sh"),
        ("Deployment", "keda-operator"),
        ("Deployment", "percona-server-mongodb-operator"),
    ]
    assert ordered[5:] == rendered.manifests[1:]
    first_user = min(
        i for i, m in enumerate(ordered) if m["kind"] in ("ScaledObject", "PerconaServerMongoDB")
    )
    assert first_user > 4
    # KEDA in a namespace every cluster has: no Namespace object
    in_default = dataclasses.replace(keda, namespace="default")
    assert helm.in_apply_order(rendered.manifests, [(in_default, [])], params.namespace) == rendered.manifests


# -- without helm --------------------------------------------------------------------------------------------
def test_pyhelm3_refuses_a_missing_executable_and_we_say_how_to_get_helm(tmp_path: Path) -> None:
    from pyhelm3 import Client

    missing = tmp_path / "bin" / "helm"
    with pytest.raises((AssertionError, subprocess.CalledProcessError)):  # the latter under python -O
        Client(executable=str(missing))
    with pytest.raises(helm.ChartError) as raised:
        helm.Helm.connect(str(missing))
    assert str(missing) in str(raised.value) and INSTALL_HELP in str(raised.value)
    with pytest.raises(helm.ChartError, match="helm-not-installed-here is not on PATH"):
        helm.Helm.connect("helm-not-installed-here")


def test_template_without_helm_warns_once_per_chart(versions: Versions, tmp_path: Path) -> None:
    params, file = parameters(tmp_path, VARIANT)
    charts = helm.required_charts(params, versions, file)
    out = helm.template(charts, str(tmp_path / "no-helm"))
    assert out.charts == [] and len(out.warnings) == len(charts) == 2
    for chart, warning in zip(charts, out.warnings, strict=True):
        assert f"Helm chart {chart.name} {chart.version} from {chart.repository}" in warning
        assert "not rendered" in warning and INSTALL_HELP in warning
        assert all(kind in warning for kind in chart.needed_by)
    assert helm.template([], str(tmp_path / "no-helm")).warnings == []


def test_render_folder_without_helm_writes_every_manifest_of_ours(versions: Versions, tmp_path: Path) -> None:
    params, file = parameters(tmp_path, VARIANT)
    ours = render(params, versions, file, certificates=tmp_path / "certs")
    rendered, paths = render_folder(
        params, versions, file, tmp_path / "out", helm_executable=str(tmp_path / "x")
    )
    assert [(m["kind"], m["metadata"]["name"]) for m in rendered.manifests] == [
        (m["kind"], m["metadata"]["name"]) for m in ours.manifests
    ]
    assert len(paths) == len(ours.manifests)
    assert [w.split(" not rendered")[0] for w in rendered.warnings] == [
        f"Helm chart {c}" for c in helm.required_charts(params, versions, file)
    ]
    skipped, _ = render_folder(params, versions, file, tmp_path / "out2", helm_executable=None)
    assert skipped.warnings == []


def test_install_without_helm_is_an_error_naming_the_step(versions: Versions, tmp_path: Path) -> None:
    params, file = parameters(tmp_path, VARIANT)
    charts = helm.required_charts(params, versions, file)
    with pytest.raises(helm.ChartError, match="does not exist or is not executable"):
        helm.install(charts, executable=str(tmp_path / "no-helm"))


# -- through the stand-in helm --------------------------------------------------------------------------------
def calls(standin: Path) -> list[list[str]]:
    return [line.split() for line in (standin.parent / "calls").read_text().splitlines()]


def test_render_folder_adds_the_charts_objects_in_apply_order(
    standin: Path, versions: Versions, tmp_path: Path
) -> None:
    params, file = parameters(tmp_path, VARIANT)
    rendered, paths = render_folder(params, versions, file, tmp_path / "out", helm_executable=str(standin))
    assert rendered.warnings == []
    names = [p.name for p in paths]
    assert names[:6] == [
        "000-namespace-armonik-test.yaml",
        "001-customresourcedefinition-scaledobjects.keda.sh.yaml",
        "002-deployment-keda-operator.yaml",
        "003-clusterrole-keda.yaml",
        "004-rolebinding-keda-operator-auth-reader.yaml",
        "005-deployment-percona-server-mongodb-operator.yaml",
    ]
    loaded = [yaml.safe_load(p.read_text()) for p in paths]
    assert loaded == rendered.manifests
    first_user = min(i for i, m in enumerate(loaded) if m["kind"] in ("ScaledObject", "PerconaServerMongoDB"))
    assert first_user > 5
    assert loaded[2]["metadata"]["namespace"] == "default"
    assert loaded[5]["metadata"]["namespace"] == "armonik-test"
    # every object written still passes the validation of the renderer's tests
    for manifest in loaded:
        if manifest["kind"] in CUSTOM_SCHEMAS:
            jsonschema.validate(manifest, json.loads(CUSTOM_SCHEMAS[manifest["kind"]].read_text()))
        else:
            kubernetes_validate.validate(manifest, "1.32", strict=True)


def test_helm_is_given_each_chart_s_release_repository_version_namespace_and_values(
    standin: Path, versions: Versions, tmp_path: Path
) -> None:
    params, file = parameters(tmp_path, VARIANT)
    charts = helm.required_charts(params, versions, file)
    helm.template(charts, str(standin))
    templates = [c for c in calls(standin) if c[0] == "template"]
    assert len(templates) == len(charts)
    for chart, args in zip(charts, templates, strict=True):
        assert args[1:3] == [chart.release, chart.name] and "--include-crds" in args
        option = {args[i]: args[i + 1] for i in range(len(args) - 1) if args[i].startswith("--")}
        assert option["--namespace"] == chart.namespace and option["--version"] == chart.version
        assert option["--repo"].rstrip("/") == chart.repository.rstrip("/")
        given = json.loads((standin.parent / f"values-{chart.release}.json").read_text())
        assert given == chart.values


def test_a_chart_helm_cannot_render_is_a_warning_the_others_render(
    versions: Versions, tmp_path: Path
) -> None:
    standin = stand_in(tmp_path / "bin", {"mongodb-psmdb-operator": as_helm_prints(deployment("operator"))})
    params, file = parameters(tmp_path, VARIANT)
    out = helm.template(helm.required_charts(params, versions, file), str(standin))
    assert [chart.name for chart, _ in out.charts] == ["psmdb-operator"]
    (warning,) = out.warnings
    assert warning.startswith("Helm chart keda ") and "helm template failed" in warning


def test_a_failed_install_names_the_release_and_quotes_helm(
    standin: Path, versions: Versions, tmp_path: Path
) -> None:
    params, file = parameters(tmp_path, VARIANT)
    charts = helm.required_charts(params, versions, file)
    plan = chart_releases.ChartInstall(helm.Helm.connect(str(standin)), charts, needs_namespace=True)
    before = os.environ.get("HELM_DRIVER")
    with pytest.raises(layout_module.DeployError) as raised:
        chart_releases.install_charts(plan)
    message = str(raised.value)
    assert message.startswith(f"helm charts: helm install of {charts[0]} failed")
    assert "Kubernetes cluster unreachable" in message
    assert (standin.parent / "driver").read_text().strip() == "configmap"  # as Terraform's helm provider
    assert os.environ.get("HELM_DRIVER") == before
    upgrade = next(c for c in calls(standin) if c[0] == "upgrade")
    assert upgrade[1:3] == ["keda", "keda"] and "--wait" in upgrade
