"""The third-party Helm charts of the Kubernetes target (armonik_deploy/kubernetes/helm.py).

What is decided in Python is tested for real: which charts a deployment needs (against what the renderer
writes), their releases (against Terraform's helm_release) and values, what is kept of `helm template`'s output,
the apply order, and the warning and errors when helm is missing, through pyhelm3's own Client (this machine
has no helm). `STAND_IN_HELM` stands in for the external helm executable where its output must be parsed: it
answers the commands pyhelm3 runs with what helm prints and records what it was given; the assertions are on
our handling of it (values passed, objects kept and ordered, valid manifests, failures reported).
"""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import hcl2
import jsonschema
import kubernetes_validate
import pytest
import yaml
from typer.testing import CliRunner

from armonik_deploy.cli import app
from armonik_deploy.kubernetes import apply, chart_releases, commands, helm, render, render_folder
from armonik_deploy.kubernetes import layout as layout_module
from armonik_deploy.parameters import Parameters, Versions, load_parameters
from tests.unit.kubernetes_render_support import CUSTOM_SCHEMAS, VARIANT

ROOT = Path(__file__).resolve().parents[2]
QUICK_DEPLOY = ROOT / "infrastructure" / "quick-deploy" / "localhost"
VERSIONS_FILE = QUICK_DEPLOY / "versions.tfvars.json"
MODULES = ROOT / "infrastructure" / "modules"
INSTALL_HELP = "https://helm.sh/docs/intro/install/"

#: Stand-in for the helm executable: `version`, `show chart` and `template` print what helm prints (the
#: template output is the file `template-<release>.yaml` next to it), `uninstall` succeeds silently, as helm
#: does; every call is appended to `calls` (and its HELM_DRIVER written to `driver`) and the values read on
#: stdin go to `values-<release>.json`; any other command fails as helm does without a cluster.
STAND_IN_HELM = """#!/bin/sh
here=$(dirname "$0")
echo "$*" >> "$here/calls"
echo "$HELM_DRIVER" > "$here/driver"
case "$1" in
  version) printf 'v3.16.2' ;;
  show)
    name=$3; shift 3
    while [ $# -gt 0 ]; do [ "$1" = --version ] && version=$2; shift; done
    printf 'apiVersion: v2\\nname: %s\\nversion: %s\\n' "$name" "$version" ;;
  template) cat > "$here/values-$2.json"; cat "$here/template-$2.yaml" ;;
  uninstall) ;;
  *) echo 'Error: Kubernetes cluster unreachable: the server could not be reached' >&2; exit 1 ;;
esac
"""

CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "scaledobjects.keda.sh"},
    "spec": {
        "group": "keda.sh",
        "names": {"kind": "ScaledObject", "plural": "scaledobjects", "singular": "scaledobject"},
        "scope": "Namespaced",
        "versions": [
            {
                "name": "v1alpha1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                },
            }
        ],
    },
}


def deployment(name: str, namespace: str | None = None) -> dict[str, Any]:
    labels = {"app": name}
    metadata: dict[str, Any] = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata,
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": name, "image": f"example/{name}:1.0"}]},
            },
        },
    }


TEST_HOOK = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "keda-test", "annotations": {"helm.sh/hook": "test"}},
    "spec": {"containers": [{"name": "t", "image": "busybox:1.36"}]},
}
CLUSTER_ROLE = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "ClusterRole",
    "metadata": {"name": "keda"},
}
AUTH_READER = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "RoleBinding",
    "metadata": {"name": "keda-operator-auth-reader", "namespace": "kube-system"},
    "roleRef": {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "extension-apiserver-authentication-reader",
    },
    "subjects": [{"kind": "ServiceAccount", "name": "keda-operator", "namespace": "default"}],
}


def parameters(folder: Path, text: str) -> tuple[Parameters, Path]:
    file = folder / "parameters.tfvars"
    file.write_text(text)
    return load_parameters(file), file


def stand_in(folder: Path, outputs: dict[str, str]) -> Path:
    """The stand-in helm in `folder`, printing `outputs[release]` for `helm template <release> ...`."""
    folder.mkdir(parents=True, exist_ok=True)
    executable = folder / "helm"
    executable.write_text(STAND_IN_HELM)
    executable.chmod(executable.stat().st_mode | stat.S_IXUSR)
    for release, text in outputs.items():
        (folder / f"template-{release}.yaml").write_text(text)
    return executable


def as_helm_prints(*documents: Any) -> str:
    """`helm template` output: documents after `---` and `# Source:` lines, an empty one included."""
    parts = [f"---\n# Source: chart/templates/{i}.yaml\n{yaml.safe_dump(d)}" for i, d in enumerate(documents)]
    return "\n".join(parts) + "---\n"


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


