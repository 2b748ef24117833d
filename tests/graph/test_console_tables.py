"""The console's tables and actions in a real browser, through the ingress of a real local deployment.

Sessions created by the test with the official SDK (the graph tests' worker: one task succeeds, one fails, one
crashes once and is retried, one hangs) appear in the sessions table; the tasks table of a session filters by status; the task detail of the
failing task shows its error output; a result downloads with its bytes; the cancel button of the sessions
table cancels a session, as the SDK then sees. Screenshots go to `$TEST_ARTIFACTS/console/`.
"""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

import grpc
import pytest
from armonik.client import ArmoniKSessions, ArmoniKTasks
from armonik.common import SessionStatus, Task, TaskStatus

from tests.graph.browser import artifacts, until
from tests.graph.sessions import SessionBuilder

pytestmark = pytest.mark.timeout(400)


def _rows(driver: object) -> dict[str, str]:
    """id -> status of the table's rows, read in one script (the table is redrawn on each load)."""
    script = (
        "return [...document.querySelectorAll('#table tr.row')].map(r => [r.dataset.id, r.dataset.status]);"
    )
    return dict(driver.execute_script(script))  # type: ignore[attr-defined]


def _ended(channel: grpc.Channel, session_id: str, count: int, wait: float = 120.0) -> list[Task]:
    """The session's tasks once `count` of them have ended (completed or in error)."""
    tasks = ArmoniKTasks(channel)
    ended = {TaskStatus.COMPLETED, TaskStatus.ERROR}
    deadline = time.monotonic() + wait
    while True:
        _, listed = tasks.list_tasks(Task.session_id == session_id, page_size=100, detailed=True)
        if sum(t.status in ended for t in listed) >= count:
            return list(listed)
        assert time.monotonic() < deadline, f"{count} tasks not ended within {wait:g}s"
        time.sleep(0.25)


def test_tables_filters_detail_download_and_cancel(
    console: str, browser: object, channel: grpc.Channel, scratch: Path, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    driver = browser
    shots = artifacts(tmp_path, "console")
    b = SessionBuilder(channel)
    ok, ok_out = b.task("ok", {"do": "ok"})
    fail, _ = b.task("fail", {"do": "fail"})
    flaky, _ = b.task("flaky", {"do": "flaky", "file": str(scratch / "flaky-marker")})
    retry = next(t.id for t in _ended(channel, b.session_id, 3) if flaky in (t.retry_of_ids or []))
    hanging = SessionBuilder(channel)
    release = scratch / "release"
    hang, _ = hanging.task("hang", {"do": "hang", "file": str(release)})
    try:
        # The sessions table lists both sessions, running.
        driver.get(console + "/#/sessions")  # type: ignore[attr-defined]
        until(lambda: {b.session_id, hanging.session_id} <= set(_rows(driver)), "both sessions in the table")
        assert _rows(driver)[b.session_id] == "RUNNING"
        health = driver.find_element(By.ID, "health")  # type: ignore[attr-defined]
        until(lambda: health.text == "healthy", "the health badge (CheckHealth)")
        driver.save_screenshot(str(shots / "1-sessions.png"))  # type: ignore[attr-defined]

        # The tasks of the first session, filtered by status in the form.
        driver.get(console + f"/#/tasks?session={b.session_id}")  # type: ignore[attr-defined]
        until(lambda: set(_rows(driver)) == {ok, fail, flaky, retry}, "the session's four tasks")
        Select(driver.find_element(By.ID, "f-status")).select_by_value("ERROR")  # type: ignore[attr-defined]
        driver.find_element(By.CSS_SELECTOR, "#filters button").click()  # type: ignore[attr-defined]
        until(lambda: _rows(driver) == {fail: "ERROR"}, "only the failed task")
        driver.save_screenshot(str(shots / "2-tasks-in-error.png"))  # type: ignore[attr-defined]
        Select(driver.find_element(By.ID, "f-status")).select_by_value("COMPLETED")  # type: ignore[attr-defined]
        driver.find_element(By.CSS_SELECTOR, "#filters button").click()  # type: ignore[attr-defined]
        until(lambda: _rows(driver) == {ok: "COMPLETED", retry: "COMPLETED"}, "only the completed tasks")

        # The retry's detail links to the attempt it retries.
        driver.get(console + f"/#/task/{retry}")  # type: ignore[attr-defined]
        retried = f"#task-detail a[href='#/task/{flaky}']"
        until(lambda: driver.find_elements(By.CSS_SELECTOR, retried), "the link to the retried attempt")  # type: ignore[attr-defined]
        assert "retry_of_ids" in driver.find_element(By.ID, "task-detail").text  # type: ignore[attr-defined]

        # The failed task's detail shows its error output.
        driver.get(console + f"/#/task/{fail}")  # type: ignore[attr-defined]
        error = driver.find_element(By.ID, "task-error")  # type: ignore[attr-defined]
        until(lambda: error.text, "the error output")
        assert error.text == f"boom from {fail}"
        detail = driver.find_element(By.ID, "task-detail")  # type: ignore[attr-defined]
        until(lambda: detail.get_attribute("data-status") == "ERROR", "the task's status")
        assert "ended_at" in detail.text and "owner_pod_id" in detail.text
        driver.save_screenshot(str(shots / "3-task-detail.png"))  # type: ignore[attr-defined]

        # The completed task's output downloads with its bytes, from the results table's link.
        driver.get(console + f"/#/results?session={b.session_id}&id={ok_out}&exact=1")  # type: ignore[attr-defined]
        until(lambda: set(_rows(driver)) == {ok_out}, "the output in the results table")
        href = driver.find_element(By.CSS_SELECTOR, "#table tr.row a").get_attribute("href")  # type: ignore[attr-defined]
        with urllib.request.urlopen(href, timeout=60) as answer:
            assert answer.read() == b"ok"

        # The partitions table: the deployment's partition.
        driver.get(console + "/#/partitions")  # type: ignore[attr-defined]
        until(lambda: "default" in _rows(driver), "the default partition")

        # Cancel the hanging session from the sessions table.
        driver.get(console + f"/#/sessions?id={hanging.session_id}&exact=1")  # type: ignore[attr-defined]
        until(lambda: _rows(driver) == {hanging.session_id: "RUNNING"}, "the hanging session alone")
        driver.find_element(By.CSS_SELECTOR, "#table tr.row button[data-action='cancel']").click()  # type: ignore[attr-defined]
        until(
            lambda: _rows(driver) == {hanging.session_id: "CANCELLED"}, "the session cancelled in the table"
        )
        message = driver.find_element(By.ID, "action-message").text  # type: ignore[attr-defined]
        assert message.endswith("done"), message
        assert ArmoniKSessions(channel).get_session(hanging.session_id).status == SessionStatus.CANCELLED
        driver.save_screenshot(str(shots / "4-cancelled.png"))  # type: ignore[attr-defined]

        # An action the API refuses shows its error: resuming a cancelled session.
        driver.find_element(By.CSS_SELECTOR, "#table tr.row button[data-action='resume']").click()  # type: ignore[attr-defined]
        box = driver.find_element(By.ID, "action-message")  # type: ignore[attr-defined]
        until(
            lambda: "resume session" in box.text and box.get_attribute("class") == "error",
            "the API's refusal",
        )
        driver.save_screenshot(str(shots / "5-refused.png"))  # type: ignore[attr-defined]
        assert (shots / "5-refused.png").stat().st_size > 0
        assert hang
    finally:
        release.touch()
