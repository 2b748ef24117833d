"""What the samples share: the worker-side view of a task, and the client-side connection, waiting and
reporting.

Clients print their results on stdout and their progress (rich) and diagnostics on stderr, so that stdout
stays readable by scripts (Bench's last line is JSON). A client exits 0 when the computation checked out,
1 when it did not (wrong result, aborted result, timeout, refused request), 2 on bad usage.
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Protocol

import grpc
import typer
from armonik.client import ArmoniKEvents, ArmoniKResults, ArmoniKSessions, ArmoniKTasks
from armonik.common import (
    Direction,
    EventTypes,
    Output,
    Result,
    ResultStatus,
    Task,
    TaskOptions,
    TaskStatus,
    create_channel,
)
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from armonik_samples import SAMPLE_OPTION

#: Progress bars and diagnostics; results go to stdout.
console = Console(stderr=True)

RETRY_SEPARATOR = "###"
#: Results per event subscription (each one carries an OR of result-id conditions).
WAIT_BATCH = 100
_TRANSIENT = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}


class SampleFailure(Exception):
    """The sample did not produce what it should: the client exits with status 1."""


class WorkerCrash(RuntimeError):
    """Raised on purpose by a task (test behaviours, upstream's `TaskRpcException`): the worker lets it
    through, so that the agent sees the worker fail rather than an error output. Any other exception of a
    sample becomes an error output."""


# -- worker side -------------------------------------------------------------------------------------------
class Handler(Protocol):
    """What a sample's `process` uses of `armonik.worker.TaskHandler` (the stand-in of the tests too)."""

    session_id: str
    task_id: str
    task_options: Any
    expected_results: list[str]
    data_dependencies: Mapping[str, bytes]

    @property
    def payload(self) -> bytes: ...

    def send_results(self, results_data: dict[str, bytes]) -> None: ...

    def submit_tasks(
        self, tasks: list[Any], default_task_options: Any = None, batch_size: int | None = 100
    ) -> list[Any]: ...

    def create_results_metadata(self, result_names: list[str], batch_size: int = 100) -> dict[str, Any]: ...

    def create_results(self, results_data: dict[str, bytes], batch_size: int = 1) -> dict[str, Any]: ...


def task_options_of(handler: Handler) -> dict[str, str]:
    """The free-form options of the task (session defaults merged with the task's own)."""
    options = getattr(handler.task_options, "options", None)
    return dict(options or {})


def deterministic_outcome(handler: Handler) -> Any:
    """Upstream's deterministic failures of Bench and HtcMock, triggered by the end of the task id: the task
    fails when its id ends with the `TaskError` option, the worker crashes when it ends with
    `TaskRpcException`; any other task succeeds."""
    options = task_options_of(handler)
    task_error = options.get("TaskError", "")
    if task_error and handler.task_id.endswith(task_error):
        return Output("Deterministic Error")
    rpc_exception = options.get("TaskRpcException", "")
    if rpc_exception and handler.task_id.endswith(rpc_exception):
        raise WorkerCrash("Deterministic Exception")
    return Output()


def option_int(handler: Handler, key: str, default: int) -> int:
    raw = task_options_of(handler).get(key)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"task option {key}={raw!r}: expected an integer") from None


def option_bool(handler: Handler, key: str, default: bool) -> bool:
    raw = task_options_of(handler).get(key)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"task option {key}={raw!r}: expected true or false")


def attempt_of(task_id: str) -> int:
    """Which attempt a task id is: 0 for the first, n for the retry `<initial id>###<n>`."""
    _, sep, suffix = task_id.rpartition(RETRY_SEPARATOR)
    return int(suffix) if sep and suffix.isdigit() else 0


def only_result(handler: Handler) -> str:
    if len(handler.expected_results) != 1:
        raise ValueError(f"expected exactly one expected result, got {len(handler.expected_results)}")
    return handler.expected_results[0]


