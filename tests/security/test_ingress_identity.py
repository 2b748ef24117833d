"""The ingress under authentication: HTTPS with client certificates, the browser's identity passed on to the
control plane as a trusted proxy does, and nothing a browser sends can change who it is.

A real control plane with authentication and authorization (mTLS, users of every built-in role, `proxy` as its
trusted CN) and a real ingress process in front of it, presenting the `proxy` certificate and serving HTTPS with
its own, browsers' certificates checked against the deployment's authority. Clients are the protocol-written
gRPC-Web client and plain HTTPS requests, verified with the deployment's authority.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from armonik.client import ArmoniKResults, ArmoniKSessions
from armonik.protogen.common import auth_common_pb2, events_common_pb2, sessions_common_pb2
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from armonik_deploy.certificates import ensure_certificates
from tests.graph.browser import artifacts, chromium, until
from tests.grpcweb_client import GrpcWebClient
from tests.ingress_support import IngressProcess, client_context, first_event
from tests.security.conftest import AuthPki, AuthPlane
from tests.support import internal_errors, options, unavailable

API = "/armonik.api.grpc.v1."
LIST_SESSIONS = API + "sessions.Sessions/ListSessions"
CREATE_SESSION = API + "sessions.Sessions/CreateSession"
CURRENT_USER = API + "auth.Authentication/GetCurrentUser"


def as_trusted_proxy(pki: AuthPki) -> dict[str, str]:
    """The ingress's settings to reach the control plane with `proxy`'s certificate, a CN it trusts."""
    certificate, key = pki.pair("proxy")
    return {
        "ControlPlane__Tls__CaFile": pki.ca,
        "ControlPlane__Tls__ClientCertificateFile": certificate,
        "ControlPlane__Tls__ClientKeyFile": key,
    }


@pytest.fixture(scope="module")
def ingress(
    auth_plane: AuthPlane, auth_pki: AuthPki, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IngressProcess]:
    folder = tmp_path_factory.mktemp("ingress-auth")
    server = auth_pki.certs.servers["ingress"]
    process = IngressProcess(
        auth_plane.url,
        folder / "ingress.log",
        env={
            **as_trusted_proxy(auth_pki),
            "Ingress__Tls__CertificateFile": str(server.certificate),
            "Ingress__Tls__KeyFile": str(server.key),
            "Ingress__Tls__ClientCaFile": auth_pki.ca,
        },
        ssl_context=client_context(Path(auth_pki.ca)),  # readiness answers without a client certificate
    )
    process.start()
    yield process
    process.stop()
    assert "Traceback" not in process.logs(), process.logs()
    assert not internal_errors(auth_plane.logs())


def user_context(pki: AuthPki, user: str | None) -> ssl.SSLContext:
    cert, key = pki.pair(user) if user else (None, None)
    return client_context(Path(pki.ca), Path(cert) if cert else None, Path(key) if key else None)


@pytest.fixture
def web(ingress: IngressProcess, auth_pki: AuthPki) -> Iterator[dict[str, GrpcWebClient]]:
    clients = {
        user: GrpcWebClient(ingress.url, ssl_context=user_context(auth_pki, user))
        for user in ("admin", "monitoring", "submitter")
    }
    yield clients
    for client in clients.values():
        client.close()


def current_user(client: GrpcWebClient) -> auth_common_pb2.GetCurrentUserResponse:
    return client.call(CURRENT_USER, auth_common_pb2.GetCurrentUserRequest()).single(
        auth_common_pb2.GetCurrentUserResponse
    )


def test_each_browser_calls_as_its_own_certificate(web: dict[str, GrpcWebClient]) -> None:
    for user, client in web.items():
        assert current_user(client).user.username == user


def test_monitoring_lists_sessions_but_may_not_create_one(
    web: dict[str, GrpcWebClient], auth_plane: AuthPlane
) -> None:
    with auth_plane.channel("admin") as channel:
        created = ArmoniKSessions(channel).create_session(options(), partition_ids=["default"])
    listed = (
        web["monitoring"]
        .call(LIST_SESSIONS, sessions_common_pb2.ListSessionsRequest(page=0, page_size=100))
        .single(sessions_common_pb2.ListSessionsResponse)
    )
    assert created in {s.session_id for s in listed.sessions}

    denied = web["monitoring"].call(
        CREATE_SESSION,
        sessions_common_pb2.CreateSessionRequest(
            default_task_option=options().to_message(), partition_ids=["default"]
        ),
    )
    assert denied.status == grpc.StatusCode.PERMISSION_DENIED.value[0]
    assert denied.message == "user monitoring lacks permission Sessions:CreateSession"
    # the same call from the submitter's certificate goes through
    made = (
        web["submitter"]
        .call(
            CREATE_SESSION,
            sessions_common_pb2.CreateSessionRequest(
                default_task_option=options().to_message(), partition_ids=["default"]
            ),
        )
        .single(sessions_common_pb2.CreateSessionReply)
    )
    assert made.session_id


def test_forged_identity_headers_are_ignored(
    ingress: IngressProcess, auth_pki: AuthPki, web: dict[str, GrpcWebClient]
) -> None:
    """A browser naming the admin in the trusted proxy's headers (or sending a proxy secret) stays itself."""
    forged = {
        "X-Certificate-Client-CN": "admin",
        "X-Certificate-Client-Fingerprint": auth_pki.fingerprint("admin"),
        "X-ArmoniK-Proxy-Secret": "guess",
    }
    client = GrpcWebClient(ingress.url, headers=forged, ssl_context=user_context(auth_pki, "monitoring"))
    try:
        assert current_user(client).user.username == "monitoring"
        denied = client.call(
            CREATE_SESSION,
            sessions_common_pb2.CreateSessionRequest(
                default_task_option=options().to_message(), partition_ids=["default"]
            ),
        )
        assert denied.status == grpc.StatusCode.PERMISSION_DENIED.value[0], denied.message
    finally:
        client.close()


