"""gRPC-Web through the ingress, against a real control plane, with a client written from the protocol.

Every RPC the Admin GUI calls is made in text mode (as the GUI does) and in binary mode; data is created with
the official SDK over gRPC and must be seen the same through gRPC-Web. Errors must come back as gRPC statuses
(trailers-only answers), a GetEvents stream must carry the session's events, and CORS preflights must be
answered for the allowed origin only.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from armonik.client import ArmoniKResults, ArmoniKSessions
from armonik.protogen.common import (
    applications_common_pb2,
    auth_common_pb2,
    events_common_pb2,
    health_checks_common_pb2,
    partitions_common_pb2,
    results_common_pb2,
    sessions_common_pb2,
    sessions_fields_pb2,
    sort_direction_pb2,
    tasks_common_pb2,
    versions_common_pb2,
)

from armonik_deploy.certificates import ServerIdentity, ensure_certificates
from tests.grpcweb_client import BINARY, TEXT, GrpcWebClient
from tests.ingress_support import IngressProcess, client_context, first_event
from tests.support import options

try:
    from tests.conftest import ControlPlaneProcess
except ModuleNotFoundError:
    from conftest import ControlPlaneProcess  # type: ignore[no-redef]

API = "/armonik.api.grpc.v1."
ORIGIN = "http://gui.example:4200"


@pytest.fixture
def ingress(control_plane: ControlPlaneProcess, tmp_path: Path) -> Iterator[IngressProcess]:
    process = IngressProcess(
        control_plane.endpoint, tmp_path / "ingress.log", env={"Ingress__CorsAllowedOrigins": ORIGIN}
    )
    process.start()
    yield process
    process.stop()
    assert "Traceback" not in process.logs(), process.logs()


@pytest.fixture(params=[TEXT, BINARY], ids=["text", "binary"])
def web(ingress: IngressProcess, request: pytest.FixtureRequest) -> Iterator[GrpcWebClient]:
    client = GrpcWebClient(ingress.url, request.param)
    yield client
    client.close()


def sorted_sessions() -> sessions_common_pb2.ListSessionsRequest.Sort:
    return sessions_common_pb2.ListSessionsRequest.Sort(
        field=sessions_fields_pb2.SessionField(
            session_raw_field=sessions_fields_pb2.SessionRawField(
                field=sessions_fields_pb2.SESSION_RAW_ENUM_FIELD_CREATED_AT
            )
        ),
        direction=sort_direction_pb2.SORT_DIRECTION_ASC,
    )


def test_every_rpc_of_the_admin_gui(web: GrpcWebClient, channel: grpc.Channel) -> None:
    sessions = ArmoniKSessions(channel)
    session_id = sessions.create_session(options(), partition_ids=["default"])
    results = ArmoniKResults(channel)
    created = results.create_results_metadata(["a", "b"], session_id)

    versions = web.call(API + "versions.Versions/ListVersions", versions_common_pb2.ListVersionsRequest())
    assert versions.single(versions_common_pb2.ListVersionsResponse).api

    user = web.call(API + "auth.Authentication/GetCurrentUser", auth_common_pb2.GetCurrentUserRequest())
    assert user.single(auth_common_pb2.GetCurrentUserResponse).user.username == "Anonymous"

    health = web.call(
        API + "health_checks.HealthChecksService/CheckHealth", health_checks_common_pb2.CheckHealthRequest()
    )
    assert health.single(health_checks_common_pb2.CheckHealthResponse).services

    listed = web.call(
        API + "sessions.Sessions/ListSessions",
        sessions_common_pb2.ListSessionsRequest(page=0, page_size=10, sort=sorted_sessions()),
    ).single(sessions_common_pb2.ListSessionsResponse)
    assert session_id in [s.session_id for s in listed.sessions] and listed.total >= 1

    got = web.call(
        API + "sessions.Sessions/GetSession", sessions_common_pb2.GetSessionRequest(session_id=session_id)
    )
    assert got.single(sessions_common_pb2.GetSessionResponse).session.session_id == session_id

    counts = web.call(API + "tasks.Tasks/CountTasksByStatus", tasks_common_pb2.CountTasksByStatusRequest())
    assert counts.status == 0 and len(counts.messages) == 1

    tasks = web.call(API + "tasks.Tasks/ListTasks", tasks_common_pb2.ListTasksRequest(page=0, page_size=10))
    assert tasks.single(tasks_common_pb2.ListTasksResponse).total == 0

    listed_results = web.call(
        API + "results.Results/ListResults", results_common_pb2.ListResultsRequest(page=0, page_size=10)
    ).single(results_common_pb2.ListResultsResponse)
    assert {r.result_id for r in listed_results.results} >= {r.result_id for r in created.values()}

    partitions = web.call(
        API + "partitions.Partitions/ListPartitions",
        partitions_common_pb2.ListPartitionsRequest(page=0, page_size=10),
    ).single(partitions_common_pb2.ListPartitionsResponse)
    assert {p.id for p in partitions.partitions} == {"default", "pymonik"}

    applications = web.call(
        API + "applications.Applications/ListApplications",
        applications_common_pb2.ListApplicationsRequest(page=0, page_size=10),
    )
    assert applications.single(applications_common_pb2.ListApplicationsResponse).total >= 0

    # A call that changes state goes through as well: created over gRPC-Web, seen over gRPC.
    made = web.call(
        API + "sessions.Sessions/CreateSession",
        sessions_common_pb2.CreateSessionRequest(
            default_task_option=options().to_message(), partition_ids=["default"]
        ),
    ).single(sessions_common_pb2.CreateSessionReply)
    assert sessions.get_session(made.session_id).session_id == made.session_id


def test_errors_are_grpc_statuses(web: GrpcWebClient) -> None:
    missing = web.call(
        API + "sessions.Sessions/GetSession", sessions_common_pb2.GetSessionRequest(session_id="nope")
    )
    assert missing.trailers_only and missing.status == grpc.StatusCode.NOT_FOUND.value[0]
    assert "nope" in missing.message
    # A message ending in a space (the empty id) still makes a valid header.
    empty = web.call(API + "sessions.Sessions/GetSession", sessions_common_pb2.GetSessionRequest())
    assert empty.status != 0 and empty.message

    unknown = web.call(API + "sessions.Sessions/NoSuchMethod", sessions_common_pb2.GetSessionRequest())
    assert unknown.status == grpc.StatusCode.UNIMPLEMENTED.value[0]
    # The agents' services are not reachable through the ingress.
    agent = web.call(
        "/armonik.api.grpc.v1.agent.Agent/CreateResults", sessions_common_pb2.GetSessionRequest()
    )
    assert agent.status == grpc.StatusCode.UNIMPLEMENTED.value[0]
    upload = web.call(API + "results.Results/UploadResultData", sessions_common_pb2.GetSessionRequest())
    assert upload.status == grpc.StatusCode.UNIMPLEMENTED.value[0] and "streams" in upload.message

    response = web.http.post(
        web.base_url + API + "sessions.Sessions/GetSession",
        content=b"\x00\x00\x00\x00\x09ab",
        headers=web.request_headers(),
    )
    assert response.headers["grpc-status"] == str(grpc.StatusCode.INVALID_ARGUMENT.value[0])
    assert "gRPC-Web" in response.headers["grpc-message"]


def test_get_events_stream(web: GrpcWebClient, channel: grpc.Channel) -> None:
    session_id = ArmoniKSessions(channel).create_session(options(), partition_ids=["default"])
    got = first_event(web, ArmoniKResults(channel), session_id)
    assert got, "no event through gRPC-Web"
    assert got[0].session_id == session_id
    assert got[0].WhichOneof("update") in ("new_result", "result_status_update")


def test_over_https_verified_with_the_deployment_authority(
    control_plane: ControlPlaneProcess, channel: grpc.Channel, tmp_path: Path
) -> None:
    """`ingress.tls` without mTLS: HTTPS with the ingress's certificate, checked by the client against the
    deployment's authority; calls and streams as over HTTP; plain HTTP is not served on that port."""
    pki = ensure_certificates(tmp_path / "pki", [ServerIdentity("ingress", ["127.0.0.1"])], key_size=2048)
    server = pki.servers["ingress"]
    ingress = IngressProcess(
        control_plane.endpoint,
        tmp_path / "ingress.log",
        env={
            "Ingress__Tls__CertificateFile": str(server.certificate),
            "Ingress__Tls__KeyFile": str(server.key),
        },
        ssl_context=client_context(pki.ca.certificate),
    )
    ingress.start()
    web = GrpcWebClient(ingress.url, ssl_context=client_context(pki.ca.certificate))
    try:
        session_id = ArmoniKSessions(channel).create_session(options(), partition_ids=["default"])
        listed = web.call(
            API + "sessions.Sessions/ListSessions",
            sessions_common_pb2.ListSessionsRequest(page=0, page_size=10),
        ).single(sessions_common_pb2.ListSessionsResponse)
        assert session_id in {s.session_id for s in listed.sessions}
        got = first_event(web, ArmoniKResults(channel), session_id)
        assert got and got[0].session_id == session_id
        # without the authority the certificate is not trusted; plain HTTP gets no answer
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(ingress.url + "/readiness")
        with pytest.raises(httpx.HTTPError):
            httpx.get(ingress.url.replace("https://", "http://") + "/readiness", timeout=5)
    finally:
        web.close()
        ingress.stop()
    assert "Traceback" not in ingress.logs(), ingress.logs()


