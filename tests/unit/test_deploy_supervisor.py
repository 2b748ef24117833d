"""The supervisor of the local target, driven through its plan file and signals, with stand-in processes.

Each test starts `python -m armonik_deploy.supervisor <generated>` on a hand-written plan whose processes are
small Python scripts (no control plane), and checks what a user relies on: every process started with its
environment, a process that dies is restarted (with a growing delay and a log line), SIGHUP applies a new plan
touching only what changed, SIGTERM stops everything (process groups included, SIGKILL after the grace
period).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from armonik_deploy import procs
from armonik_deploy.plan import Plan, ProcessSpec
from armonik_deploy.supervisor import Layout, write_json_atomic

STAND_IN = """
import json, os, signal, sys, time
folder, name = sys.argv[1], sys.argv[2]
mode = os.environ.get("MODE", "")
if mode == "ignore-term":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
else:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
record = {"pid": os.getpid(), "env": dict(os.environ)}
path = os.path.join(folder, f"{name}-{os.getpid()}.json")
with open(path + ".tmp", "w") as handle:
    json.dump(record, handle)
os.replace(path + ".tmp", path)
if mode == "crash":
    print("crashing on purpose", flush=True)
    sys.exit(3)
if mode == "grandchild":
    import subprocess
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    with open(os.path.join(folder, "grandchild.tmp"), "w") as handle:
        handle.write(str(child.pid))
    os.replace(os.path.join(folder, "grandchild.tmp"), os.path.join(folder, f"{name}-grandchild.pid"))
while True:
    time.sleep(0.1)
