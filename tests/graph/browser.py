"""The browser side of the console tests: Debian's chromium driven by selenium through its chromedriver
(headless, a profile of the test's own), where screenshots go, and a patient wait (the machine is shared)."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from tests.support import unavailable

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
WAIT = 60.0


def browser_or_skip() -> None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not shutil.which(p)]
    if missing:
        unavailable(
            f"{', '.join(missing)} not installed",
            f"{', '.join(missing)} missing: .ci/run installs chromium and chromium-driver",
        )


def chromium(profile: Path, home: Path | None = None) -> Iterator[object]:
    """A headless chromium session, quit afterwards; `home`: the HOME it runs with (where its NSS certificate
    store is, `.pki/nssdb`)."""
    browser_or_skip()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    env = {**os.environ, "HOME": str(home)} if home is not None else None
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER, env=env), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def artifacts(tmp_path: Path, name: str) -> Path:
    """`$TEST_ARTIFACTS/<name>/` (the test's temporary folder when unset)."""
    folder = Path(os.environ.get("TEST_ARTIFACTS") or tmp_path) / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def until(check: Callable[[], object], what: str, wait: float = WAIT) -> None:
    deadline = time.monotonic() + wait
    while not check():
        assert time.monotonic() < deadline, f"not within {wait:g}s: {what}"
        time.sleep(0.25)