def test_a_silent_stream_ends_when_the_browser_leaves(
    ingress: IngressProcess, web: GrpcWebClient, channel: grpc.Channel
) -> None:
    """Events of an idle session: nothing to answer yet when the browser goes away; the ingress then ends the
    control plane's stream rather than hold it until it stops."""
    session_id = ArmoniKSessions(channel).create_session(options(), partition_ids=["default"])
    request = events_common_pb2.EventSubscriptionRequest(session_id=session_id)
    with pytest.raises(httpx.ReadTimeout):
        web.http.post(
            ingress.url + API + "events.Events/GetEvents",
            content=web.body(request),
            headers=web.request_headers(),
            timeout=httpx.Timeout(10, read=1.0),
        )
    time.sleep(0.5)
    started = time.monotonic()
    ingress.stop()
    assert time.monotonic() - started < 4, "the ingress waited for a stream nobody reads"
    assert "graceful shutdown exceeded" not in ingress.logs(), ingress.logs()


def test_stream_of_an_unknown_session_ends_with_its_status(web: GrpcWebClient) -> None:
    request = events_common_pb2.EventSubscriptionRequest(session_id="no-such-session")
    answer = web.stream(API + "events.Events/GetEvents", request)
    assert answer.status == grpc.StatusCode.NOT_FOUND.value[0], answer


def test_cors_preflight(ingress: IngressProcess) -> None:
    path = ingress.url + API + "sessions.Sessions/ListSessions"
    asked = {
        "Origin": ORIGIN,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-grpc-web,x-user-agent",
    }
    allowed = httpx.options(path, headers=asked)
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    assert {"content-type", "x-grpc-web", "x-user-agent"} <= {
        h.strip().lower() for h in allowed.headers["access-control-allow-headers"].split(",")
    }
    refused = httpx.options(path, headers={**asked, "Origin": "http://elsewhere.example"})
    assert refused.status_code == 400 and "access-control-allow-origin" not in refused.headers
    # The answer to the call itself lets the page read the status.
    client = GrpcWebClient(ingress.url, TEXT, headers={"Origin": ORIGIN})
    try:
        answer = client.call(
            API + "sessions.Sessions/GetSession", sessions_common_pb2.GetSessionRequest(session_id="x")
        )
        assert answer.headers["access-control-allow-origin"] == ORIGIN
        assert "grpc-status" in answer.headers["access-control-expose-headers"]
    finally:
        client.close()