# -- client side: options ------------------------------------------------------------------------------------
_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d+):(\d+):(\d+(?:\.\d+)?)$")


def parse_duration(raw: str) -> float:
    """Seconds from a .NET TimeSpan (`[d.]hh:mm:ss[.fff]`, as upstream's options are written), a number of
    seconds, or a number with a unit (`100ms`, `2s`, `1m`, `1h`)."""
    text = raw.strip()
    match = _TIMESPAN.match(text)
    if match:
        days, hours, minutes, seconds = match.groups()
        return int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    for unit in ("ms", "s", "m", "h"):
        if text.endswith(unit) and text[: -len(unit)].strip():
            return float(text[: -len(unit)]) * units[unit]
    return float(text)


def duration_option(raw: str) -> float:
    try:
        value = parse_duration(raw)
    except ValueError:
        raise typer.BadParameter(f"{raw!r} is not a duration (hh:mm:ss, seconds, or 100ms / 2s)") from None
    if value < 0:
        raise typer.BadParameter("a duration must not be negative")
    return value


def parse_key_values(pairs: Iterable[str]) -> dict[str, str]:
    """`key=value` command-line pairs as a dict."""
    found: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{pair!r}: expected key=value")
        found[key] = value
    return found


def session_options(
    sample: str,
    partition: str,
    options: Mapping[str, str] | None = None,
    *,
    max_duration: timedelta = timedelta(hours=1),
    max_retries: int = 2,
    priority: int = 1,
) -> TaskOptions:
    """Default task options of a sample's session: the worker reads `options[SAMPLE_OPTION]` to dispatch."""
    return TaskOptions(
        max_duration=max_duration,
        priority=priority,
        max_retries=max_retries,
        partition_id=partition or None,
        options={**(options or {}), SAMPLE_OPTION: sample},
    )


# -- client side: command-line options shared by every client ------------------------------------------------
EndpointOption = Annotated[
    str,
    typer.Option(
        "--endpoint",
        "-e",
        envvar="GrpcClient__Endpoint",
        help="Control plane: host:port, http://host:port, or https://host:port for TLS",
    ),
]
CaOption = Annotated[
    str | None, typer.Option("--ca", envvar="GrpcClient__CaCert", help="CA certificate for TLS (PEM)")
]
CertOption = Annotated[
    str | None, typer.Option("--cert", envvar="GrpcClient__CertPem", help="Client certificate for mutual TLS")
]
KeyOption = Annotated[
    str | None, typer.Option("--key", envvar="GrpcClient__KeyPem", help="Client key for mutual TLS")
]
PartitionOption = Annotated[str, typer.Option("--partition", "-p", help="Partition to run the tasks in")]
TimeoutOption = Annotated[
    float, typer.Option("--timeout", help="Seconds to wait for the results (0: no limit)", min=0)
]
DEFAULT_ENDPOINT = "localhost:5001"


# -- client side: connection ---------------------------------------------------------------------------------
@dataclass
class Client:
    """The official SDK's clients on one channel."""

    channel: grpc.Channel
    sessions: ArmoniKSessions
    results: ArmoniKResults
    tasks: ArmoniKTasks
    events: ArmoniKEvents

    @staticmethod
    def connect(
        endpoint: str, ca: str | None = None, cert: str | None = None, key: str | None = None
    ) -> Client:
        """`host:port` (plain), `http://host:port`, or `https://host:port` (TLS, with `ca`, and `cert`/`key`
        for mutual TLS)."""
        uri = endpoint if "://" in endpoint else f"http://{endpoint}"
        if (ca or cert) and uri.startswith("http://"):
            uri = "https://" + uri[len("http://") :]
        channel = create_channel(
            uri,
            certificate_authority=ca,
            client_certificate=cert,
            client_key=key,
            options=(("grpc.max_receive_message_length", 64 * 1024 * 1024),),
        )
        return Client(
            channel,
            ArmoniKSessions(channel),
            ArmoniKResults(channel),
            ArmoniKTasks(channel),
            ArmoniKEvents(channel),
        )

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def create_session(self, options: TaskOptions, partition: str) -> str:
        session_id: str = self.sessions.create_session(options, [partition] if partition else None)
        console.print(f"[dim]session[/] {session_id}")
        return session_id

    def download(self, session_id: str, result_id: str) -> bytes:
        data: bytes = self.results.download_result_data(result_id, session_id)
        return data


