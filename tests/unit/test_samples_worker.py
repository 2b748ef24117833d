"""The generic worker: dispatch on the `sample` option, the `testing` behaviours, endpoint settings, and the
official SDK's Worker service answering a stand-in agent over a Unix socket (in process, no compute plane)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent import futures
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from armonik.common import TaskDefinition, TaskOptions
from armonik.protogen.common import agent_common_pb2 as agent_pb
from armonik.protogen.common.objects_pb2 import Empty
from armonik.protogen.common.worker_common_pb2 import HealthCheckReply, ProcessRequest
from armonik.protogen.worker.agent_service_pb2_grpc import AgentServicer, add_AgentServicer_to_server
from armonik.protogen.worker.worker_service_pb2_grpc import WorkerStub
from armonik.worker import ArmoniKWorker

from armonik_samples import SAMPLE_OPTION, SAMPLES, common, subtasking, testing, worker
from armonik_samples.local import LocalCluster, LocalHandler, TaskFailed, default_options


def handler(payload: bytes = b"ping", task_id: str = "t-1", **options: str) -> LocalHandler:
    return LocalHandler(payload, task_id=task_id, expected_results=["out"], options=options)


# -- dispatch ------------------------------------------------------------------------------------------------
def test_dispatch_runs_the_sample_named_by_the_option() -> None:
    task = handler(b"World", sample="hello_world")
    assert worker.dispatch(task).success
    assert task.result() == b"Hello World!"


def test_every_sample_has_a_process_function() -> None:
    for sample in SAMPLES:
        assert callable(worker.processor_of(sample))


def test_unknown_sample() -> None:
    output = worker.dispatch(handler(sample="quantum"))
    assert "unknown sample 'quantum'" in output.error
    assert "hello_world" in output.error


def test_missing_sample_option() -> None:
    output = worker.dispatch(handler())
    assert f"no '{SAMPLE_OPTION}' task option" in output.error


def test_a_sample_exception_becomes_an_error_output() -> None:
    output = worker.dispatch(handler(b"not json", sample="linear_subtasking"))
    assert output.error.startswith("sample linear_subtasking failed: JSONDecodeError")


def test_a_deliberate_crash_goes_through() -> None:
    with pytest.raises(common.WorkerCrash):
        worker.dispatch(handler(sample="testing", action="crash"))


# -- testing behaviours --------------------------------------------------------------------------------------
def test_echo() -> None:
    task = handler(b"abc", sample="testing")
    assert testing.process(task).success
    assert task.sent == {"out": b"abc"}


def test_fail() -> None:
    task = handler(sample="testing", action="fail")
    assert "deliberate failure" in testing.process(task).error
    assert task.sent == {}


@pytest.mark.parametrize(
    ("task_id", "attempt"), [("abc", 0), ("abc###1", 1), ("a###b###12", 12), ("x###", 0)]
)
def test_attempt_from_task_id(task_id: str, attempt: int) -> None:
    assert common.attempt_of(task_id) == attempt


def test_crash_once_crashes_the_first_attempt_only() -> None:
    with pytest.raises(common.WorkerCrash):
        testing.process(handler(task_id="abc", action="crash_once"))
    retry = handler(b"again", task_id="abc###1", action="crash_once")
    assert testing.process(retry).success
    assert retry.result() == b"again"


def test_fail_once_fails_the_first_attempt_only() -> None:
    assert not testing.process(handler(task_id="abc", action="fail_once")).success
    assert testing.process(handler(task_id="abc###1", action="fail_once")).success


def test_exit_once_ends_the_process_on_the_first_attempt(monkeypatch: pytest.MonkeyPatch) -> None:
    codes: list[int] = []

    def fake_exit(code: int) -> None:
        codes.append(code)
        raise SystemExit(code)

    monkeypatch.setattr(testing.os, "_exit", fake_exit)
    with pytest.raises(SystemExit):
        testing.process(handler(task_id="abc", action="exit_once", exit_code="7"))
    assert codes == [7]
    assert testing.process(handler(task_id="abc###2", action="exit_once")).success


def test_sleep_then_succeed() -> None:
    started = time.perf_counter()
    task = handler(b"zz", action="sleep", sleep="0.05")
    assert testing.process(task).success
    assert time.perf_counter() - started >= 0.05
    assert task.result() == b"zz"


def test_sleep_applies_before_any_action() -> None:
    started = time.perf_counter()
    assert not testing.process(handler(action="fail", sleep="0.03")).success
    assert time.perf_counter() - started >= 0.03


def test_unknown_action() -> None:
    assert "unknown testing action 'dance'" in testing.process(handler(action="dance")).error


def test_delegate_hands_the_output_to_an_echo_subtask() -> None:
    task = handler(b"hand over", action="delegate", sample="testing")
    assert testing.process(task).success
    (sub,) = task.submitted
    assert sub.expected_output_ids == ["out"]
    assert sub.options.options["action"] == "echo"
    assert sub.options.options["sample"] == "testing"
    assert task.created_data(sub.payload_id) == b"hand over"


@pytest.mark.parametrize(
    ("action", "executions"), [("crash_once", 2), ("fail_once", 2), ("delegate", 2), ("echo", 1)]
)
def test_testing_graphs_retry_and_succeed(action: str, executions: int) -> None:
    cluster = LocalCluster(worker.dispatch, default_options({"sample": "testing", "action": action}))
    (output,) = cluster.create_results_metadata(["out"]).values()
    payload = cluster.create_results({"p": b"data"})["p"]
    cluster.submit([TaskDefinition(payload, expected_output_ids=[output])])
    cluster.run()
    assert cluster.result(output) == b"data"
    assert len(cluster.executions) == executions


def test_crash_exhausts_the_retries() -> None:
    cluster = LocalCluster(
        worker.dispatch, default_options({"sample": "testing", "action": "crash"}, max_retries=2)
    )
    (output,) = cluster.create_results_metadata(["out"]).values()
    payload = cluster.create_results({"p": b"data"})["p"]
    cluster.submit([TaskDefinition(payload, expected_output_ids=[output])])
    with pytest.raises(TaskFailed, match="deliberate crash"):
        cluster.run()
    assert [e.task_id.partition("###")[2] for e in cluster.executions] == ["", "1", "2"]
    assert all(e.crashed for e in cluster.executions)


# -- endpoints -----------------------------------------------------------------------------------------------
def test_default_endpoints_are_unix_sockets_in_cache() -> None:
    assert worker.channel_endpoints({}) == (
        "unix:///cache/armonik_worker.sock",
        "unix:///cache/armonik_agent.sock",
    )


def test_endpoints_from_settings_read_case_insensitively() -> None:
    listen, agent = worker.channel_endpoints(
        {
            "ComputePlane__WorkerChannel__Address": "/tmp/w.sock",
            "COMPUTEPLANE__AGENTCHANNEL__ADDRESS": "unix:///tmp/a.sock",
            "ComputePlane__WorkerChannel__SocketType": "UnixDomainSocket",
        }
    )
    assert (listen, agent) == ("unix:///tmp/w.sock", "unix:///tmp/a.sock")


def test_tcp_endpoints() -> None:
    listen, agent = worker.channel_endpoints(
        {
            "ComputePlane__WorkerChannel__SocketType": "Tcp",
            "ComputePlane__WorkerChannel__Address": ":10667",
            "ComputePlane__AgentChannel__SocketType": "tcp",
            "ComputePlane__AgentChannel__Address": "http://agent:10666",
        }
    )
    assert (listen, agent) == ("0.0.0.0:10667", "http://agent:10666")


def test_bad_socket_type() -> None:
    with pytest.raises(ValueError, match="SocketType"):
        worker.channel_endpoints({"ComputePlane__AgentChannel__SocketType": "pigeon"})


# -- the SDK's Worker service with a stand-in agent ------------------------------------------------------------
class StandInAgent(AgentServicer):
    """Records the calls a worker makes; results get ids `<name>-id`."""

    def __init__(self) -> None:
        self.notified: list[str] = []
        self.created: dict[str, bytes] = {}
        self.metadata: list[str] = []
        self.submitted: list[Any] = []

    def NotifyResultData(self, request: Any, context: Any) -> Any:  # noqa: N802
        self.notified.extend(i.result_id for i in request.ids)
        return agent_pb.NotifyResultDataResponse(result_ids=[i.result_id for i in request.ids])

    def CreateResultsMetaData(self, request: Any, context: Any) -> Any:  # noqa: N802
        self.metadata.extend(r.name for r in request.results)
        return agent_pb.CreateResultsMetaDataResponse(
            results=[
                agent_pb.ResultMetaData(session_id=request.session_id, name=r.name, result_id=f"{r.name}-id")
                for r in request.results
            ]
        )

    def CreateResults(self, request: Any, context: Any) -> Any:  # noqa: N802
        self.created.update({r.name: r.data for r in request.results})
        return agent_pb.CreateResultsResponse(
            results=[
                agent_pb.ResultMetaData(session_id=request.session_id, name=r.name, result_id=f"{r.name}-id")
                for r in request.results
            ]
        )

    def SubmitTasks(self, request: Any, context: Any) -> Any:  # noqa: N802
        self.submitted.extend(request.task_creations)
        return agent_pb.SubmitTasksResponse(
            task_infos=[
                agent_pb.SubmitTasksResponse.TaskInfo(
                    task_id=f"sub-{i}",
                    expected_output_ids=t.expected_output_keys,
                    data_dependencies=t.data_dependencies,
                    payload_id=t.payload_id,
                )
                for i, t in enumerate(request.task_creations)
            ]
        )


class Pair:
    def __init__(self, agent: StandInAgent, stub: WorkerStub, folder: Path) -> None:
        self.agent, self.stub, self.folder = agent, stub, folder

    def process(
        self, payload: bytes, *, deps: dict[str, bytes] | None = None, task_id: str = "task", **options: str
    ) -> Any:
        (self.folder / "payload-id").write_bytes(payload)
        for name, data in (deps or {}).items():
            (self.folder / name).write_bytes(data)
        task_options = TaskOptions(
            max_duration=timedelta(minutes=1), priority=1, max_retries=1, options=options
        ).to_message()
        request = ProcessRequest(
            communication_token="token",
            session_id="session",
            task_id=task_id,
            task_options=task_options,
            expected_output_keys=["out"],
            payload_id="payload-id",
            data_dependencies=list(deps or {}),
            data_folder=str(self.folder),
        )
        return self.stub.Process(request, timeout=10)


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    """The samples worker (the SDK's ArmoniKWorker around `worker.dispatch`) and a stand-in agent, each a gRPC
    server on a Unix socket, as the polling agent and its worker talk."""
    agent = StandInAgent()
    agent_server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    add_AgentServicer_to_server(agent, agent_server)
    agent_server.add_insecure_port(f"unix://{tmp_path}/agent.sock")
    agent_server.start()
    agent_channel = grpc.insecure_channel(f"unix://{tmp_path}/agent.sock")
    samples_worker = ArmoniKWorker(agent_channel, worker.dispatch)
    thread = threading.Thread(
        target=samples_worker.start, args=(f"unix://{tmp_path}/worker.sock",), daemon=True
    )
    thread.start()
    folder = tmp_path / "data"
    folder.mkdir()
    with grpc.insecure_channel(f"unix://{tmp_path}/worker.sock") as channel:
        grpc.channel_ready_future(channel).result(timeout=10)
        yield Pair(agent, WorkerStub(channel), folder)
    agent_channel.close()
    agent_server.stop(0)


def test_health_check(pair: Pair) -> None:
    assert pair.stub.HealthCheck(Empty(), timeout=5).status == HealthCheckReply.SERVING


def test_hello_world_through_grpc(pair: Pair) -> None:
    reply = pair.process(b"World", sample="hello_world")
    assert reply.output.WhichOneof("type") == "ok"
    assert pair.agent.notified == ["out"]
    assert (pair.folder / "out").read_bytes() == b"Hello World!"


def test_subtasking_through_grpc(pair: Pair) -> None:
    reply = pair.process(subtasking.encode_values(range(1, 30)), sample="subtasking", split="10")
    assert reply.output.WhichOneof("type") == "ok"
    assert pair.agent.metadata == ["left_result", "right_result"]
    assert set(pair.agent.created) == {"left_payload", "right_payload", "aggregation_payload"}
    left, right, aggregate = pair.agent.submitted
    assert list(aggregate.data_dependencies) == ["left_result-id", "right_result-id"]
    assert list(aggregate.expected_output_keys) == ["out"]


def test_aggregation_reads_its_dependencies_from_the_data_folder(pair: Pair) -> None:
    deps = {"d1": (5).to_bytes(8, "little"), "d2": (6).to_bytes(8, "little")}
    reply = pair.process(b"", deps=deps, sample="subtasking", split="10")
    assert reply.output.WhichOneof("type") == "ok"
    assert (pair.folder / "out").read_bytes() == (11).to_bytes(8, "little")


def test_error_output_through_grpc(pair: Pair) -> None:
    reply = pair.process(b"x", sample="testing", action="fail")
    assert reply.output.WhichOneof("type") == "error"
    assert "deliberate failure" in reply.output.error.details
    reply = pair.process(b"x", sample="nothing")
    assert "unknown sample 'nothing'" in reply.output.error.details


def test_crash_fails_the_process_call(pair: Pair) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        pair.process(b"x", sample="testing", action="crash_once", task_id="t")
    assert caught.value.code() != grpc.StatusCode.OK  # type: ignore[attr-defined]
    reply = pair.process(b"x", sample="testing", action="crash_once", task_id="t###1")
    assert reply.output.WhichOneof("type") == "ok"
