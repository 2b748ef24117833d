"""The clients' shared machinery without a server: options, waiting on result events, exit statuses, and
each sample's command line."""

from __future__ import annotations

import contextlib
import importlib
import threading
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, cast

import grpc
import pytest
import typer
from armonik.common import ResultStatus
from typer.testing import CliRunner

from armonik_samples import SAMPLE_OPTION, SAMPLES, common


# -- options ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "seconds"),
    [
        ("00:00:10", 10.0),
        ("00:00:00.100", 0.1),
        ("1.00:00:01", 86401.0),
        ("2.5", 2.5),
        ("100ms", 0.1),
        ("3s", 3.0),
        ("2m", 120.0),
        ("1h", 3600.0),
    ],
)
def test_durations(raw: str, seconds: float) -> None:
    assert common.parse_duration(raw) == pytest.approx(seconds)


def test_bad_duration() -> None:
    with pytest.raises(typer.BadParameter):
        common.duration_option("soon")
    with pytest.raises(typer.BadParameter):
        common.duration_option("-1")


def test_key_values() -> None:
    assert common.parse_key_values(["a=1", "b=x=y", "c="]) == {"a": "1", "b": "x=y", "c": ""}
    with pytest.raises(typer.BadParameter):
        common.parse_key_values(["novalue"])


def test_session_options_name_the_sample() -> None:
    options = common.session_options("bench", "gpu", {"k": "v", SAMPLE_OPTION: "overridden"}, max_retries=5)
    assert options.options == {"k": "v", SAMPLE_OPTION: "bench"}
    assert (options.partition_id, options.max_retries, options.priority) == ("gpu", 5, 1)
    assert common.session_options("bench", "").partition_id is None


def test_option_parsing_in_tasks() -> None:
    from armonik_samples.local import LocalHandler

    task = LocalHandler(options={"n": "3", "flag": "True", "bad": "x"})
    assert common.option_int(task, "n", 0) == 3
    assert common.option_int(task, "missing", 7) == 7
    assert common.option_bool(task, "flag", False) is True
    assert common.option_bool(task, "missing", True) is True
    with pytest.raises(ValueError, match="bad"):
        common.option_int(task, "bad", 0)
    with pytest.raises(ValueError, match="bad"):
        common.option_bool(task, "bad", False)


@pytest.mark.parametrize("endpoint", ["localhost:5001", "127.0.0.1:5001", "http://localhost:5001"])
def test_plain_endpoints_open_an_insecure_channel(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    real = common.create_channel

    def spy(uri: str, **kwargs: Any) -> Any:
        seen.append(uri)
        return real(uri, **kwargs)

    monkeypatch.setattr(common, "create_channel", spy)
    with common.Client.connect(endpoint) as client:
        assert client.sessions is not None
    assert seen == [endpoint if "://" in endpoint else f"http://{endpoint}"]


# -- waiting for results -------------------------------------------------------------------------------------
class FakeEvents:
    """`ArmoniKEvents.get_events`: replays a scripted list of (result id, status) to the handlers. With `gate`,
    waits for it first; with `block`, then waits for it, and ends the stream with an error once it is set."""

    def __init__(
        self,
        script: list[tuple[str, int]],
        block: threading.Event | None = None,
        errors: int = 0,
        gate: threading.Event | None = None,
    ) -> None:
        self.script = script
        self.block = block
        self.errors = errors
        self.gate = gate
        self.calls = 0

    def get_events(
        self, session_id: str, kinds: Any, handlers: list[Any], task_filter: Any, result_filter: Any
    ) -> None:
        self.calls += 1
        if self.errors:
            self.errors -= 1
            raise FakeRpcError(grpc.StatusCode.UNAVAILABLE)
        if self.gate is not None:
            self.gate.wait(10)
        for result_id, status in self.script:
            event = SimpleNamespace(result_id=result_id, status=status)
            if any(h(session_id, None, event) for h in handlers):
                return
        if self.block is not None:
            self.block.wait(10)
            raise FakeRpcError(grpc.StatusCode.CANCELLED)


class FakeRpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode) -> None:
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return "scripted"


def fake_client(events: FakeEvents) -> common.Client:
    return cast(common.Client, SimpleNamespace(events=events))


def test_wait_until_every_result_completes() -> None:
    events = FakeEvents(
        [("a", ResultStatus.CREATED), ("a", ResultStatus.COMPLETED), ("b", ResultStatus.COMPLETED)]
    )
    common.wait_for_results(fake_client(events), "s", ["a", "b"], timeout=5)


def test_wait_in_batches() -> None:
    ids = [f"r{i}" for i in range(250)]
    events = FakeEvents([(r, ResultStatus.COMPLETED) for r in ids])
    common.wait_for_results(fake_client(events), "s", ids, timeout=5)
    assert events.calls == 3  # 100 results per subscription


def test_an_aborted_result_fails_the_wait() -> None:
    events = FakeEvents([("a", ResultStatus.COMPLETED), ("b", ResultStatus.ABORTED)])
    with pytest.raises(common.SampleFailure, match="result b was aborted"):
        common.wait_for_results(fake_client(events), "s", ["a", "b"], timeout=5)