# -- deploy --charts helm, up to the cluster -------------------------------------------------------------------
def quick_deploy_copy(folder: Path, declared: bool) -> Path:
    """A Terraform working directory declaring (or not) the variable that turns its helm releases off."""
    folder.mkdir(parents=True, exist_ok=True)
    text = f'variable "{chart_releases.INSTALL_CHARTS_VARIABLE}" {{\n  type    = bool\n  default = true\n}}\n'
    (folder / "variables.tf").write_text(text if declared else 'variable "namespace" { type = string }\n')
    return folder


def apply_parameters(folder: Path) -> Path:
    file = folder / "parameters.tfvars.json"
    file.write_text(
        json.dumps(
            {
                "compute_plane": {
                    "default": {
                        "worker": [{"image": "armonik-samples-worker"}],
                        "hpa": {"triggers": [{"type": "prometheus"}]},
                    }
                },
                "mongodb": {},
                "ingress": {"certificate_key_size": 2048},
            }
        )
    )
    return file


def test_deploy_with_helm_charts_stops_before_terraform_without_helm(tmp_path: Path) -> None:
    file = apply_parameters(tmp_path)
    layout = layout_module.KubernetesLayout(tmp_path / "generated")
    runner = apply.TerraformRunner(layout, working_dir=quick_deploy_copy(tmp_path / "tf", declared=True))
    with pytest.raises(layout_module.DeployError) as raised:
        apply.deploy(
            file,
            VERSIONS_FILE,
            layout.generated,
            runner=runner,
            charts="helm",
            helm_executable=str(tmp_path / "no-helm"),
        )
    assert str(raised.value).startswith("helm charts: ") and INSTALL_HELP in str(raised.value)
    assert json.loads(layout.tfvars.read_text())[chart_releases.INSTALL_CHARTS_VARIABLE] is False
    assert not layout.data_dir.exists()  # terraform init did not run


def test_deploy_with_helm_charts_needs_terraform_to_skip_its_releases(tmp_path: Path) -> None:
    file = apply_parameters(tmp_path)
    layout = layout_module.KubernetesLayout(tmp_path / "generated")
    runner = apply.TerraformRunner(layout, working_dir=quick_deploy_copy(tmp_path / "tf", declared=False))
    with pytest.raises(
        layout_module.DeployError, match=f"declares no variable {chart_releases.INSTALL_CHARTS_VARIABLE}"
    ):
        apply.deploy(file, VERSIONS_FILE, layout.generated, runner=runner, charts="helm")
    with pytest.raises(layout_module.DeployError, match="--charts kustomize: expected terraform or helm"):
        apply.deploy(file, VERSIONS_FILE, layout.generated, runner=runner, charts="kustomize")
    # the default leaves Terraform's variables as written
    apply.prepare(file, VERSIONS_FILE, layout)
    assert chart_releases.INSTALL_CHARTS_VARIABLE not in json.loads(layout.tfvars.read_text())


def test_the_quick_deploy_lets_helm_install_the_charts(tmp_path: Path) -> None:
    """The shipped quick-deploy declares install_helm_charts: `--charts helm` goes past that check, on to
    helm (missing here), before terraform runs."""
    file = apply_parameters(tmp_path)
    layout = layout_module.KubernetesLayout(tmp_path / "generated")
    runner = apply.TerraformRunner(layout)
    assert runner.working_dir == QUICK_DEPLOY
    with pytest.raises(layout_module.DeployError) as raised:
        apply.deploy(
            file,
            VERSIONS_FILE,
            layout.generated,
            runner=runner,
            charts="helm",
            helm_executable=str(tmp_path / "no-helm"),
        )
    message = str(raised.value)
    assert "declares no variable" not in message and "does not exist or is not executable" in message
    assert not layout.data_dir.exists()


def test_a_damaged_charts_record_is_named(tmp_path: Path) -> None:
    layout = layout_module.KubernetesLayout(tmp_path)
    assert chart_releases.read_charts_record(layout) == chart_releases.ChartsRecord("terraform", ())
    layout.folder.mkdir()
    layout.charts_record.write_text('{"installed_by": "kustomize", "releases": []}')
    with pytest.raises(
        layout_module.DeployError, match="installed_by 'kustomize': expected terraform or helm"
    ):
        chart_releases.read_charts_record(layout)
    layout.charts_record.write_text('{"releases": [{"release": "keda"}]}')
    with pytest.raises(layout_module.DeployError, match="unreadable record of the charts"):
        chart_releases.read_charts_record(layout)


def test_cli_charts_option(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["deploy", "--charts", "helm", "--generated", str(tmp_path)])
    assert result.exit_code == 1 and "only with --target kubernetes" in result.output


