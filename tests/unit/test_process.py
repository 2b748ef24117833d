"""The event loop a process runs on (`Runtime__EventLoop`)."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from armonik_core.config import ConfigurationError
from armonik_core.process import event_loop_choice, run_event_loop


def test_uvloop_is_the_default_where_installed() -> None:
    pytest.importorskip("uvloop")
    assert event_loop_choice({}) == "uvloop"
    assert event_loop_choice({"Runtime__EventLoop": " UVLoop "}) == "uvloop"


def test_the_standard_loop_can_be_chosen() -> None:
    assert event_loop_choice({"Runtime__EventLoop": "asyncio"}) == "asyncio"


def test_an_unknown_loop_names_the_variable_and_the_choices() -> None:
    with pytest.raises(
        ConfigurationError, match="Runtime__EventLoop must be one of uvloop, asyncio, not 'tokio'"
    ):
        event_loop_choice({"Runtime__EventLoop": "tokio"})


@pytest.mark.parametrize("choice", ["uvloop", "asyncio"])
def test_the_coroutine_runs_on_the_chosen_loop(choice: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if choice == "uvloop":
        pytest.importorskip("uvloop")
    monkeypatch.setenv("Runtime__EventLoop", choice)

    async def loop_module() -> str:
        return type(asyncio.get_running_loop()).__module__

    module = run_event_loop(loop_module(), "test")
    assert module.startswith("uvloop") == (choice == "uvloop")


def test_an_invalid_choice_exits_with_status_2_before_anything_runs() -> None:
    code = "from armonik_core.process import run_event_loop\nimport asyncio\nrun_event_loop(asyncio.sleep(0), 'prog')"
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={"Runtime__EventLoop": "threads", "PATH": ""},
        capture_output=True,
        text=True,
        cwd=".",
    )
    assert done.returncode == 2
    assert "prog: invalid configuration: Runtime__EventLoop must be one of" in done.stderr


def test_what_a_process_holds_once_started_is_out_of_the_collectors_sight() -> None:
    """A full collection walks only what the process made since it started serving (see `settle_heap`)."""
    script = """
import gc
from armonik_core.process import run_event_loop
held = [[] for _ in range(1000)]  # made before the loop: start-up state

async def main():
    tracked = {id(o) for o in gc.get_objects()}
    return gc.get_freeze_count(), any(id(item) in tracked for item in held)

frozen, seen = run_event_loop(main(), "test")
print(frozen, seen)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    frozen, seen = done.stdout.split()
    assert int(frozen) >= 1000 and seen == "False"