def test_an_unregistered_certificate_is_unauthenticated(ingress: IngressProcess, auth_pki: AuthPki) -> None:
    client = GrpcWebClient(ingress.url, ssl_context=user_context(auth_pki, "stranger"))
    try:
        answer = client.call(LIST_SESSIONS, sessions_common_pb2.ListSessionsRequest(page=0, page_size=1))
    finally:
        client.close()
    assert answer.status == grpc.StatusCode.UNAUTHENTICATED.value[0]
    assert answer.message.startswith("certificate CN=stranger fingerprint=")
    assert answer.message.endswith("is not registered")


def test_without_a_client_certificate_nothing_but_health_answers(
    ingress: IngressProcess, auth_pki: AuthPki
) -> None:
    anonymous = GrpcWebClient(ingress.url, ssl_context=user_context(auth_pki, None))
    try:
        answer = anonymous.call(LIST_SESSIONS, sessions_common_pb2.ListSessionsRequest(page=0, page_size=1))
    finally:
        anonymous.close()
    assert answer.trailers_only and answer.status == grpc.StatusCode.UNAUTHENTICATED.value[0]
    assert answer.message.startswith("a client certificate is required")
    with httpx.Client(verify=user_context(auth_pki, None)) as http:
        for page in (
            "/admin/",
            "/console/",
            "/console/api/tables/sessions",
            "/static/environment.json",
            "/logs/",
        ):
            refused = http.get(ingress.url + page)
            assert refused.status_code == 403, (page, refused.text)
            assert "a client certificate is required" in refused.text
        assert http.get(ingress.url + "/readiness").text == "Healthy\n"


def test_a_certificate_of_another_authority_fails_the_handshake(
    ingress: IngressProcess, auth_pki: AuthPki, tmp_path: Path
) -> None:
    other = ensure_certificates(tmp_path / "other", [], ["admin"], key_size=2048)
    context = client_context(
        Path(auth_pki.ca), other.clients["admin"].certificate, other.clients["admin"].key
    )
    # TLS 1.3: the client's handshake ends before the server has checked its certificate; the server's
    # alert then closes the connection before any answer
    with (
        httpx.Client(verify=context) as http,
        pytest.raises((httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError)),
    ):
        http.get(ingress.url + "/admin/")


