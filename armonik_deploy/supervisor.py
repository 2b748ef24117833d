"""The supervisor of a local deployment: starts every process of the plan and keeps it running.

    python -m armonik_deploy.supervisor <generated folder>

It reads `<generated>/deploy/plan.json`, runs the plan's jobs (the init job), then starts every process in
its own session (so that a terminal's Ctrl-C does not reach it, and its whole process group can be signalled),
with its output appended to `<generated>/logs/<name>.log`. Then:

- a process that exits (whatever its status) is restarted after a delay that doubles at each quick failure
  (`restart_delay` up to `max_restart_delay`; back to `restart_delay` once it ran 10 s), with a line in the
  supervisor's log and in the process's log;
- SIGHUP re-reads the plan and applies it: processes that left the plan are stopped, processes whose command,
  working directory or environment changed are restarted, new ones are started, and the others are left alone
  (environment keys the plan marks "live" are updated without a restart);
- every few seconds, a log file past `log_max_bytes` is rotated (`armonik_deploy.logrotate`);
- SIGTERM or SIGINT stops every process (the compute plane and the metrics exporter first, then the control
  plane): SIGTERM to its process group, SIGKILL after its grace period; then the supervisor exits.

The supervisor's state (pids, restarts, start times, applied plan) is kept in `<generated>/deploy/state.json`
for `armonik-deploy status` and `destroy`; an exclusive lock on `<generated>/deploy/supervisor.lock` keeps a
single supervisor per generated folder.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from armonik_deploy import logrotate, procs
from armonik_deploy.memory import MemoryFolderError, prepare_memory_root
from armonik_deploy.paths import Below
from armonik_deploy.plan import PARTITIONS_PREFIX, JobSpec, Plan, ProcessSpec

TICK = 0.1
#: How often the log files' sizes are looked at (armonik_deploy.logrotate).
ROTATION_PERIOD = 5.0
STABLE_AFTER = 10.0


@dataclass(frozen=True, slots=True)
class Layout:
    generated: Path

    deploy = Below("generated", "deploy")
    plan = deploy / "plan.json"
    state = deploy / "state.json"
    lock = deploy / "supervisor.lock"
    cli_lock = deploy / "cli.lock"
    logs = Below("generated", "logs")

    def log_of(self, name: str) -> Path:
        return self.logs / f"{name}.log"


def now_text() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"


def write_json_atomic(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def child_environment(spec_env: dict[str, str]) -> dict[str, str]:
    """The supervisor's environment, without inherited partition lists, overlaid with the spec's."""
    prefix = PARTITIONS_PREFIX.lower()
    inherited = {k: v for k, v in os.environ.items() if not k.lower().startswith(prefix)}
    return {**inherited, **spec_env}


@dataclass(slots=True, eq=False)
class Child:
    spec: ProcessSpec
    popen: subprocess.Popen[bytes] | None = None
    identity: str | None = None
    started_wall: float | None = None
    started_mono: float = 0.0
    restarts: int = 0
    failures: int = 0
    next_start: float | None = None
    last_exit: int | None = None
    last_error: str | None = None
    stopping: bool = False

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen is not None else None

    def status(self) -> str:
        if self.popen is not None:
            return "stopping" if self.stopping else "running"
        return "waiting" if self.next_start is not None else "stopped"

    def to_state(self, layout: Layout) -> dict[str, Any]:
        return {
            "name": self.spec.name,
            "role": self.spec.role,
            "partition": self.spec.partition,
            "replica": self.spec.replica,
            "pid": self.pid,
            "identity": self.identity,
            "status": self.status(),
            "restarts": self.restarts,
            "started_at": self.started_wall,
            "last_exit": self.last_exit,
            "last_error": self.last_error,
            "log": str(layout.log_of(self.spec.name)),
        }


@dataclass
class Supervisor:
    layout: Layout
    out: TextIO = field(default_factory=lambda: sys.stdout)
    plan: Plan | None = None
    children: dict[str, Child] = field(default_factory=dict)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    stop_requested: bool = False
    reload_requested: bool = False
    plan_error: str | None = None
    #: The plan whose processes all run (or wait for a restart); `plan` is set when its apply begins.
    applied_plan_id: str | None = None
    started_wall: float = field(default_factory=time.time)
    next_rotation: float = 0.0

    # -- logging and state -------------------------------------------------------------------------------
    def log(self, message: str) -> None:
        self.out.write(f"{now_text()} supervisor: {message}\n")
        self.out.flush()

    def note(self, name: str, message: str) -> None:
        """A line in a process's own log, so that its log tells why it stopped and started."""
        try:
            self.layout.logs.mkdir(parents=True, exist_ok=True)
            with open(self.layout.log_of(name), "a") as handle:
                handle.write(f"--- {now_text()} supervisor: {message}\n")
        except OSError:
            pass

    def write_state(self, running: bool = True) -> None:
        write_json_atomic(
            self.layout.state,
            {
                "running": running,
                "supervisor_pid": os.getpid(),
                "supervisor_identity": procs.identity(os.getpid()),
                "started_at": self.started_wall,
                "plan_id": self.applied_plan_id,
                "applying": self.plan.plan_id
                if self.plan and self.plan.plan_id != self.applied_plan_id
                else None,
                "plan_error": self.plan_error,
                "endpoint": self.plan.endpoint if self.plan else None,
                "processes": [c.to_state(self.layout) for c in self.children.values()],
                "jobs": list(self.jobs.values()),
            },
        )

    # -- signals -----------------------------------------------------------------------------------------
    def install_signals(self) -> None:
        def on_stop(signum: int, frame: FrameType | None) -> None:
            self.stop_requested = True

        def on_reload(signum: int, frame: FrameType | None) -> None:
            self.reload_requested = True

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGHUP, on_reload)

    # -- one process -------------------------------------------------------------------------------------
    def start(self, child: Child) -> None:
        spec = child.spec
        child.next_start = None
        child.stopping = False
        try:
            if self.plan is not None and self.plan.memory_root is not None:
                # made again, private, should it have gone (a process's folders may be in it)
                prepare_memory_root(Path(self.plan.memory_root))
            for folder in spec.folders:
                Path(folder).mkdir(parents=True, exist_ok=True)
            self.layout.logs.mkdir(parents=True, exist_ok=True)
            attempt = f" (restart {child.restarts})" if child.restarts else ""
            self.note(spec.name, f"starting {spec.name}{attempt}: {' '.join(spec.args)}")
            child.popen = self._spawn(spec)
        except (OSError, MemoryFolderError) as exc:
            child.popen = None
            child.last_error = f"cannot start: {exc}"
            child.last_exit = 127
            self.log(f"{spec.name}: cannot start {spec.args[0]!r}: {exc}")
            self.note(spec.name, f"cannot start: {exc}")
            self.schedule_restart(child, time.monotonic())
            return
        child.identity = procs.identity(child.popen.pid)
        child.started_wall = time.time()
        child.started_mono = time.monotonic()
        child.last_error = None
        self.log(f"{spec.name}: started, pid {child.popen.pid}")

    def _spawn(self, spec: ProcessSpec | JobSpec) -> subprocess.Popen[bytes]:
        """Start a service or a job the same way: its output appended to its log, no stdin, and a session of its
        own, so that stopping it signals its whole process group and not the supervisor's."""
        with open(self.layout.log_of(spec.name), "ab") as log:
            return subprocess.Popen(
                spec.args,
                env=child_environment(spec.env),
                cwd=spec.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )

    def schedule_restart(self, child: Child, now: float) -> None:
        if now - child.started_mono >= STABLE_AFTER:
            child.failures = 0
        child.failures += 1
        assert self.plan is not None
        delay = min(self.plan.restart_delay * 2 ** (child.failures - 1), self.plan.max_restart_delay)
        child.next_start = now + delay
        child.restarts += 1
        self.log(f"{child.spec.name}: restart {child.restarts} in {delay:g}s")

    def reap(self, child: Child, now: float) -> bool:
        """True when the child exited (it is then scheduled for a restart)."""
        if child.popen is None or child.popen.poll() is None:
            return False
        code = child.popen.returncode
        pid = child.popen.pid
        procs.signal_group(pid, signal.SIGKILL)  # whatever it left behind in its group
        child.popen = None
        child.last_exit = code
        ran = now - child.started_mono
        how = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
        self.log(f"{child.spec.name}: pid {pid} {how} after {ran:.1f}s")
        self.note(child.spec.name, f"pid {pid} {how} after {ran:.1f}s; restarting")
        self.schedule_restart(child, now)
        return True

    def stop_children(self, children: list[Child], reason: str) -> None:
        """SIGTERM to each process group, SIGKILL after each one's grace period, all in parallel."""
        running = [c for c in children if c.popen is not None]
        for child in children:
            child.next_start = None
        if not running:
            return
        now = time.monotonic()
        deadlines = {}
        for child in running:
            assert child.popen is not None
            child.stopping = True
            self.log(f"{child.spec.name}: stopping pid {child.popen.pid} ({reason})")
            self.note(child.spec.name, f"stopping ({reason})")
            procs.signal_group(child.popen.pid, signal.SIGTERM)
            deadlines[child.spec.name] = now + child.spec.grace
        self.write_state()
        pending = list(running)
        while pending:
            time.sleep(0.05)
            now = time.monotonic()
            for child in list(pending):
                assert child.popen is not None
                if child.popen.poll() is not None:
                    procs.signal_group(child.popen.pid, signal.SIGKILL)
                    code = child.popen.returncode
                    self.log(f"{child.spec.name}: pid {child.popen.pid} stopped (status {code})")
                    child.last_exit = code
                    child.popen = None
                    child.stopping = False
                    pending.remove(child)
                elif now >= deadlines[child.spec.name]:
                    self.log(f"{child.spec.name}: still running after {child.spec.grace:g}s, SIGKILL")
                    procs.signal_group(child.popen.pid, signal.SIGKILL)
                    deadlines[child.spec.name] = now + 30.0

    def stop_in_waves(self, children: list[Child], reason: str) -> None:
        """The compute plane and the metrics exporter first, then the control plane, which they talk to."""
        self.stop_children([c for c in children if c.spec.role != "control-plane"], reason)
        self.stop_children([c for c in children if c.spec.role == "control-plane"], reason)

    # -- jobs --------------------------------------------------------------------------------------------
    def run_job(self, job: JobSpec) -> bool:
        record: dict[str, Any] = {"name": job.name, "status": "running", "attempts": 0, "exit_code": None}
        self.jobs[job.name] = record
        delay = self.plan.restart_delay if self.plan else 1.0
        for attempt in range(1, job.attempts + 1):
            if self.stop_requested:
                break
            record["attempts"] = attempt
            self.write_state()
            code = self._run_once(job)
            record["exit_code"] = code
            if code == 0:
                record["status"] = "succeeded"
                self.log(f"job {job.name}: succeeded")
                self.write_state()
                return True
            self.log(f"job {job.name}: attempt {attempt} failed (status {code})")
            self._sleep(min(delay * 2 ** (attempt - 1), 10.0))
        record["status"] = "failed"
        self.log(
            f"job {job.name}: failed after {record['attempts']} attempts, see {self.layout.log_of(job.name)}"
        )
        self.write_state()
        return False

    def _run_once(self, job: JobSpec) -> int | None:
        self.layout.logs.mkdir(parents=True, exist_ok=True)
        self.note(job.name, f"running job {job.name}: {' '.join(job.args)}")
        try:
            popen = self._spawn(job)
        except OSError as exc:
            self.note(job.name, f"cannot start: {exc}")
            return 127
        deadline = time.monotonic() + job.timeout
        while popen.poll() is None:
            if self.stop_requested or time.monotonic() > deadline:
                procs.signal_group(popen.pid, signal.SIGKILL)
                popen.wait()
                return None
            time.sleep(0.05)
        return popen.returncode

    def _sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end and not self.stop_requested:
            time.sleep(min(TICK, max(0.0, end - time.monotonic())))

    # -- plans -------------------------------------------------------------------------------------------
    def load_plan(self) -> Plan:
        return Plan.from_json(self.layout.plan.read_text())

    def apply(self, plan: Plan) -> None:
        """Bring the running processes to `plan`, touching only what changed."""
        previous = self.plan
        self.plan = plan
        self.plan_error = None
        self.log(f"applying plan {plan.plan_id} ({len(plan.processes)} processes)")
        for job in plan.jobs:
            self.run_job(job)
            if self.stop_requested:
                return
        wanted = {spec.name: spec for spec in plan.processes}
        removed = [c for name, c in self.children.items() if name not in wanted]
        changed = [
            c
            for name, c in self.children.items()
            if name in wanted and c.spec.fingerprint() != wanted[name].fingerprint()
        ]
        changed_names = {c.spec.name for c in changed}
        self.stop_in_waves(removed, "not in the plan any more")
        for gone in removed:
            del self.children[gone.spec.name]
        self.stop_in_waves(changed, "its command or environment changed")
        if self.stop_requested:
            return
        started: list[str] = []
        for name, spec in wanted.items():
            existing = self.children.get(name)
            if existing is None:
                new = Child(spec)
                self.children[name] = new
                self.start(new)
                started.append(name)
            else:
                existing.spec = spec  # new live settings, used at its next start
                if name in changed_names:
                    existing.restarts += 1
                    self.start(existing)
        # keep the plan's order (control plane first) for status tables
        self.children = {name: self.children[name] for name in wanted}
        if previous is not None:
            self.log(
                f"plan {plan.plan_id} applied: {len(started)} started, {len(changed)} restarted, "
                f"{len(removed)} stopped"
            )
        self.applied_plan_id = plan.plan_id
        self.write_state()

    # -- main loop ---------------------------------------------------------------------------------------
    def tick(self) -> None:
        now = time.monotonic()
        dirty = False
        for child in self.children.values():
            if self.reap(child, now):
                dirty = True
            elif child.popen is None and child.next_start is not None and now >= child.next_start:
                self.start(child)
                dirty = True
        if dirty:
            self.write_state()
        if self.plan is not None and now >= self.next_rotation:
            self.next_rotation = now + ROTATION_PERIOD
            for name in logrotate.rotate_folder(
                self.layout.logs, self.plan.log_max_bytes, self.plan.log_files_kept
            ):
                self.log(f"{name} rotated (over {self.plan.log_max_bytes} bytes)")

    def run(self) -> int:
        self.install_signals()
        self.log(f"supervisor pid {os.getpid()} for {self.layout.generated}")
        try:
            self.apply(self.load_plan())
            while not self.stop_requested:
                if self.reload_requested:
                    self.reload_requested = False
                    try:
                        plan = self.load_plan()
                    except (OSError, ValueError, TypeError, KeyError) as exc:
                        self.plan_error = f"cannot read {self.layout.plan}: {exc}"
                        self.log(self.plan_error)
                        self.write_state()
                    else:
                        self.apply(plan)
                self.tick()
                time.sleep(TICK)
        except Exception:
            self.log("unexpected error, stopping everything:\n" + traceback.format_exc())
            self.stop_in_waves(list(self.children.values()), "the supervisor failed")
            self.write_state(running=False)
            return 1
        self.log("stop requested")
        self.stop_in_waves(list(self.children.values()), "the deployment is being stopped")
        self.children.clear()
        self.write_state(running=False)
        self.log("every process stopped, exiting")
        return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m armonik_deploy.supervisor <generated folder>", file=sys.stderr)
        return 2
    layout = Layout(Path(args[0]).resolve())
    with procs.file_lock(layout.lock, blocking=False) as lock:
        if lock is None:
            print(f"another supervisor runs for {layout.generated}", file=sys.stderr)
            return 3
        lock.seek(0)
        lock.truncate()
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        return Supervisor(layout).run()


if __name__ == "__main__":
    sys.exit(main())