def test_the_wait_times_out() -> None:
    release = threading.Event()
    events = FakeEvents([("a", ResultStatus.COMPLETED)], block=release)
    try:
        with pytest.raises(common.SampleFailure, match="timed out after 0.3s: 1 of 2 results completed"):
            common.wait_for_results(fake_client(events), "s", ["a", "b"], timeout=0.3)
    finally:
        release.set()


def test_transient_errors_are_retried() -> None:
    events = FakeEvents([("a", ResultStatus.COMPLETED)], errors=2)
    common.wait_for_results(fake_client(events), "s", ["a"], timeout=10)
    assert events.calls == 3


def test_other_errors_fail_the_wait() -> None:
    class Refusing(FakeEvents):
        def get_events(self, *args: Any) -> None:
            raise FakeRpcError(grpc.StatusCode.NOT_FOUND)

    with pytest.raises(common.SampleFailure, match="NOT_FOUND"):
        common.wait_for_results(fake_client(Refusing([])), "s", ["a"], timeout=5)


def test_tasks_progress_is_polled() -> None:
    gate = threading.Event()
    polls: list[int] = []

    def progress() -> tuple[int, int]:
        polls.append(1)
        gate.set()  # the result completes once the progress has been polled
        return 1, 3

    events = FakeEvents([("a", ResultStatus.COMPLETED)], gate=gate)
    common.wait_for_results(fake_client(events), "s", ["a"], timeout=5, tasks_progress=progress)
    assert polls


# -- exit statuses -------------------------------------------------------------------------------------------
class Connected:
    def __init__(self) -> None:
        self.closed = False

    def connect(self) -> Any:
        outer = self

        class Ctx:
            def __enter__(self) -> Any:
                return object()

            def __exit__(self, *exc: object) -> None:
                outer.closed = True

        return Ctx()


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (common.SampleFailure("wrong"), 1),
        (FakeRpcError(grpc.StatusCode.INVALID_ARGUMENT), 1),
        (FileNotFoundError("ca.pem"), 1),
        (KeyboardInterrupt(), 130),
    ],
)
def test_failures_exit_non_zero(error: BaseException, status: int) -> None:
    endpoint = Connected()

    def body(client: Any) -> None:
        raise error

    with pytest.raises(SystemExit) as caught:
        common.run_client(cast(common.Endpoint, endpoint), body)
    assert caught.value.code == status
    assert endpoint.closed


def test_success_returns() -> None:
    common.run_client(cast(common.Endpoint, Connected()), lambda client: None)


# -- command lines -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sample", SAMPLES)
def test_every_sample_has_a_command_line(sample: str) -> None:
    module = importlib.import_module(f"armonik_samples.{sample}")
    app = typer.Typer()
    app.command()(module.command)
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0, result.output
    assert "--endpoint" in result.output
    assert callable(module.main)


def run_offline(
    monkeypatch: pytest.MonkeyPatch, command: Callable[..., Any], args: list[str], env: dict[str, str]
) -> None:
    """A sample's command run as its CLI runs it, with `env`, on an endpoint that connects to nothing."""
    monkeypatch.setattr(common.Endpoint, "connect", lambda self: contextlib.nullcontext(object()))
    app = typer.Typer()
    app.command()(command)
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 0, result.output


def test_bench_reads_upstream_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    from armonik_samples import bench

    seen: list[Any] = []
    monkeypatch.setattr(bench, "run", lambda client, options, timeout: seen.append(options))
    env = {
        "BenchOptions__NTasks": "42",
        "BenchOptions__TaskDurationMs": "7",
        "BenchOptions__PayloadSize": "3",
        "BenchOptions__ResultSize": "4",
        "BenchOptions__BatchSize": "5",
        "BenchOptions__Partition": "bench",
        "BenchOptions__PurgeData": "false",
        "BenchOptions__MaxDuration": "00:10:00",
    }
    run_offline(monkeypatch, bench.command, [], env)
    (options,) = seen
    assert (options.n_tasks, options.task_duration_ms, options.payload_size, options.result_size) == (
        42,
        7,
        3,
        4,
    )
    assert (options.batch_size, options.partition, options.purge_data, options.max_duration) == (
        5,
        "bench",
        False,
        600,
    )


def test_htcmock_reads_upstream_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    from armonik_samples import htcmock

    seen: list[Any] = []
    monkeypatch.setattr(
        htcmock,
        "run",
        lambda client, partition, config, options, purge, timeout: seen.append((partition, config, options)),
    )
    env = {
        "HtcMock__NTasks": "1000",
        "HtcMock__TotalCalculationTime": "00:00:10",
        "HtcMock__SubTasksLevels": "100",
        "HtcMock__EnableFastCompute": "true",
        "HtcMock__Partition": "htc",
    }
    run_offline(monkeypatch, htcmock.command, ["--option", "SessionName=perf"], env)
    ((partition, config, options),) = seen
    assert partition == "htc"
    assert (config.n_tasks, config.total_calculation_time, config.sub_tasks_levels) == (1000, 10.0, 100)
    assert options["FastCompute"] == "true" and options["SessionName"] == "perf"
