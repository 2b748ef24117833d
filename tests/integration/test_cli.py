"""The official ArmoniK CLI (`armonik`, PyPI armonik-cli 0.4.1) driving a real control plane process.

Every test runs the installed `armonik` console script as a subprocess, as a user would, and asserts on the
values it prints (`-o json`, parsed), not only on its exit code. One control plane serves the whole module; each
test works in sessions of its own, so the tests are independent of one another and of their order.

Quirks of CLI 0.4.1 that shape these tests (client-side bugs, not server behaviour):
- Any command printing a `Result` cannot use `-o json`: `Result.opaque_id` is `bytes` and `json.dumps` fails with
  "Object of type bytes is not JSON serializable". `result create|get|list` and `result download-data --std-out`
  are therefore read with `-o yaml` (PyYAML prints bytes as `!!binary`, which `yaml.safe_load` turns back into
  bytes).
- `--sort-direction` is compared as `sort_direction.capitalize() == "ASC"`, which is never true: every `list`
  command asks the server for a DESCENDING sort.
- `task create --options K=V` is dropped unless `--max-retries`, `--priority` and `--max-duration` are all given,
  and when they are, the CLI crashes before any RPC (it passes a tuple of pairs to a protobuf map:
  "not enough values to unpack"). So per-task options are tested with the triple and no `--options`.
- `result download-data` prints only the last downloaded result, whatever the number of `--id`.
- `result list` returns only its last page (not hit here: fewer results than one page).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import yaml

import armonik_core

try:
    from tests.conftest import ControlPlaneProcess
except ModuleNotFoundError:  # run as `pytest` rather than `python -m pytest`: only tests/ is on sys.path
    from conftest import ControlPlaneProcess  # type: ignore[no-redef]

#: The console script installed next to the interpreter running the tests (the project venv).
ARMONIK = Path(sys.executable).with_name("armonik")
CLI_TIMEOUT = 60.0
#: Exit status of the CLI when the server refused a request (`armonik_cli_core.decorators.error_handler`):
#: 3 (`InternalCliError`) for INVALID_ARGUMENT, 4 (`InternalArmoniKError`) for every other gRPC status.
INVALID_ARGUMENT_EXIT = 3
GRPC_ERROR_EXIT = 4
_BOX = re.compile(r"[│╭╮╰╯─]+")


def _cli_path() -> str | None:
    if ARMONIK.exists():
        return str(ARMONIK)
    return shutil.which("armonik")


@dataclass(frozen=True)
class CliRun:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def describe(self) -> str:
        def trim(text: str) -> str:
            return "\n".join(line.rstrip() for line in text.splitlines() if line.strip())

        command = " ".join(self.args)
        return f"armonik {command} -> exit {self.returncode}\nstdout:\n{trim(self.stdout)}\nstderr:\n{trim(self.stderr)}"

    @property
    def message(self) -> str:
        """What the CLI told the user (the rich error panel), box drawing removed and whitespace collapsed."""
        return " ".join(_BOX.sub(" ", self.stderr + "\n" + self.stdout).split())


class ArmoniKCli:
    """Runs `armonik` against one endpoint, with its own HOME (the CLI writes ~/.config/armonik_cli)."""

    def __init__(self, executable: str, endpoint: str, home: Path) -> None:
        self.executable = executable
        self.endpoint = endpoint
        env = {k: v for k, v in os.environ.items() if not k.startswith("AK_") and k != "AKCONFIG"}
        env.update(
            HOME=str(home),
            AK_ENDPOINT=endpoint,
            # rich wraps printed text at the terminal width, which would break long JSON lines and error panels.
            COLUMNS="1000",
            NO_COLOR="1",
            TERM="dumb",
        )
        self.env = env

    def run(self, *args: str, output: str = "json") -> CliRun:
        argv = (*args, "-o", output)
        done = subprocess.run(
            [self.executable, *argv],
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT,
        )
        return CliRun(argv, done.returncode, done.stdout, done.stderr)

    def ok(self, *args: str, output: str = "json") -> Any:
        """Run a command that must succeed; return its parsed output (None when it printed nothing)."""
        run = self.run(*args, output=output)
        assert run.returncode == 0, run.describe()
        if not run.stdout.strip():
            return None
        try:
            return json.loads(run.stdout) if output == "json" else yaml.safe_load(run.stdout)
        except (json.JSONDecodeError, yaml.YAMLError) as exc:
            raise AssertionError(f"unparsable {output} output ({exc}): {run.describe()}") from exc

    def yaml(self, *args: str) -> Any:
        return self.ok(*args, output="yaml")

    def fails(self, code: str, *args: str) -> str:
        """Run a command the server must refuse with gRPC status `code`; return the message shown."""
        run = self.run(*args)
        expected = INVALID_ARGUMENT_EXIT if code == "INVALID_ARGUMENT" else GRPC_ERROR_EXIT
        assert run.returncode == expected, run.describe()
        assert f"(gRPC Code: {code})" in run.message, run.describe()
        return run.message


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlaneProcess]:
    process = ControlPlaneProcess(tmp_path_factory.mktemp("cli-plane") / "data")
    process.start()
    yield process
    process.kill()


@pytest.fixture(scope="module")
def cli(plane: ControlPlaneProcess, tmp_path_factory: pytest.TempPathFactory) -> ArmoniKCli:
    executable = _cli_path()
    assert executable is not None, "the armonik CLI (armonik-cli, a test dependency) is not installed"
    return ArmoniKCli(executable, plane.endpoint, tmp_path_factory.mktemp("cli-home"))


@pytest.fixture(autouse=True)
def no_internal_errors(plane: ControlPlaneProcess) -> Iterator[None]:
    """No request of a test may end in an unhandled exception (gRPC INTERNAL) on the server."""
    before = len(plane.logs().splitlines())
    yield
    new = plane.logs().splitlines()[before:]
    internal = [line for line in new if line.startswith("{") and "unhandled error" in line]
    assert not internal, "the control plane answered INTERNAL:\n" + "\n".join(internal)


def new_session(cli: ArmoniKCli, *options: str) -> dict[str, Any]:
    session = cli.ok("session", "create", *options)
    assert isinstance(session, dict) and session["Status"] == "Running", session
    return session


def one(listing: Any) -> dict[str, Any]:
    """The single session a per-id session command (pause, resume, cancel, ...) printed."""
    assert isinstance(listing, list) and len(listing) == 1, listing
    item = listing[0]
    assert isinstance(item, dict)
    return item


def by_name(results: Any) -> dict[str, dict[str, Any]]:
    assert isinstance(results, list), results
    return {r["Name"]: r for r in results}


def task_ids(tasks: Any) -> set[str]:
    """Ids of a task listing; the CLI prints nothing at all for an empty one."""
    return set() if tasks is None else {task["Id"] for task in tasks}


# -- cluster and partitions ------------------------------------------------------------------------------


def test_cluster_info_and_health(cli: ArmoniKCli) -> None:
    info = cli.ok("cluster", "info")
    assert info == {
        "Endpoint": cli.endpoint,
        "Versions": {"Core": armonik_core.__version__, "API": metadata.version("armonik")},
    }

    health = cli.ok("cluster", "health")
    assert set(health) == {"database", "object", "queue"}
    for name, service in health.items():
        assert service["status"] == 1, f"{name} is not HEALTH_STATUS_ENUM_HEALTHY: {service}"
        assert service["message"], name


def test_partition_list_and_get(cli: ArmoniKCli) -> None:
    listed = cli.ok("partition", "list")
    # The CLI always asks for a descending sort on the partition id (see the module docstring).
    assert [p["Id"] for p in listed] == ["pymonik", "default"]

    got = cli.ok("partition", "get", "default", "pymonik")
    assert [p["Id"] for p in got] == ["default", "pymonik"]
    for partition in got:
        assert partition == {
            "Id": partition["Id"],
            "ParentPartitionIds": [],
            "PodReserved": 1,
            "PodMax": 100,
            "PodConfiguration": {},
            "PreemptionPercentage": 0,
            "Priority": 1,
        }
    assert got == sorted(listed, key=lambda p: p["Id"])

    cli.fails("NOT_FOUND", "partition", "get", "no-such-partition")


# -- sessions ------------------------------------------------------------------------------------------------


def test_session_create_with_options_and_get(cli: ArmoniKCli) -> None:
    options = (
        "--partition default --partition pymonik --default-partition pymonik"
        " --max-retries 5 --priority 4 --max-duration 00:02:30.00"
        " --application-name cli-app --application-version 1.2.3 --application-namespace cli-ns"
        " --application-service cli-svc --engine-type Unified --option team=qa --option tier=gold"
    )
    created = new_session(cli, *options.split())
    assert uuid.UUID(created["SessionId"])
    assert created["ClientSubmission"] is True and created["WorkerSubmission"] is True
    assert created["PartitionIds"] == ["default", "pymonik"]
    assert created["Options"] == {
        "MaxDuration": "0:02:30",
        "Priority": 4,
        "MaxRetries": 5,
        "PartitionId": "pymonik",
        "ApplicationName": "cli-app",
        "ApplicationVersion": "1.2.3",
        "ApplicationNamespace": "cli-ns",
        "ApplicationService": "cli-svc",
        "EngineType": "Unified",
        "Options": {"team": "qa", "tier": "gold"},
    }
    assert created["CreatedAt"] is not None
    for stamp in ("CancelledAt", "ClosedAt", "PurgedAt", "DeletedAt"):
        assert created[stamp] is None, stamp

    assert cli.ok("session", "get", created["SessionId"]) == [created]


def test_session_create_refused(cli: ArmoniKCli) -> None:
    # This control plane requires the default partition to be one of the session's (upstream Core does not
    # check it); either way the CLI shows the server's reason.
    message = cli.fails(
        "INVALID_ARGUMENT", "session", "create", "--partition", "default", "--default-partition", "pymonik"
    )
    assert "pymonik" in message, message
    # An unknown partition is an invalid argument of CreateSession, as upstream Core answers it
    # (GrpcSessionsService.CreateSession maps PartitionNotFoundException to StatusCode.InvalidArgument).
    cli.fails(
        "INVALID_ARGUMENT", "session", "create", "--partition", "nowhere", "--default-partition", "nowhere"
    )


def test_session_lifecycle(cli: ArmoniKCli) -> None:
    session = new_session(cli)
    sid = session["SessionId"]
    # The CLI's own defaults.
    assert session["PartitionIds"] == ["default"]
    assert {
        k: session["Options"][k] for k in ("MaxDuration", "Priority", "MaxRetries", "PartitionId", "Options")
    } == {
        "MaxDuration": "0:01:00",
        "Priority": 1,
        "MaxRetries": 3,
        "PartitionId": "default",
        "Options": {},
    }

    paused = one(cli.ok("session", "pause", sid))
    assert (paused["SessionId"], paused["Status"]) == (sid, "Paused")

    resumed = one(cli.ok("session", "resume", sid))
    assert (resumed["SessionId"], resumed["Status"]) == (sid, "Running")

    message = cli.fails("FAILED_PRECONDITION", "session", "resume", sid)
    assert sid in message or "resume" in message.lower(), message

    closed = one(cli.ok("session", "close", "--confirm", sid))
    assert (closed["SessionId"], closed["Status"]) == (sid, "Closed")
    assert closed["ClosedAt"] is not None

    purged = one(cli.ok("session", "purge", "--confirm", sid))
    assert (purged["SessionId"], purged["Status"]) == (sid, "Purged")
    assert purged["PurgedAt"] is not None and purged["ClosedAt"] == closed["ClosedAt"]

    deleted = one(cli.ok("session", "delete", "--confirm", sid))
    assert (deleted["SessionId"], deleted["Status"]) == (sid, "Deleted")
    assert deleted["DeletedAt"] is not None


def test_session_cancel_get_and_not_found(cli: ArmoniKCli) -> None:
    sid = new_session(cli)["SessionId"]
    unknown = f"no-such-session-{uuid.uuid4().hex[:8]}"

    run = cli.run("session", "cancel", "--confirm", "--skip-not-found", sid, unknown)
    assert run.returncode == 0, run.describe()
    cancelled = one(json.loads(run.stdout))
    assert (cancelled["SessionId"], cancelled["Status"]) == (sid, "Cancelled")
    assert cancelled["CancelledAt"] is not None
    assert f"Couldn't find session with id={unknown}" in run.message

    cli.fails("NOT_FOUND", "session", "cancel", "--confirm", unknown)
    cli.fails("NOT_FOUND", "session", "get", unknown)


def test_session_list_with_filters(cli: ArmoniKCli) -> None:
    tag = f"cli-list-{uuid.uuid4().hex[:8]}"
    running, paused, cancelled = (new_session(cli, "--application-name", tag)["SessionId"] for _ in range(3))
    assert one(cli.ok("session", "pause", paused))["Status"] == "Paused"
    assert one(cli.ok("session", "cancel", "--confirm", cancelled))["Status"] == "Cancelled"

    ours = cli.ok("session", "list", "-f", f"options.application_name = {tag}")
    assert {s["SessionId"]: s["Status"] for s in ours} == {
        running: "Running",
        paused: "Paused",
        cancelled: "Cancelled",
    }

    exact = cli.ok("session", "list", "-f", f"status = running and options.application_name = {tag}")
    assert [s["SessionId"] for s in exact] == [running]

    # `status = running` alone: exactly the running sessions of the whole cluster.
    everything = cli.ok("session", "list")
    filtered = cli.ok("session", "list", "-f", "status = running")
    assert {s["SessionId"] for s in filtered} == {
        s["SessionId"] for s in everything if s["Status"] == "Running"
    }
    assert all(s["Status"] == "Running" for s in filtered)
    assert running in {s["SessionId"] for s in filtered}
    assert not {paused, cancelled} & {s["SessionId"] for s in filtered}
    # The CLI asks for a descending sort on the session id.
    assert [s["SessionId"] for s in everything] == sorted((s["SessionId"] for s in everything), reverse=True)


def test_session_stop_submission(cli: ArmoniKCli) -> None:
    sid = new_session(cli)["SessionId"]
    created = by_name(cli.yaml("result", "create", sid, "-r", "payload bytes p", "-r", "output"))

    stopped = one(cli.ok("session", "stop-submission", "--clients", "--confirm", sid))
    assert (stopped["Status"], stopped["ClientSubmission"], stopped["WorkerSubmission"]) == (
        "Running",
        False,
        True,
    )

    cli.fails(
        "FAILED_PRECONDITION",
        *("task", "create", "--session-id", sid, "--payload-id", created["payload"]["ResultId"]),
        *("--expected-outputs", created["output"]["ResultId"]),
    )

    # Stopping the workers too keeps the clients stopped: StopSubmission never reopens a door.
    both = one(cli.ok("session", "stop-submission", "--workers", "--confirm", sid))
    assert (both["Status"], both["ClientSubmission"], both["WorkerSubmission"]) == ("Running", False, False)


# -- results -------------------------------------------------------------------------------------------------


def test_results_create_upload_download_list_delete(cli: ArmoniKCli, tmp_path: Path) -> None:
    sid = new_session(cli)["SessionId"]
    small = tmp_path / "small.bin"
    small.write_bytes(b"file\x00data\xff")
    big = tmp_path / "big.bin"
    big_data = os.urandom(2_500_000)  # more than the 1 MiB chunk size: several chunks each way
    big.write_bytes(big_data)

    created = by_name(
        cli.yaml(
            *("result", "create", sid, "-r", "up_bytes", "-r", "up_file", "-r", "unused"),
            *("-r", "inline bytes hello-cli", "-r", f"fromfile file {small}"),
        )
    )
    assert set(created) == {"up_bytes", "up_file", "unused", "inline", "fromfile"}
    for name, result in created.items():
        assert result["SessionId"] == sid, name
        assert uuid.UUID(result["ResultId"]), name
    for name in ("up_bytes", "up_file", "unused"):
        assert (created[name]["Status"], created[name]["Size"]) == ("Created", 0), name
    assert (created["inline"]["Status"], created["inline"]["Size"]) == ("Completed", len(b"hello-cli"))
    assert (created["fromfile"]["Status"], created["fromfile"]["Size"]) == ("Completed", small.stat().st_size)
    rid = {name: r["ResultId"] for name, r in created.items()}

    assert cli.ok("result", "upload-data", sid, rid["up_bytes"], "--from-bytes", "uploaded text") is None
    assert cli.ok("result", "upload-data", sid, rid["up_file"], "--from-file", str(big)) is None
    uploaded = by_name(cli.yaml("result", "get", rid["up_bytes"], rid["up_file"]))
    assert (uploaded["up_bytes"]["Status"], uploaded["up_bytes"]["Size"]) == (
        "Completed",
        len(b"uploaded text"),
    )
    assert (uploaded["up_file"]["Status"], uploaded["up_file"]["Size"]) == ("Completed", len(big_data))

    assert cli.yaml("result", "download-data", sid, "--id", rid["inline"], "--std-out") == {
        "ResultId": rid["inline"],
        "Data": b"hello-cli",
    }
    assert cli.yaml("result", "download-data", sid, "--id", rid["up_bytes"], "--std-out") == {
        "ResultId": rid["up_bytes"],
        "Data": b"uploaded text",
    }
    out = tmp_path / "downloads"
    out.mkdir()
    printed = cli.ok(
        *("result", "download-data", sid, "--id", rid["fromfile"], "--id", rid["up_file"]),
        *("--path", str(out), "--suffix", ".bin"),
    )
    assert printed == {"ResultId": rid["up_file"], "Path": str(out / f"{rid['up_file']}.bin")}
    assert (out / f"{rid['up_file']}.bin").read_bytes() == big_data
    assert (out / f"{rid['fromfile']}.bin").read_bytes() == small.read_bytes()

    listed = by_name(cli.yaml("result", "list", "-f", f'session_id = "{sid}"'))
    assert {name: r["ResultId"] for name, r in listed.items()} == rid
    assert {name: r["Status"] for name, r in listed.items()} == {
        "up_bytes": "Completed",
        "up_file": "Completed",
        "inline": "Completed",
        "fromfile": "Completed",
        "unused": "Created",
    }

    assert cli.ok("result", "delete-data", "--confirm", rid["inline"], rid["up_bytes"]) is None
    after = by_name(cli.yaml("result", "get", rid["inline"], rid["up_bytes"], rid["up_file"]))
    assert {name: r["Status"] for name, r in after.items()} == {
        "inline": "Deleted",
        "up_bytes": "Deleted",
        "up_file": "Completed",
    }


# -- tasks ---------------------------------------------------------------------------------------------------


def test_tasks_create_list_get_cancel(cli: ArmoniKCli) -> None:
    sid = new_session(cli, "--option", "k=v", "--max-retries", "4")["SessionId"]
    created = by_name(
        cli.yaml(
            *("result", "create", sid, "-r", "payload bytes p", "-r", "dep"),
            *("-r", "out_ready", "-r", "out_wait", "-r", "out_opts"),
        )
    )
    rid = {name: r["ResultId"] for name, r in created.items()}
    base = ("task", "create", "--session-id", sid, "--payload-id", rid["payload"])

    # `--options` alone is dropped by the CLI (see the module docstring): the task inherits the session's.
    ready = cli.ok(*base, "--expected-outputs", rid["out_ready"], "--options", "a=b")
    assert uuid.UUID(ready["Id"])
    assert (ready["SessionId"], ready["PayloadId"]) == (sid, rid["payload"])
    assert (ready["ExpectedOutputIds"], ready["DataDependencies"]) == ([rid["out_ready"]], [])

    waiting = cli.ok(*base, "--expected-outputs", rid["out_wait"], "--data-dependencies", rid["dep"])
    assert (waiting["ExpectedOutputIds"], waiting["DataDependencies"]) == ([rid["out_wait"]], [rid["dep"]])

    with_options = cli.ok(
        *base,
        *("--expected-outputs", rid["out_opts"], "--max-retries", "2", "--priority", "3"),
        *("--max-duration", "00:00:10.00", "--partition-id", "default", "--application-name", "cli-task-app"),
    )
    task_id = {"ready": ready["Id"], "waiting": waiting["Id"], "opts": with_options["Id"]}

    pending = cli.ok("task", "list", "-f", f'session_id = "{sid}" and status = pending')
    assert task_ids(pending) == {task_id["waiting"]}
    submitted = cli.ok("task", "list", "-f", f'session_id = "{sid}" and status = submitted')
    assert task_ids(submitted) == {task_id["ready"], task_id["opts"]}

    got = {t["Id"]: t for t in cli.ok("task", "get", *task_id.values())}
    assert list(got) == list(task_id.values())
    for name, tid in task_id.items():
        task = got[tid]
        assert (task["SessionId"], task["PayloadId"], task["InitialTaskId"]) == (sid, rid["payload"], tid), (
            name
        )
        assert task["ParentTaskIds"] == [sid], name
        assert task["CreatedAt"] is not None, name
    assert (got[task_id["ready"]]["Status"], got[task_id["waiting"]]["Status"]) == ("Submitted", "Pending")
    assert got[task_id["opts"]]["Status"] == "Submitted"
    assert got[task_id["ready"]]["SubmittedAt"] is not None and got[task_id["waiting"]]["SubmittedAt"] is None
    assert got[task_id["waiting"]]["DataDependencies"] == [rid["dep"]]
    assert got[task_id["ready"]]["ExpectedOutputIds"] == [rid["out_ready"]]
    session_defaults = {
        "MaxDuration": "0:01:00",
        "Priority": 1,
        "MaxRetries": 4,
        "PartitionId": "default",
        "ApplicationName": "",
        "ApplicationVersion": "",
        "ApplicationNamespace": "",
        "ApplicationService": "",
        "EngineType": "",
        "Options": {"k": "v"},
    }
    assert got[task_id["ready"]]["Options"] == session_defaults
    # Per-task options override the session's; the options map is merged with the session's.
    assert got[task_id["opts"]]["Options"] == {
        **session_defaults,
        "MaxDuration": "0:00:10",
        "Priority": 3,
        "MaxRetries": 2,
        "ApplicationName": "cli-task-app",
    }

    # The dependency gets its data: the waiting task is submitted. Then cancel the ready one.
    assert cli.ok("result", "upload-data", sid, rid["dep"], "--from-bytes", "dependency") is None
    assert cli.ok("task", "cancel", task_id["ready"]) is None
    listed = {t["Id"]: t for t in cli.ok("task", "list", "-f", f'session_id = "{sid}"')}
    assert set(listed) == set(task_id.values())
    assert listed[task_id["ready"]]["Status"] in ("Cancelling", "Cancelled")
    assert listed[task_id["waiting"]]["Status"] == "Submitted"
    assert listed[task_id["waiting"]]["SubmittedAt"] is not None
    assert listed[task_id["opts"]]["Status"] == "Submitted"

    # Cancelling the session cancels the tasks it still holds.
    assert one(cli.ok("session", "cancel", "--confirm", sid))["Status"] == "Cancelled"
    final = cli.ok("task", "list", "-f", f'session_id = "{sid}"')
    assert {t["Id"] for t in final} == set(task_id.values())
    assert all(t["Status"] in ("Cancelling", "Cancelled") for t in final), [t["Status"] for t in final]