# -- client side: waiting -----------------------------------------------------------------------------------
class _ResultWaiter:
    """Follows result events of a session, a batch of result ids per subscription, until every one is
    COMPLETED, one is ABORTED, or a non-transient error occurs. Runs on its own thread."""

    def __init__(
        self, client: Client, session_id: str, result_ids: Sequence[str], on_done: Callable[[], None]
    ):
        self._client = client
        self._session_id = session_id
        self._ids = list(dict.fromkeys(result_ids))
        self._on_done = on_done
        self._current: set[str] = set()
        self.aborted: str | None = None
        self.error: BaseException | None = None
        self.last_transient: grpc.RpcError | None = None

    def _handle(self, _session: str, _kind: Any, event: Any) -> bool:
        result_id = event.result_id
        if result_id in self._current:
            if event.status == ResultStatus.COMPLETED:
                self._current.discard(result_id)
                self._on_done()
            elif event.status == ResultStatus.ABORTED:
                self.aborted = result_id
                return True
        return not self._current

    def run(self) -> None:
        try:
            for start in range(0, len(self._ids), WAIT_BATCH):
                batch = self._ids[start : start + WAIT_BATCH]
                self._current = set(batch)
                flt = None
                for result_id in batch:
                    condition = Result.result_id == result_id
                    flt = condition if flt is None else flt | condition
                subscriptions = 0
                while self._current and self.aborted is None:
                    if subscriptions:
                        time.sleep(0.2)  # the stream ended early (server restarting): do not spin
                    subscriptions += 1
                    try:
                        self._client.events.get_events(
                            self._session_id,
                            [EventTypes.RESULT_STATUS_UPDATE, EventTypes.NEW_RESULT],
                            [self._handle],
                            None,
                            flt,
                        )
                    except grpc.RpcError as exc:
                        if exc.code() not in _TRANSIENT:  # type: ignore[attr-defined]
                            raise
                        self.last_transient = exc
                if self.aborted is not None:
                    return
        except BaseException as exc:  # reported by the waiting thread
            self.error = exc


def wait_for_results(
    client: Client,
    session_id: str,
    result_ids: Sequence[str],
    *,
    timeout: float | None,
    label: str = "waiting for results",
    tasks_progress: Callable[[], tuple[int, int]] | None = None,
) -> None:
    """Wait until every result is COMPLETED, with a progress bar; SampleFailure when one is aborted, on a
    gRPC error, or after `timeout` seconds. `tasks_progress`, polled every second, adds a second bar
    (tasks done, tasks expected)."""
    if not result_ids:
        return
    wanted = len(set(result_ids))
    deadline = None if timeout is None or timeout <= 0 else time.monotonic() + timeout
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        bar = progress.add_task(label, total=wanted)
        tasks_bar = progress.add_task("tasks completed", total=None) if tasks_progress else None
        waiter = _ResultWaiter(client, session_id, result_ids, lambda: progress.advance(bar))
        thread = threading.Thread(target=waiter.run, name="result-waiter", daemon=True)
        thread.start()
        polled = 0.0
        while thread.is_alive():
            thread.join(0.1)
            now = time.monotonic()
            if tasks_progress is not None and tasks_bar is not None and now - polled >= 1.0:
                polled = now
                with contextlib.suppress(grpc.RpcError):
                    done, total = tasks_progress()
                    progress.update(tasks_bar, completed=done, total=max(total, done))
            if deadline is not None and now > deadline and thread.is_alive():
                done = int(progress.tasks[0].completed)
                last = waiter.last_transient
                hint = f" (last error: {describe_error(last)})" if last is not None else ""
                raise SampleFailure(
                    f"timed out after {timeout:g}s: {done} of {wanted} results completed{hint}"
                )
    if waiter.aborted is not None:
        raise SampleFailure(f"result {waiter.aborted} was aborted (a task producing it failed)")
    if waiter.error is not None:
        raise SampleFailure(f"waiting for results failed: {describe_error(waiter.error)}")