def test_plain_http_is_not_served(ingress: IngressProcess) -> None:
    with pytest.raises(httpx.HTTPError):
        httpx.get(ingress.url.replace("https://", "http://") + "/readiness", timeout=5)


def test_the_events_stream_runs_as_the_browser(
    web: dict[str, GrpcWebClient], auth_plane: AuthPlane, ingress: IngressProcess, auth_pki: AuthPki
) -> None:
    with auth_plane.channel("admin") as channel:
        session = ArmoniKSessions(channel).create_session(options(), partition_ids=["default"])
        got = first_event(
            web["monitoring"], ArmoniKResults(channel), session
        )  # Monitoring has Events:GetEvents
    assert got and got[0].session_id == session
    request = events_common_pb2.EventSubscriptionRequest(session_id=session)
    stranger = GrpcWebClient(ingress.url, ssl_context=user_context(auth_pki, "stranger"))
    try:
        refused = stranger.stream(API + "events.Events/GetEvents", request)
    finally:
        stranger.close()
    assert refused.status == grpc.StatusCode.UNAUTHENTICATED.value[0], refused.message


def test_the_console_calls_as_the_browser(
    ingress: IngressProcess, auth_pki: AuthPki, auth_plane: AuthPlane
) -> None:
    with auth_plane.channel("admin") as channel:
        session = ArmoniKSessions(channel).create_session(options(), partition_ids=["default"])
    with httpx.Client(verify=user_context(auth_pki, "monitoring"), timeout=60) as http:
        listed = http.get(ingress.url + "/console/api/tables/sessions")
        assert listed.status_code == 200, listed.text
        assert session in {row["session_id"] for row in listed.json()["rows"]}
        cancelled = http.post(
            ingress.url + f"/console/api/sessions/{session}/cancel", headers={"x-armonik-console": "1"}
        )
        assert cancelled.status_code == 403, cancelled.text
        assert cancelled.json()["error"] == (
            "PERMISSION_DENIED: user monitoring lacks permission Sessions:CancelSession"
        )
        # the live graph is followed with the viewer's rights too
        summary = http.get(ingress.url + f"/console/api/sessions/{session}/summary")
        assert summary.status_code in (200, 404), summary.text
        assert "PERMISSION_DENIED" not in summary.text and "UNAUTHENTICATED" not in summary.text


