"""A browser (Debian's chromium, driven by selenium through chromedriver) loads the ingress's console page,
which calls the control plane through gRPC-Web in text mode as the Admin GUI does; the sessions the test
created with the official SDK over gRPC must appear in the page. A screenshot is kept with the test's files.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from armonik.client import ArmoniKSessions

from tests.ingress_support import IngressProcess
from tests.support import options

try:
    from tests.conftest import ControlPlaneProcess
except ModuleNotFoundError:
    from conftest import ControlPlaneProcess  # type: ignore[no-redef]

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

pytestmark = pytest.mark.skipif(
    not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)),
    reason="needs Debian's chromium and chromium-driver (.ci/run installs them)",
)


@pytest.fixture
def ingress(control_plane: ControlPlaneProcess, tmp_path: Path) -> Iterator[IngressProcess]:
    process = IngressProcess(control_plane.endpoint, tmp_path / "ingress.log")
    process.start()
    yield process
    process.stop()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chrome = webdriver.ChromeOptions()
    chrome.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        chrome.add_argument(argument)
    chrome.add_argument(f"--user-data-dir={tmp_path / 'chromium'}")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=chrome)
    try:
        yield driver
    finally:
        driver.quit()


def test_console_lists_the_sessions_through_grpc_web(
    browser: object, ingress: IngressProcess, channel: grpc.Channel, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.support.ui import WebDriverWait

    assert isinstance(browser, WebDriver)
    sessions = ArmoniKSessions(channel)
    created = [sessions.create_session(options(), partition_ids=["default"]) for _ in range(2)]
    sessions.cancel_session(created[1])

    browser.get(ingress.url + "/console/")
    rows = WebDriverWait(browser, 30).until(
        lambda driver: len(found := driver.find_elements(By.CSS_SELECTOR, "tr.session")) >= 2 and found
    )
    listed = {
        row.find_elements(By.TAG_NAME, "td")[0].text: row.find_elements(By.TAG_NAME, "td")[1].text
        for row in rows
    }
    browser.save_screenshot(str(tmp_path / "console.png"))
    assert listed == {created[0]: "RUNNING", created[1]: "CANCELLED"}
    assert browser.find_element(By.ID, "total").text == "2"
    assert browser.find_element(By.ID, "api").text.count(".") == 2  # the API version, from ListVersions
    assert browser.find_element(By.ID, "error").text == ""
    assert (tmp_path / "console.png").stat().st_size > 0