# -- client side: statistics -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Throughput:
    """Upstream's `ComputeThroughput`: tasks ended COMPLETED, ERROR or RETRIED, over the time from the first
    one's creation to the last one's end."""

    tasks: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.tasks / self.seconds if self.seconds > 0 else 0.0

    def timespan(self) -> str:
        return str(timedelta(seconds=self.seconds))


def _ended_filter(session_id: str) -> Any:
    flt = None
    for status in (TaskStatus.COMPLETED, TaskStatus.ERROR, TaskStatus.RETRIED):
        condition = (Task.session_id == session_id) & (Task.status == status)
        flt = condition if flt is None else flt | condition
    return flt


def _seconds(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def compute_throughput(client: Client, session_id: str) -> Throughput:
    flt = _ended_filter(session_id)
    total, first = client.tasks.list_tasks(
        flt, page=0, page_size=1, sort_field=Task.created_at, sort_direction=Direction.ASC, detailed=False
    )
    if total == 0 or not first:
        return Throughput(0, 0.0)
    _, last = client.tasks.list_tasks(
        flt, page=0, page_size=1, sort_field=Task.ended_at, sort_direction=Direction.DESC, detailed=False
    )
    start, end = _seconds(first[0].created_at), _seconds(last[0].ended_at) if last else None
    if start is None or end is None:
        return Throughput(int(total), 0.0)
    return Throughput(int(total), max(0.0, end - start))


def count_by_status(client: Client, session_id: str) -> dict[str, int]:
    counts = client.tasks.count_tasks_by_status(Task.session_id == session_id)
    return {TaskStatus(status).name: int(n) for status, n in counts.items() if n}


# -- client side: running ------------------------------------------------------------------------------------
def describe_error(exc: BaseException) -> str:
    if isinstance(exc, grpc.RpcError) and hasattr(exc, "code"):
        return f"{exc.code().name}: {exc.details()}"  # type: ignore[attr-defined]
    return f"{type(exc).__name__}: {exc}"


@dataclass(frozen=True)
class Endpoint:
    """Where and how to connect, from the command line."""

    address: str = DEFAULT_ENDPOINT
    ca: str | None = None
    cert: str | None = None
    key: str | None = None

    def connect(self) -> Client:
        return Client.connect(self.address, self.ca, self.cert, self.key)


def run_client(endpoint: Endpoint, body: Callable[[Client], None]) -> None:
    """Connect and run a client's body; a failure prints why and exits with status 1."""
    try:
        with endpoint.connect() as client:
            body(client)
    except SampleFailure as exc:
        console.print(f"[bold red]FAILED[/] {exc}")
        sys.exit(1)
    except grpc.RpcError as exc:
        console.print(f"[bold red]FAILED[/] request refused: {describe_error(exc)}")
        sys.exit(1)
    except OSError as exc:
        console.print(f"[bold red]FAILED[/] {exc}")
        sys.exit(1)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        sys.exit(130)


def check(condition: bool, message: str) -> None:
    if not condition:
        raise SampleFailure(message)


def print_json(record: Mapping[str, Any]) -> None:
    """One JSON line on stdout."""
    print(json.dumps(record, default=str), flush=True)


def ok(message: str) -> None:
    console.print(f"[bold green]OK[/] {message}")


def close_ok(client: Client, session_id: str, message: str) -> None:
    """A sample's end once its checks passed: its session closed (no more submissions), then `ok`."""
    client.sessions.close_session(session_id)
    ok(message)
