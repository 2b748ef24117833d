"""The local target's ingress in the plan: when it runs, its settings, and the URLs the outputs name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from armonik_deploy.parameters import ParametersError, load_versions
from armonik_deploy.plan import Plan
from tests.unit.test_deploy_plan import by_name, parameters, plan_of, tmp_path  # noqa: F401
from tests.unit.test_kubernetes_render import QUICK_DEPLOY


def test_no_ingress_block_no_ingress(tmp_path: Path) -> None:  # noqa: F811
    plan = plan_of(tmp_path)
    assert "ingress" not in by_name(plan) and plan.ingress_urls == {}


def test_ingress_process_and_urls(tmp_path: Path) -> None:  # noqa: F811
    data = parameters(
        ingress={"http_port": 5123, "cors_allowed_host": "http://gui:4200"},
        environment_description={"name": "dev", "version": "1", "description": "d", "color": "red"},
    )
    plan = plan_of(tmp_path, data)
    ingress = by_name(plan)["ingress"]
    assert ingress.role == "ingress" and ingress.args[1:] == ["-m", "armonik_core.ingress"]
    env = ingress.env
    assert env["Ingress__Port"] == "5123" and env["ControlPlane__Endpoint"] == "http://127.0.0.1:6123"
    assert env["Ingress__CorsAllowedOrigins"] == "http://gui:4200"
    assert env["Ingress__MetricsUrl"] == plan.metrics_url
    assert env["Ingress__LogsDirectory"] == str(Path(plan.generated) / "logs")
    static = json.loads(env["Ingress__Static"])
    assert static == {
        "gui_configuration": {},
        "environment.json": {"name": "dev", "version": "1", "description": "d", "color": "red"},
    }
    assert "Ingress__AdminGuiDirectory" not in env
    assert plan.ingress_urls == {
        "admin_app_url": "http://127.0.0.1:5123/admin/",
        "grafana_url": "http://127.0.0.1:5123/monitoring/",
        "seq_web_url": "http://127.0.0.1:5123/logs/",
    }
    without_metrics = plan_of(tmp_path, parameters(ingress={}, metrics_exporter=None))
    assert without_metrics.ingress_urls["grafana_url"] is None
    assert by_name(without_metrics)["ingress"].env["Ingress__Port"] == "5000"


def test_admin_gui_build(tmp_path: Path) -> None:  # noqa: F811
    build = tmp_path / "gui" / "browser"
    (build / "en").mkdir(parents=True)
    (build / "en" / "index.html").write_text("<html></html>")
    plan = plan_of(tmp_path, parameters(ingress={}, admin_gui={"dist": "gui/browser"}))
    assert by_name(plan)["ingress"].env["Ingress__AdminGuiDirectory"] == str(build.resolve())
    with pytest.raises(ParametersError, match="admin_gui.dist: not an Admin GUI build"):
        plan_of(tmp_path, parameters(ingress={}, admin_gui={"dist": "gui"}))


@pytest.mark.parametrize(
    ("port", "error"), [(0, "not a port"), ("x", "not a port"), (6123, "control_plane.port")]
)
def test_bad_http_port(tmp_path: Path, port: object, error: str) -> None:  # noqa: F811
    with pytest.raises(ParametersError, match=f"ingress.http_port: .*{error}"):
        plan_of(tmp_path, parameters(ingress={"http_port": port}))


def test_tls_ingress_uses_its_own_client_certificate(tmp_path: Path) -> None:  # noqa: F811
    plan = plan_of(tmp_path, parameters(ingress={"tls": True, "mtls": True}))
    env = by_name(plan)["ingress"].env
    assert env["ControlPlane__Endpoint"] == "https://127.0.0.1:6123"
    assert env["ControlPlane__Tls__ClientCertificateFile"].endswith("armonik-ingress.crt")


def test_without_a_dist_the_build_comes_from_upstreams_gui_image(tmp_path: Path) -> None:  # noqa: F811
    versions = load_versions(QUICK_DEPLOY / "versions.tfvars.json")
    plan = plan_of(tmp_path, parameters(ingress={}, admin_gui={}), versions=versions)
    tag = versions.armonik_versions["gui"]
    assert plan.admin_gui_image == f"dockerhubaneo/armonik_admin_app:{tag}"
    folder = Path(plan.generated) / "admin-gui" / tag
    assert by_name(plan)["ingress"].env["Ingress__AdminGuiDirectory"] == str(folder)
    pinned = plan_of(tmp_path, parameters(ingress={}, admin_gui={"tag": "0.14.4"}), versions=versions)
    assert pinned.admin_gui_image == "dockerhubaneo/armonik_admin_app:0.14.4"
    # no admin_gui block, or a build named: no image
    assert plan_of(tmp_path, parameters(ingress={}), versions=versions).admin_gui_image is None
    assert Plan.from_json(plan.to_json()).admin_gui_image == plan.admin_gui_image