# -- through the stand-in helm --------------------------------------------------------------------------------
@pytest.fixture()
def standin(tmp_path: Path) -> Path:
    return stand_in(
        tmp_path / "bin",
        {
            "keda": as_helm_prints(deployment("keda-operator"), TEST_HOOK, CLUSTER_ROLE, AUTH_READER, CRD),
            "mongodb-psmdb-operator": as_helm_prints(deployment("percona-server-mongodb-operator")),
        },
    )


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


# -- the record of who installed the charts, and destroy --------------------------------------------------------
def test_deploy_records_the_helm_releases_before_installing_them(
    standin: Path, versions: Versions, tmp_path: Path
) -> None:
    file = apply_parameters(tmp_path)
    layout = layout_module.KubernetesLayout(tmp_path / "generated")
    runner = apply.TerraformRunner(layout, working_dir=quick_deploy_copy(tmp_path / "tf", declared=True))
    with pytest.raises(layout_module.DeployError, match="helm install of .* failed"):
        apply.deploy(
            file, VERSIONS_FILE, layout.generated, runner=runner, charts="helm", helm_executable=str(standin)
        )
    charts = helm.required_charts(load_parameters(file), versions, file)
    assert [c.release for c in charts] == ["keda", "mongodb-psmdb-operator"]
    record = json.loads(layout.charts_record.read_text())
    assert record == {
        "installed_by": "helm",
        "releases": [
            {
                "release": c.release,
                "chart": c.name,
                "version": c.version,
                "repository": c.repository,
                "namespace": c.namespace,
                "needed_by": list(c.needed_by),
            }
            for c in charts
        ],
    }
    # what destroy reads back: each release, where it is and what needs it (not its values)
    back = chart_releases.read_charts_record(layout)
    assert back.installed_by == "helm"

    def key(c: helm.Chart) -> tuple[Any, ...]:
        return (c.release, c.name, c.version, c.repository, c.namespace, c.needed_by)

    assert [key(c) for c in back.charts] == [key(c) for c in charts]
    assert back.users() == ["module.compute_plane", "module.mongodb"]
    # the other way would install the same releases a second time: refused until a destroy
    with pytest.raises(
        layout_module.DeployError, match="installed by helm .* deploy with --charts helm, or destroy"
    ):
        apply.deploy(file, VERSIONS_FILE, layout.generated, runner=runner)


def recording_quick_deploy(folder: Path, calls: Path) -> Path:
    """A provider-free stand-in for the quick-deploy (the real one needs the cluster's providers): the
    namespace and the modules destroyed before the charts are uninstalled (chart_releases.CHART_USERS) are
    terraform_data resources that append their destruction to `calls`, where the stand-in helm appends its
    own calls, so that the order of both is seen."""
    recorded = {"namespace": folder}
    for module in chart_releases.CHART_USERS.values():
        recorded[module] = folder / module.removeprefix("module.")
    for name, where in recorded.items():
        where.mkdir(parents=True, exist_ok=True)
        (where / "main.tf").write_text(
            'resource "terraform_data" "recorder" {\n'
            '  provisioner "local-exec" {\n'
            "    when    = destroy\n"
            f"    command = \"echo 'terraform destroy {name}' >> {calls}\"\n"
            "  }\n}\n"
        )
    modules = "".join(
        f'module "{m.removeprefix("module.")}" {{\n  source     = "./{m.removeprefix("module.")}"\n'
        "  depends_on = [terraform_data.recorder]\n}\n"
        for m in chart_releases.CHART_USERS.values()
    )
    quick_deploy_copy(folder, declared=True)
    (folder / "main.tf").write_text((folder / "main.tf").read_text() + modules)
    return folder


def destroy_events(calls: Path) -> list[str]:
    return [
        " ".join(line.split()[:2]) if line.startswith("uninstall") else line
        for line in calls.read_text().splitlines()
        if line.startswith(("terraform destroy", "uninstall"))
    ]


def test_destroy_after_helm_charts_uninstalls_them_between_two_terraform_destroys(
    standin: Path, versions: Versions, tmp_path: Path
) -> None:
    """First what needs the charts' controllers to be deleted (the ScaledObjects' module, MongoDB's), then
    helm uninstalls the releases (the last installed first), then the rest, the namespace last: KEDA still
    runs to finalize the ScaledObjects, and the operator's release is not left behind a deleted namespace."""
    file = apply_parameters(tmp_path)
    layout = layout_module.KubernetesLayout(tmp_path / "generated")
    calls = standin.parent / "calls"
    runner = apply.TerraformRunner(layout, working_dir=recording_quick_deploy(tmp_path / "tf", calls))
    ready = apply.prepare(file, VERSIONS_FILE, layout, "helm")
    runner.init()
    runner.apply(ready.tfvars)  # the deployment's state
    charts = helm.required_charts(load_parameters(file), versions, file)
    chart_releases.write_charts_record(layout, chart_releases.ChartsRecord("helm", tuple(charts)))

    uninstalled = apply.destroy(
        file, VERSIONS_FILE, layout.generated, runner=runner, helm_executable=str(standin)
    )
    assert uninstalled == [f"{c.release} (namespace {c.namespace}): uninstalled" for c in reversed(charts)]
    events = destroy_events(calls)
    assert sorted(events[:2]) == [
        "terraform destroy module.compute_plane",
        "terraform destroy module.mongodb",
    ]
    assert events[2:] == [
        "uninstall mongodb-psmdb-operator",
        "uninstall keda",
        "terraform destroy namespace",
    ]
    uninstall = {c[1]: c for c in calls_of(calls) if c[0] == "uninstall"}
    for chart in charts:
        assert uninstall[chart.release][uninstall[chart.release].index("--namespace") + 1] == chart.namespace
        assert "--wait" in uninstall[chart.release]
    assert (standin.parent / "driver").read_text().strip() == "configmap"
    assert json.loads(layout.tfvars.read_text())[chart_releases.INSTALL_CHARTS_VARIABLE] is False
    assert not layout.charts_record.exists()  # the deployment is gone: a next deploy may choose again


