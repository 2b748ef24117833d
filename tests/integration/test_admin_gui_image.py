"""The Admin GUI's build taken out of a GUI image by podman, as `deploy` does for `admin_gui = {}` without `dist`.

The image is made here (upstream's cannot be pulled on a machine without its registry): a build folder at
upstream's path, `/usr/share/nginx/html/admin/browser/<locale>/index.html`, in an image with nothing else. The
plan's ingress folder then holds the build, which the ingress serves under `/admin/`; an image no engine can
give leaves a warning and the console.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from armonik_core.ingress.app import build_app
from armonik_core.ingress.settings import IngressSettings
from armonik_deploy.admin_gui import prepare_admin_gui
from armonik_deploy.images.engine import Engine, find_engine
from tests.support import unavailable
from tests.unit.test_deploy_plan import by_name, parameters, plan_of

IMAGE = "localhost/armonik-test-admin-app"
TAG = "0.0.1-test"


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    if not shutil.which("podman"):
        unavailable("podman not installed", "podman missing: .ci/run installs it")
    folder = tmp_path_factory.mktemp("gui-image")
    engine = find_engine(folder / "conf")
    build = folder / "context" / "browser"
    for locale in ("en", "fr"):
        (build / locale).mkdir(parents=True)
        (build / locale / "index.html").write_text(
            f"<html lang={locale}><base href=/admin/{locale}/>GUI</html>"
        )
    (folder / "context" / "Containerfile").write_text(
        "FROM scratch\nCOPY browser /usr/share/nginx/html/admin/browser\n"
    )
    engine.run("build", "--tag", f"{IMAGE}:{TAG}", str(folder / "context"), timeout=300)
    yield engine
    engine.run("rmi", "--force", f"{IMAGE}:{TAG}", check=False)


@pytest.fixture
def short() -> Iterator[Path]:
    """A folder with a short path: the plan's unix sockets live under it."""
    folder = Path(tempfile.mkdtemp(prefix="akgui-", dir="/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_the_build_is_taken_from_the_image_and_served(engine: Engine, short: Path) -> None:
    plan = plan_of(short, parameters(ingress={}, admin_gui={"image": IMAGE, "tag": TAG}))
    assert plan.admin_gui_image == f"{IMAGE}:{TAG}"
    assert prepare_admin_gui(plan, engine) is None
    env = by_name(plan)["ingress"].env
    folder = Path(env["Ingress__AdminGuiDirectory"])
    assert sorted(p.name for p in folder.iterdir()) == ["en", "fr"]
    assert engine.run("ps", "--all", "--filter", f"ancestor={IMAGE}:{TAG}", "--quiet").strip() == ""
    (folder / "en" / "index.html").write_text("kept")
    assert prepare_admin_gui(plan, engine) is None  # there already: not taken again
    assert (folder / "en" / "index.html").read_text() == "kept"

    settings = IngressSettings.from_env(env)
    with TestClient(build_app(settings)) as client:
        page = client.get("/admin/fr/sessions")  # a deep link: the locale's page
    assert page.status_code == 200 and "lang=fr" in page.text


def test_an_image_no_engine_can_give_leaves_the_console(engine: Engine, short: Path) -> None:
    plan = plan_of(short, parameters(ingress={}, admin_gui={"image": IMAGE, "tag": "absent"}))
    warning = prepare_admin_gui(plan, engine)
    assert warning is not None and warning.startswith(f"admin_gui: no build taken from {IMAGE}:absent")
    settings = IngressSettings.from_env(by_name(plan)["ingress"].env)
    with TestClient(build_app(settings)) as client:
        answer = client.get("/admin/", follow_redirects=False)
    assert answer.status_code == 302 and answer.headers["location"] == "/console/"