"""


@pytest.fixture
def folder() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="aksup-", dir="/tmp"))
    (path / "records").mkdir()
    (path / "stand_in.py").write_text(STAND_IN)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def spec(folder: Path, name: str, mode: str = "", grace: float = 2.0, **env: str) -> ProcessSpec:
    return ProcessSpec(
        name=name,
        role="control-plane" if name == "control-plane" else "worker",
        args=[sys.executable, str(folder / "stand_in.py"), str(folder / "records"), name],
        env={"MODE": mode, **env},
        cwd=str(folder),
        grace=grace,
    )


def make_plan(folder: Path, processes: list[ProcessSpec], plan_id: str) -> Plan:
    return Plan(
        plan_id=plan_id,
        generated=str(folder / "generated"),
        parameters_file=str(folder / "p.tfvars"),
        endpoint="127.0.0.1:1",
        data_directory=str(folder / "generated" / "data"),
        partitions=[],
        jobs=[],
        processes=processes,
        restart_delay=0.1,
        max_restart_delay=0.4,
        health_timeout=1.0,
    )


class Running:
    def __init__(self, folder: Path, plan: Plan) -> None:
        self.layout = Layout(folder / "generated")
        self.write(plan)
        self.log = open(folder / "supervisor.out", "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "armonik_deploy.supervisor", str(self.layout.generated)],
            stdout=self.log,
            stderr=self.log,
            start_new_session=True,
        )
        self.wait(lambda s: s.get("plan_id") == plan.plan_id)

    def write(self, plan: Plan) -> None:
        write_json_atomic(self.layout.plan, json.loads(plan.to_json()))

    def state(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self.layout.state.read_text()))
        except (OSError, ValueError):
            return {}

    def processes(self) -> dict[str, dict[str, Any]]:
        return {p["name"]: p for p in self.state().get("processes", [])}

    def wait(self, condition: Callable[[dict[str, Any]], bool], timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.state()
            if state and condition(state):
                return state
            assert self.process.poll() is None or condition(state), self.output()
            time.sleep(0.05)
        raise AssertionError(f"condition not met in {timeout}s; state: {self.state()}\n{self.output()}")

    def wait_running(self, names: list[str]) -> dict[str, dict[str, Any]]:
        def ok(state: dict[str, Any]) -> bool:
            running = {p["name"] for p in state.get("processes", []) if p["status"] == "running"}
            return set(names) <= running

        self.wait(ok)
        return self.processes()

    def apply(self, plan: Plan) -> None:
        self.write(plan)
        self.process.send_signal(signal.SIGHUP)
        self.wait(lambda s: s.get("plan_id") == plan.plan_id)

    def stop(self, timeout: float = 15.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout)
        self.log.close()
        return code

    def output(self) -> str:
        path = self.layout.logs / "supervisor.log"
        own = Path(self.log.name).read_text(errors="replace") if Path(self.log.name).exists() else ""
        return own + (path.read_text(errors="replace") if path.exists() else "")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        for entry in self.state().get("processes", []):
            if entry.get("pid") and procs.same_process(entry["pid"], entry.get("identity")):
                procs.signal_group(entry["pid"], signal.SIGKILL)


@pytest.fixture
def run(folder: Path) -> Iterator[Callable[[Plan], Running]]:
    started: list[Running] = []

    def start(plan: Plan) -> Running:
        running = Running(folder, plan)
        started.append(running)
        return running

    yield start
    for running in started:
        running.kill()


def records(folder: Path, name: str) -> list[dict[str, Any]]:
    found = [json.loads(p.read_text()) for p in sorted((folder / "records").glob(f"{name}-*.json"))]
    return sorted(found, key=lambda r: os.stat(folder / "records" / f"{name}-{r['pid']}.json").st_mtime)


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met")


def test_starts_every_process_with_its_environment_and_sigterm_stops_them_all(
    folder: Path, run: Callable[[Plan], Running]
) -> None:
    plan = make_plan(
        folder,
        [
            spec(folder, "control-plane", Section__Key="cp"),
            spec(folder, "w-grandchild", mode="grandchild"),
            spec(folder, "w-stubborn", mode="ignore-term", grace=0.5),
        ],
        "one",
    )
    sup = run(plan)
    processes = sup.wait_running(["control-plane", "w-grandchild", "w-stubborn"])
    wait_for(lambda: len(records(folder, "control-plane")) == 1)
    # the stubborn one ignores SIGTERM only once it has written its record: stopping it earlier would not show
    # the grace period running out
    wait_for(lambda: len(records(folder, "w-stubborn")) == 1)
    assert records(folder, "control-plane")[0]["env"]["Section__Key"] == "cp"
    assert records(folder, "control-plane")[0]["pid"] == processes["control-plane"]["pid"]
    grandchild_pid = folder / "records" / "w-grandchild-grandchild.pid"
    wait_for(grandchild_pid.exists)
    grandchild = int(grandchild_pid.read_text())
    pids = [p["pid"] for p in processes.values()] + [grandchild]
    assert all(procs.alive(pid) for pid in pids)

    started = time.monotonic()
    assert sup.stop() == 0
    assert time.monotonic() - started < 5
    assert not any(procs.alive(pid) for pid in pids)
    log = sup.output()
    assert "w-stubborn: still running after 0.5s, SIGKILL" in log
    assert "every process stopped, exiting" in log
    assert sup.state()["running"] is False
    assert (sup.layout.logs / "control-plane.log").exists()


def test_a_process_that_dies_is_restarted_with_a_growing_delay_and_a_log_line(
    folder: Path, run: Callable[[Plan], Running]
) -> None:
    sup = run(make_plan(folder, [spec(folder, "steady"), spec(folder, "crashy", mode="crash")], "one"))
    first = sup.wait_running(["steady"])["steady"]["pid"]
    sup.wait(lambda s: any(p["name"] == "crashy" and p["restarts"] >= 4 for p in s["processes"]))
    crashy = sup.processes()["crashy"]
    assert crashy["last_exit"] == 3
    log = sup.output()
    assert "crashy: restart 1 in 0.1s" in log
    assert "crashy: restart 2 in 0.2s" in log
    assert "crashy: restart 4 in 0.4s" in log  # capped at max_restart_delay
    own_log = (sup.layout.logs / "crashy.log").read_text()
    assert "crashing on purpose" in own_log and "exited with code 3" in own_log

    os.kill(first, signal.SIGKILL)
    sup.wait(
        lambda s: any(
            p["name"] == "steady" and p["restarts"] == 1 and p["status"] == "running" for p in s["processes"]
        )
    )
    again = sup.processes()["steady"]
    assert again["pid"] != first and again["last_exit"] == -9
    assert f"steady: pid {first} killed by signal 9" in sup.output()
    assert sup.stop() == 0


def test_sighup_applies_a_new_plan_touching_only_what_changed(
    folder: Path, run: Callable[[Plan], Running]
) -> None:
    keep = spec(folder, "control-plane", Live="1")
    keep.live_env = ["Live"]
    sup = run(make_plan(folder, [keep, spec(folder, "change", V="1"), spec(folder, "drop")], "one"))
    before = sup.wait_running(["control-plane", "change", "drop"])
    wait_for(lambda: all(len(records(folder, name)) == 1 for name in ("control-plane", "change", "drop")))

    kept = spec(folder, "control-plane", Live="2")
    kept.live_env = ["Live"]
    sup.apply(make_plan(folder, [kept, spec(folder, "change", V="2"), spec(folder, "new")], "two"))
    after = sup.wait_running(["control-plane", "change", "new"])

    assert list(after) == ["control-plane", "change", "new"]
    assert after["control-plane"]["pid"] == before["control-plane"]["pid"]
    assert after["control-plane"]["restarts"] == 0
    assert after["change"]["pid"] != before["change"]["pid"]
    assert not procs.alive(before["change"]["pid"]) and not procs.alive(before["drop"]["pid"])
    wait_for(lambda: len(records(folder, "change")) == 2)
    assert [r["env"]["V"] for r in records(folder, "change")] == ["1", "2"]
    assert "plan two applied: 1 started, 1 restarted, 1 stopped" in sup.output()

    # a live key is used at the next start of the process
    os.kill(after["control-plane"]["pid"], signal.SIGKILL)
    wait_for(lambda: len(records(folder, "control-plane")) == 2)
    assert records(folder, "control-plane")[-1]["env"]["Live"] == "2"
    assert sup.stop() == 0


def test_a_command_that_cannot_start_waits_and_retries_without_stopping_the_rest(
    folder: Path, run: Callable[[Plan], Running]
) -> None:
    missing = spec(folder, "missing")
    missing.args = [str(folder / "no-such-program")]
    sup = run(make_plan(folder, [spec(folder, "fine"), missing], "one"))
    sup.wait_running(["fine"])
    sup.wait(lambda s: any(p["name"] == "missing" and p["restarts"] >= 2 for p in s["processes"]))
    entry = sup.processes()["missing"]
    assert entry["last_error"].startswith("cannot start") and entry["last_exit"] == 127
    assert sup.processes()["fine"]["status"] == "running"
    assert sup.stop() == 0


def test_a_second_supervisor_for_the_same_folder_refuses_to_run(
    folder: Path, run: Callable[[Plan], Running]
) -> None:
    sup = run(make_plan(folder, [spec(folder, "only")], "one"))
    sup.wait_running(["only"])
    second = subprocess.run(
        [sys.executable, "-m", "armonik_deploy.supervisor", str(sup.layout.generated)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert second.returncode == 3
    assert "another supervisor runs" in second.stderr
    assert sup.stop() == 0