def calls_of(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines()]


def test_destroy_after_terraform_charts_needs_no_helm(tmp_path: Path) -> None:
    file = apply_parameters(tmp_path)
    layout = layout_module.KubernetesLayout(tmp_path / "generated")
    calls = tmp_path / "calls"
    runner = apply.TerraformRunner(layout, working_dir=recording_quick_deploy(tmp_path / "tf", calls))
    ready = apply.prepare(file, VERSIONS_FILE, layout)
    runner.init()
    runner.apply(ready.tfvars)
    chart_releases.write_charts_record(layout, chart_releases.ChartsRecord("terraform"))
    assert (
        apply.destroy(file, VERSIONS_FILE, layout.generated, runner=runner, helm_executable="no-helm") == []
    )
    events = destroy_events(calls)
    assert events[-1] == "terraform destroy namespace" and len(events) == 3


def test_destroy_after_helm_charts_without_helm_stops_before_terraform(tmp_path: Path) -> None:
    file = apply_parameters(tmp_path)
    layout = layout_module.KubernetesLayout(tmp_path / "generated")
    keda = helm.Chart("keda", "keda", "https://kedacore.github.io/charts", "2.19.0", "default")
    chart_releases.write_charts_record(layout, chart_releases.ChartsRecord("helm", (keda,)))
    runner = apply.TerraformRunner(layout, working_dir=quick_deploy_copy(tmp_path / "tf", declared=True))
    with pytest.raises(layout_module.DeployError) as raised:
        apply.destroy(
            file, VERSIONS_FILE, layout.generated, runner=runner, helm_executable=str(tmp_path / "x")
        )
    message = str(raised.value)
    assert message.startswith("helm charts: ") and INSTALL_HELP in message
    assert f"installed with helm ({layout.charts_record})" in message
    assert not layout.data_dir.exists()  # terraform did not run
    assert layout.charts_record.exists()  # kept for the next attempt


# -- plan ---------------------------------------------------------------------------------------------------------
def table_rows(output: str) -> list[list[str]]:
    return [
        [cell.strip() for cell in line.strip().strip("│").split("│")]
        for line in output.splitlines()
        if "│" in line
    ]


def test_kubernetes_plan_lists_the_charts_with_the_objects(versions: Versions, tmp_path: Path) -> None:
    params, file = parameters(tmp_path, VARIANT + 'keda = { namespace = "autoscaling" }\n')
    env = {"COLUMNS": "250"}
    result = CliRunner().invoke(app, ["plan", "--target", "kubernetes", "--parameters", str(file)], env=env)
    assert result.exit_code == 0, result.output
    rows = table_rows(result.output)
    charts = helm.required_charts(params, versions, file)
    assert len(charts) == 2
    for chart in charts:
        row = [chart.release, chart.name, chart.version, chart.namespace, chart.repository]
        assert [*row, ", ".join(chart.needed_by)] in rows
    assert ["PerconaServerMongoDB", "mongodb-db-ps", "armonik-test"] == next(
        r[:3] for r in rows if r[0] == "PerconaServerMongoDB"
    )
    assert "Helm charts" in result.output


def test_kubernetes_plan_without_pinned_charts_still_lists_the_objects(tmp_path: Path) -> None:
    unpinned = {**json.loads(VERSIONS_FILE.read_text()), "helm_charts": {}}
    (tmp_path / "versions.tfvars.json").write_text(json.dumps(unpinned))
    _, file = parameters(tmp_path, VARIANT)
    planned = commands.plan_table(file, tmp_path / "versions.tfvars.json")
    assert planned.charts == [] and planned.rendered.of_kind("ScaledObject")
    assert any("Helm charts not listed" in w and "helm_charts.keda: missing" in w for w in planned.warnings)
