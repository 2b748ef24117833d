"""Deploying and destroying with the third-party charts installed by helm (`--charts helm`), up to the cluster:
the order of helm and Terraform, the record of who installed the charts, the errors when helm or Terraform is
missing, and the plan listing the charts with our objects. STAND_IN_HELM (helm_support) stands in for helm and
records what it is given."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from armonik_deploy.cli import app
from armonik_deploy.kubernetes import apply, chart_releases, commands, helm
from armonik_deploy.kubernetes import layout as layout_module
from armonik_deploy.parameters import Versions, load_parameters
from tests.unit.helm_support import INSTALL_HELP, parameters
from tests.unit.kubernetes_render_support import VARIANT
from tests.unit.quick_deploy import QUICK_DEPLOY, VERSIONS_FILE


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


def deploy_charts_without_helm(
    file: Path, layout: layout_module.KubernetesLayout, runner: apply.TerraformRunner
) -> str:
    """`deploy --charts helm` where helm is missing: the message of the error it stops with."""
    missing = layout.generated.parent / "no-helm"
    with pytest.raises(layout_module.DeployError) as raised:
        apply.deploy(
            file, VERSIONS_FILE, layout.generated, runner=runner, charts="helm", helm_executable=str(missing)
        )
    return str(raised.value)


def test_deploy_with_helm_charts_stops_before_terraform_without_helm(tmp_path: Path) -> None:
    file = apply_parameters(tmp_path)
    layout = layout_module.KubernetesLayout(tmp_path / "generated")
    runner = apply.TerraformRunner(layout, working_dir=quick_deploy_copy(tmp_path / "tf", declared=True))
    message = deploy_charts_without_helm(file, layout, runner)
    assert message.startswith("helm charts: ") and INSTALL_HELP in message
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
    message = deploy_charts_without_helm(file, layout, runner)
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
    assert record["installed_by"] == "helm"
    assert [r["release"] for r in record["releases"]] == ["keda", "mongodb-psmdb-operator"]
    assert not any("values" in r for r in record["releases"]), "values are not needed to uninstall"
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