# -- a browser with a user certificate ------------------------------------------------------------------------------
def nss_home(home: Path, ca: Path, user: tuple[Path, Path] | None) -> Path:
    """A HOME whose NSS store (where Chromium on Linux keeps certificates) trusts the deployment's authority for
    servers and, when given, holds a user's certificate and key."""
    for tool in ("certutil", "pk12util"):
        if shutil.which(tool) is None:
            unavailable(
                f"{tool} not installed (Debian's libnss3-tools)",
                f"{tool} missing: .ci/run installs libnss3-tools",
            )
    store = home / ".pki" / "nssdb"
    store.mkdir(parents=True)
    db = f"sql:{store}"
    subprocess.run(["certutil", "-N", "-d", db, "--empty-password"], check=True, capture_output=True)
    subprocess.run(["certutil", "-A", "-d", db, "-n", "deployment", "-t", "C,,", "-i", str(ca)], check=True)
    if user is not None:
        certificate = x509.load_pem_x509_certificate(user[0].read_bytes())
        key = serialization.load_pem_private_key(user[1].read_bytes(), password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        bundle = home / "user.p12"
        bundle.write_bytes(
            pkcs12.serialize_key_and_certificates(
                b"user", key, certificate, None, serialization.NoEncryption()
            )
        )
        subprocess.run(["pk12util", "-i", str(bundle), "-d", db, "-W", ""], check=True, capture_output=True)
    return home


def auto_select_certificate(profile: Path, origin: str) -> None:
    """The profile's setting behind the `AutoSelectCertificateForUrls` policy: for `origin`, present the
    matching certificate without asking (a headless browser has no one to ask)."""
    exceptions = {f"{origin},*": {"setting": {"filters": [{}]}}}
    preferences = {"profile": {"content_settings": {"exceptions": {"auto_select_certificate": exceptions}}}}
    (profile / "Default").mkdir(parents=True)
    (profile / "Default" / "Preferences").write_text(json.dumps(preferences))


@pytest.mark.parametrize("user", ["monitoring", None], ids=["with-certificate", "without"])
def test_a_browser_opens_the_console_with_its_user_certificate(
    ingress: IngressProcess, auth_pki: AuthPki, auth_plane: AuthPlane, tmp_path: Path, user: str | None
) -> None:
    """Chromium verifies the ingress's certificate with the deployment's authority (no certificate error is
    ignored) and presents the user's; the console then lists, as that user, a session the admin created."""
    with auth_plane.channel("admin") as channel:
        session = ArmoniKSessions(channel).create_session(options(), partition_ids=["default"])
    pair = tuple(Path(p) for p in auth_pki.pair(user)) if user else None
    home = nss_home(tmp_path / "home", Path(auth_pki.ca), pair)  # type: ignore[arg-type]
    auto_select_certificate(tmp_path / "profile", ingress.url)
    with contextlib.contextmanager(chromium)(tmp_path / "profile", home) as browser:
        browser.get(ingress.url + "/console/")
        shot = artifacts(tmp_path, "ingress-auth") / f"console-{user or 'anonymous'}.png"
        if user is None:
            text = browser.execute_script("return document.body.innerText")
            browser.save_screenshot(str(shot))
            assert text.startswith("a client certificate is required"), text
            return
        rows = "return [...document.querySelectorAll('#table tr.row')].map(n => n.dataset.id);"
        until(lambda: session in browser.execute_script(rows), f"session {session} listed in the console")
        browser.save_screenshot(str(shot))
        assert browser.current_url == ingress.url + "/console/"


# -- behind a TLS-terminating proxy (nginx in the ingress pod on Kubernetes) -------------------------------------
def test_behind_a_tls_proxy_the_identity_headers_it_sets_are_passed_on(
    auth_plane: AuthPlane, auth_pki: AuthPki, tmp_path: Path
) -> None:
    """`Ingress__TrustProxyIdentityHeaders`: the ingress listens on loopback behind nginx, which checked the
    certificate and set the headers; a request without them is refused, as nginx refuses one without a
    certificate."""
    process = IngressProcess(
        auth_plane.url,
        tmp_path / "ingress.log",
        env={**as_trusted_proxy(auth_pki), "Ingress__TrustProxyIdentityHeaders": "true"},
    )
    process.start()
    try:
        named = {
            "X-Certificate-Client-CN": "monitoring",
            "X-Certificate-Client-Fingerprint": auth_pki.fingerprint("monitoring"),
        }
        as_monitoring = GrpcWebClient(process.url, headers=named)
        anonymous = GrpcWebClient(process.url)
        try:
            assert current_user(as_monitoring).user.username == "monitoring"
            refused = anonymous.call(CURRENT_USER, auth_common_pb2.GetCurrentUserRequest())
        finally:
            as_monitoring.close()
            anonymous.close()
        assert refused.status == grpc.StatusCode.UNAUTHENTICATED.value[0]
    finally:
        process.stop()
    assert "Traceback" not in process.logs(), process.logs()


def test_proxy_identity_headers_are_believed_on_loopback_only(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "armonik_core.ingress"],
        env={**os.environ, "Ingress__Host": "0.0.0.0", "Ingress__TrustProxyIdentityHeaders": "true"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "identity headers are believed only from a proxy on the same machine" in done.stderr


def test_an_ingress_without_client_certificates_gets_no_one_in(
    auth_plane: AuthPlane, auth_pki: AuthPki, tmp_path: Path
) -> None:
    """Started by hand without client certificates in front of an authenticated control plane: no identity
    to pass on, and the ingress's own certificate is no user."""
    process = IngressProcess(auth_plane.url, tmp_path / "ingress.log", env=as_trusted_proxy(auth_pki))
    process.start()
    client = GrpcWebClient(process.url)
    try:
        answer = client.call(LIST_SESSIONS, sessions_common_pb2.ListSessionsRequest(page=0, page_size=1))
    finally:
        client.close()
        process.stop()
    assert answer.status == grpc.StatusCode.UNAUTHENTICATED.value[0]
    assert answer.message.startswith("certificate CN=proxy") and answer.message.endswith("is not registered")
