"""Bad input from a client gets a clear refusal, never INTERNAL/UNKNOWN, a traceback or an echo of itself.

Driven through a real control plane process with raw gRPC calls (what a broken client or an attacker sends)
and the official SDK: undecodable bytes on every method of every client service of the `armonik` package,
a corrupt chunk in the middle of an upload, overlong ids, pages above the maximum, the legacy WatchResults,
and the optional per-session data quota.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from armonik.client import ArmoniKResults, ArmoniKSessions
from armonik.protogen.client.results_service_pb2_grpc import ResultsStub
from armonik.protogen.client.sessions_service_pb2_grpc import SessionsStub
from armonik.protogen.client.tasks_service_pb2_grpc import TasksStub
from armonik.protogen.common import results_common_pb2, sessions_common_pb2, tasks_common_pb2

from tests.api_methods import ApiMethod, call_raw, client_methods
from tests.conftest import ControlPlaneProcess
from tests.support import options

#: Field 1, length-delimited, length 5, then 2 bytes: no decoder accepts it, whatever the message type.
CORRUPT = b"\x0a\x05ab"
METHODS = client_methods()


def _log_lines(plane: ControlPlaneProcess) -> list[dict[str, object]]:
    return [json.loads(line) for line in plane.logs().splitlines() if line.startswith("{")]


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlaneProcess]:
    process = ControlPlaneProcess(
        tmp_path_factory.mktemp("inputs") / "data",
        env={"Submitter__MaxPageSize": "50", "Submitter__MaxSessionDataBytes": "1000"},
    )
    process.start()
    yield process
    process.kill()


@pytest.fixture(scope="module")
def raw_channel(plane: ControlPlaneProcess) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(plane.endpoint) as channel:
        yield channel


def test_every_client_method_is_enumerated() -> None:
    names = {m.name for m in METHODS}
    assert {
        "Results.UploadResultData",
        "Events.GetEvents",
        "Tasks.SubmitTasks",
        "Results.WatchResults",
    } <= names
    assert len([m for m in METHODS if m.implemented]) >= 34


@pytest.mark.parametrize("method", METHODS, ids=str)
def test_undecodable_request_is_invalid_argument_with_one_warning(
    method: ApiMethod, plane: ControlPlaneProcess, raw_channel: grpc.Channel
) -> None:
    before = len(_log_lines(plane))
    code, details = call_raw(raw_channel, method, [CORRUPT])
    if not method.implemented:
        assert code == grpc.StatusCode.UNIMPLEMENTED, (code, details)
        expected_warnings = 0
    else:
        assert code == grpc.StatusCode.INVALID_ARGUMENT, (code, details)
        assert "is not a valid" in details and "message" in details, details
        expected_warnings = 1
    lines = _log_lines(plane)[before:]
    warnings = [line for line in lines if line["@l"] == "WARNING" and line.get("method") == method.name]
    assert len(warnings) == expected_warnings, lines
    assert not [line for line in lines if line["@l"] in ("ERROR", "CRITICAL") or "@x" in line], lines


def test_corrupt_chunk_in_an_upload_is_invalid_argument(
    plane: ControlPlaneProcess, raw_channel: grpc.Channel
) -> None:
    session_id = ArmoniKSessions(raw_channel).create_session(options(), partition_ids=["default"])
    result = ArmoniKResults(raw_channel).create_results_metadata(["out"], session_id)["out"]
    first = results_common_pb2.UploadResultDataRequest(
        id=results_common_pb2.UploadResultDataRequest.ResultIdentifier(
            session_id=session_id, result_id=result.result_id
        )
    ).SerializeToString()
    chunk = results_common_pb2.UploadResultDataRequest(data_chunk=b"data").SerializeToString()
    upload = next(m for m in METHODS if m.name == "Results.UploadResultData")
    before = len(_log_lines(plane))
    code, details = call_raw(raw_channel, upload, [first, chunk, CORRUPT, chunk])
    assert code == grpc.StatusCode.INVALID_ARGUMENT, (code, details)
    lines = _log_lines(plane)[before:]
    assert [line["@l"] for line in lines if line["@l"] not in ("INFO", "DEBUG")] == ["WARNING"], lines
    # Nothing was stored: the result can still receive its data.
    ArmoniKResults(raw_channel).upload_result_data(result.result_id, session_id, b"good")
    assert ArmoniKResults(raw_channel).download_result_data(result.result_id, session_id) == b"good"


def test_long_ids_are_refused_and_quoted_short(plane: ControlPlaneProcess, raw_channel: grpc.Channel) -> None:
    long_id = "s" * 20_000
    calls = [
        lambda: SessionsStub(raw_channel).GetSession(
            sessions_common_pb2.GetSessionRequest(session_id=long_id)
        ),
        lambda: TasksStub(raw_channel).CancelTasks(
            tasks_common_pb2.CancelTasksRequest(task_ids=["t", long_id])
        ),
        lambda: TasksStub(raw_channel).SubmitTasks(
            tasks_common_pb2.SubmitTasksRequest(
                session_id="x",
                task_creations=[
                    tasks_common_pb2.SubmitTasksRequest.TaskCreation(
                        payload_id="p", data_dependencies=[long_id]
                    )
                ],
            )
        ),
        lambda: ResultsStub(raw_channel).GetResult(results_common_pb2.GetResultRequest(result_id="r" * 257)),
    ]
    for call in calls:
        with pytest.raises(grpc.RpcError) as refused:
            call()
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, refused.value.details()
        details = refused.value.details() or ""
        assert "at most 256 characters" in details and len(details) < 300, details
    # An id at the bound is an ordinary unknown id.
    with pytest.raises(grpc.RpcError) as missing:
        SessionsStub(raw_channel).GetSession(sessions_common_pb2.GetSessionRequest(session_id="s" * 256))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert len(missing.value.details() or "") < 300
    assert not re.search("s{1000}", plane.logs()), "an id was logged whole"


def test_page_size_above_the_maximum_is_refused(raw_channel: grpc.Channel) -> None:
    stub = SessionsStub(raw_channel)
    ok = stub.ListSessions(sessions_common_pb2.ListSessionsRequest(page_size=50))
    assert ok.page_size == 50
    for request in (
        sessions_common_pb2.ListSessionsRequest(page_size=51),
        sessions_common_pb2.ListSessionsRequest(page_size=-1),
        sessions_common_pb2.ListSessionsRequest(page=-3, page_size=10),
    ):
        with pytest.raises(grpc.RpcError) as refused:
            stub.ListSessions(request)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as above:
        TasksStub(raw_channel).ListTasks(tasks_common_pb2.ListTasksRequest(page_size=1000))
    assert "maximum of 50" in (above.value.details() or "")


def test_watch_results_is_unimplemented_quietly(
    plane: ControlPlaneProcess, raw_channel: grpc.Channel
) -> None:
    before = len(_log_lines(plane))
    replies = ResultsStub(raw_channel).WatchResults(iter([results_common_pb2.WatchResultRequest()]))
    with pytest.raises(grpc.RpcError) as refused:
        list(replies)
    assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "WatchResults" in (refused.value.details() or "")
    assert [line for line in _log_lines(plane)[before:] if line["@l"] != "DEBUG"] == []


def test_session_data_quota(raw_channel: grpc.Channel) -> None:
    sessions, results = ArmoniKSessions(raw_channel), ArmoniKResults(raw_channel)
    session_id = sessions.create_session(options(), partition_ids=["default"])
    results.create_results({"a": b"x" * 600}, session_id)
    with pytest.raises(grpc.RpcError) as refused:
        results.create_results({"b": b"x" * 600}, session_id)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "at most 1000 bytes" in (refused.value.details() or "")
    out = results.create_results_metadata(["c"], session_id)["c"]
    with pytest.raises(grpc.RpcError) as upload:
        results.upload_result_data(out.result_id, session_id, b"y" * 500)
    assert upload.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    results.upload_result_data(out.result_id, session_id, b"y" * 400)  # within what is left
    # Another session has its own quota.
    other = sessions.create_session(options(), partition_ids=["default"])
    results.create_results({"a": b"x" * 900}, other)


def test_no_traceback_in_the_logs(plane: ControlPlaneProcess) -> None:
    assert "Traceback" not in plane.logs()
    assert Path(plane.log_path or "").exists()
