"""A browser (Debian's chromium, driven by selenium through chromedriver) loads the ingress's console (`/admin/`
without an Admin GUI build goes there); the sessions the test created with the official SDK must appear in the
page. A screenshot is kept with the test's files.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from armonik.client import ArmoniKSessions

from tests.graph.browser import chromium
from tests.ingress_support import IngressProcess
from tests.support import options

try:
    from tests.conftest import ControlPlaneProcess
except ModuleNotFoundError:
    from conftest import ControlPlaneProcess  # type: ignore[no-redef]


@pytest.fixture
def ingress(control_plane: ControlPlaneProcess, tmp_path: Path) -> Iterator[IngressProcess]:
    process = IngressProcess(control_plane.endpoint, tmp_path / "ingress.log")
    process.start()
    yield process
    process.stop()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    yield from chromium(tmp_path / "chromium")


def test_console_lists_the_sessions(
    browser: object, ingress: IngressProcess, channel: grpc.Channel, tmp_path: Path
) -> None:
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.support.ui import WebDriverWait

    assert isinstance(browser, WebDriver)
    sessions = ArmoniKSessions(channel)
    created = [sessions.create_session(options(), partition_ids=["default"]) for _ in range(2)]
    sessions.cancel_session(created[1])

    browser.get(ingress.url + "/admin/")  # no Admin GUI build: the console
    script = (
        "return [...document.querySelectorAll('#table tr.row')].map(n => [n.dataset.id, n.dataset.status]);"
    )
    WebDriverWait(browser, 60).until(lambda driver: len(driver.execute_script(script)) >= 2)
    listed = dict(browser.execute_script(script))
    browser.save_screenshot(str(tmp_path / "console.png"))
    assert browser.current_url == ingress.url + "/console/"
    assert set(listed) == set(created)
    assert listed == {created[0]: "RUNNING", created[1]: "CANCELLED"}
    assert (tmp_path / "console.png").stat().st_size > 0
