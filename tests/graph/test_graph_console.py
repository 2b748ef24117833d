"""The graph console in a real browser: Debian's chromium driven by selenium through its chromedriver.

The console is served by an ingress process (`/console/`) in front of the graph tests' deployment, as a local
deployment serves it; its standalone process (`python -m armonik_graph.console`) answers the same endpoints.
A session created by the test (hang -> middle -> last) appears in the sessions table; its picture has one node per task
and result and changes as the tasks finish; the blocking view names the hanging task. Screenshots go to
`$TEST_ARTIFACTS/graph-console/` (the test's temporary folder when unset).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from tests.e2e.conftest import ROOT, Deployment
from tests.graph.browser import artifacts, until
from tests.graph.sessions import SessionBuilder
from tests.support import free_port

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(params=["ingress", "standalone"])
def any_console(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue("console" if request.param == "ingress" else "standalone"))


@pytest.fixture
def standalone(graph_deployment: Deployment, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    log = (tmp_path / "console.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "armonik_graph.console",
            "--port",
            str(port),
            "--endpoint",
            graph_deployment.endpoint,
        ],
        cwd=ROOT,
        stdout=log,
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(url + "/", timeout=2) as answer:
                    assert answer.status == 200
                    break
            except OSError:
                assert process.poll() is None, (tmp_path / "console.log").read_text()
                assert time.monotonic() < deadline, "the console did not answer within 30 s"
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(15)
        log.close()


def _nodes(driver: object, css: str) -> dict[str, str]:
    """id -> status of the picture's nodes matching `css`, read in one script (the picture is redrawn when the
    graph changes, so elements found one call earlier may be gone)."""
    script = "return [...document.querySelectorAll(arguments[0])].map(n => [n.dataset.id, n.dataset.status]);"
    return dict(driver.execute_script(script, css))  # type: ignore[attr-defined]


def test_the_console_shows_the_live_graph_and_names_the_hanging_task(
    console: str, browser: object, channel: grpc.Channel, scratch: Path, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    driver = browser
    shots = artifacts(tmp_path, "graph-console")
    b = SessionBuilder(channel)
    release = scratch / "release"
    hang, hang_out = b.task("hang", {"do": "hang", "file": str(release)})
    middle, middle_out = b.task("middle", {"do": "ok"}, [hang_out])
    last, last_out = b.task("last", {"do": "ok"}, [middle_out])

    driver.get(console + "/")  # type: ignore[attr-defined]
    in_list = f"#table tr.row[data-id='{b.session_id}'] a"  # the sessions table, the console's first view
    until(lambda: driver.find_elements(By.CSS_SELECTOR, in_list), "the session in the list")  # type: ignore[attr-defined]
    driver.find_element(By.CSS_SELECTOR, in_list).click()  # type: ignore[attr-defined]

    # One node per task and per result (3 tasks, 3 payloads, 3 outputs); the hanging task runs.
    until(lambda: len(_nodes(driver, "#graph g.node")) == 9, "9 nodes in the picture")
    until(lambda: _nodes(driver, "#graph g.node.task").get(hang) == "PROCESSING", "the hanging task running")
    assert set(_nodes(driver, "#graph g.node.task")) == {hang, middle, last}
    driver.save_screenshot(str(shots / "1-hanging.png"))  # type: ignore[attr-defined]

    # Why is the last result not ready: the hanging task is named, running.
    box = driver.find_element(By.ID, "result-id")  # type: ignore[attr-defined]
    box.send_keys(last_out)
    driver.find_element(By.CSS_SELECTOR, "#why button").click()  # type: ignore[attr-defined]
    until(
        lambda: driver.find_element(By.ID, "blocking").get_attribute("data-blocking"), "the blocking report"
    )  # type: ignore[attr-defined]
    report = driver.find_element(By.ID, "blocking")  # type: ignore[attr-defined]
    assert set((report.get_attribute("data-blocking") or "").split()) == {hang, middle, last}
    rows = [r.text for r in report.find_elements(By.CSS_SELECTOR, "tr")]
    assert any(hang in row and "running" in row and "PROCESSING" in row for row in rows), rows
    driver.save_screenshot(str(shots / "2-why-not-ready.png"))  # type: ignore[attr-defined]

    # Released: the picture follows the tasks to completion.
    release.touch()
    until(lambda: set(_nodes(driver, "#graph g.node.task").values()) == {"COMPLETED"}, "every task completed")
    assert _nodes(driver, "#graph g.node.result").get(last_out) == "COMPLETED"
    # After the run, the critical path: the chain itself.
    critical = driver.find_element(By.ID, "critical")  # type: ignore[attr-defined]
    until(lambda: critical.get_attribute("data-steps") == f"{hang} {middle} {last}", "the critical path")
    activity = driver.find_element(By.ID, "activity")  # type: ignore[attr-defined]
    until(lambda: activity.get_attribute("data-ended") == "3", "3 tasks ended in the activity chart")
    driver.save_screenshot(str(shots / "3-completed.png"))  # type: ignore[attr-defined]
    assert (shots / "3-completed.png").stat().st_size > 0


def test_the_console_answers_unknown_ids_with_404(any_console: str) -> None:
    console = any_console
    for path in ("/api/sessions/no-such-session/summary", "/api/results/no-such-result/blocking"):
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(console + path, timeout=30)
        assert caught.value.code == 404
        assert "no-such" in json.loads(caught.value.read())["error"]
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(console + "/api/results/x/blocking?stuck_after=soon", timeout=30)
    assert caught.value.code == 400
