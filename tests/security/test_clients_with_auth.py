"""The official clients, unchanged, against a deployment with authentication and authorization required:
`armonik-deploy` generates a certificate per built-in user (and per user it is asked to), registers them through
the init job, and names the admin's in `armonik-cli.yaml`; the `armonik` SDK (the hello-world sample),
`armonik-cli` (with that AKCONFIG) and PymoniK (with that AKCONFIG) work with a generated certificate over mTLS,
and through a test ingress that forwards the caller's identity in headers (trusted by its certificate's CN, or
by the proxy secret)."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from armonik.client import ArmoniKSessions
from armonik.common import TaskOptions
from armonik.common.channel import create_channel
from armonik.protogen.client.auth_service_pb2_grpc import AuthenticationStub
from armonik.protogen.common import sessions_common_pb2
from armonik.protogen.common.auth_common_pb2 import GetCurrentUserRequest
from pymonik import Pymonik, task

from armonik_deploy.certificates import ensure_certificates
from tests.conftest import ROOT
from tests.grpcweb_client import GrpcWebClient
from tests.ingress_support import client_context
from tests.integration.test_tls import ARMONIK, PARAMETERS, TlsDeployment, deployment  # noqa: F401
from tests.security.conftest import PROXY_SECRET, AuthPki, AuthPlane, fingerprint
from tests.support import free_port

AUTH_PARAMETERS = (
    PARAMETERS
    + """
authentication = {{
  require_authentication   = true
  require_authorization    = true
  authentication_datafile  = "authentication.json"
  trusted_common_names     = ["ingress-proxy"]
  generate_client_cert_for = ["alice"]
}}
"""
).replace(
    'worker = [{{ command = ["{{python}}", "-m", "armonik_samples.worker"] }}]\n  }}',
    'worker = [{{ command = ["{{python}}", "-m", "armonik_samples.worker"] }}]\n  }}\n'
    "  pymonik = {{\n    replicas = 1\n    termination_grace_period_seconds = 2\n"
    '    worker = [{{ command = ["{{python}}", "-c", "from pymonik import run_pymonik_worker; run_pymonik_worker()"] }}]\n'
    "  }}",
)
DATAFILE = {
    "roles_list": [{"RoleName": "Reader", "Permissions": ["Sessions:ListSessions", "Sessions:GetSession"]}],
    "users_list": [{"Username": "alice", "Roles": ["Reader"]}],
    "certificates_list": [],
}


@task
def square(x: int) -> int:
    return x * x


@task
def total(values: list[int]) -> int:
    return sum(values)


def user_pair(certificates: Path, user: str) -> tuple[str, str]:
    return str(certificates / f"user-{user}.crt"), str(certificates / f"user-{user}.key")


def who(endpoint: str, ca: str, pair: tuple[str, str]) -> tuple[str, list[str]]:
    with create_channel(
        endpoint, certificate_authority=ca, client_certificate=pair[0], client_key=pair[1]
    ) as ch:
        user = AuthenticationStub(ch).GetCurrentUser(GetCurrentUserRequest(), timeout=10).user
        return user.username, list(user.roles)


def hello_world(endpoint: str, ca: str, pair: tuple[str, str]) -> subprocess.CompletedProcess[str]:
    args = ["--endpoint", endpoint, "--ca", ca, "--cert", pair[0], "--key", pair[1], "--timeout", "60"]
    return subprocess.run(
        [sys.executable, "-m", "armonik_samples.hello_world", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
    )


def cli(home: Path, akconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AK_") and k != "AKCONFIG"}
    env.update(HOME=str(home), AKCONFIG=str(akconfig), COLUMNS="1000", NO_COLOR="1", TERM="dumb")
    return subprocess.run([str(ARMONIK), *args], env=env, capture_output=True, text=True, timeout=60)


def pymonik_sum(akconfig: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setenv("AKCONFIG", str(akconfig))
    with Pymonik(partition="pymonik"):
        squares = square.map_invoke([(i,) for i in range(4)])
        result: int = total.invoke(squares).wait().get()
    return result


def akconfig_for(path: Path, endpoint: str, ca: str, pair: tuple[str, str]) -> Path:
    entries = {
        "endpoint": endpoint,
        "certificate_authority": ca,
        "client_certificate": pair[0],
        "client_key": pair[1],
    }
    path.write_text("".join(f"{k}: {json.dumps(v)}\n" for k, v in entries.items()))
    return path


class Proxy:
    """The test ingress (tests/security/proxy.py) as its own process."""

    def __init__(self, upstream: str, ca: str, server: tuple[str, str], trust: list[str]) -> None:
        self.port = free_port()
        args = [
            "--port",
            str(self.port),
            "--upstream",
            upstream,
            "--ca",
            ca,
            "--cert",
            server[0],
            "--key",
            server[1],
        ]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.security.proxy", *args, *trust], cwd=ROOT, stderr=subprocess.PIPE
        )
        self.url = f"https://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)


def wait_answering(endpoint: str, ca: str, pair: tuple[str, str]) -> None:
    deadline = time.monotonic() + 30
    with create_channel(
        endpoint, certificate_authority=ca, client_certificate=pair[0], client_key=pair[1]
    ) as ch:
        while True:
            try:
                grpc.channel_ready_future(ch).result(timeout=0.5)
                return
            except grpc.FutureTimeoutError:
                assert time.monotonic() < deadline, "the proxy never listened"


@pytest.fixture
def auth_deployment(deployment: TlsDeployment) -> Iterator[TlsDeployment]:  # noqa: F811
    deployment.parameters.write_text(
        AUTH_PARAMETERS.format(port=deployment.port, http_port=deployment.http_port)
    )
    (deployment.folder / "authentication.json").write_text(json.dumps(DATAFILE))
    deployment.deploy()
    yield deployment


def test_the_clients_with_generated_certificates_and_through_a_trusted_proxy(
    auth_deployment: TlsDeployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = auth_deployment
    url = f"https://127.0.0.1:{d.port}"
    certs = (d.generated / "certificates").resolve()
    ca = str(certs / "ca.crt")

    # the generated users, registered by the init job; the CLI's AKCONFIG names the admin's certificate
    conf = certs / "authentication_conf.json"
    assert stat.S_IMODE(conf.stat().st_mode) == 0o600
    akconfig = d.generated / "armonik-cli.yaml"
    assert f'client_certificate: "{certs / "user-admin.crt"}"' in akconfig.read_text().splitlines()
    assert who(url, ca, user_pair(certs, "admin")) == ("admin", ["Admin"])
    assert who(url, ca, user_pair(certs, "submitter")) == ("submitter", ["Submitter"])
    assert who(url, ca, user_pair(certs, "monitoring")) == ("monitoring", ["Monitoring"])
    assert who(url, ca, user_pair(certs, "alice")) == ("alice", ["Reader"])

    # the SDK (hello world: a task through the agents, whose own certificate is no user)
    hello = hello_world(url, ca, user_pair(certs, "submitter"))
    assert hello.returncode == 0 and "Hello World!" in hello.stdout, hello.stdout + hello.stderr + d.logs()
    refused = hello_world(url, ca, user_pair(certs, "monitoring"))
    assert refused.returncode != 0 and "lacks permission Sessions:CreateSession" in " ".join(
        (refused.stdout + refused.stderr).split()
    )

    # armonik-cli with the generated AKCONFIG (admin), and a reader refused what it may not do
    listed = cli(d.folder / "home", akconfig, "session", "list", "-o", "json")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert len(json.loads(listed.stdout)) == 1
    alice = akconfig_for(d.folder / "alice.yaml", url, ca, user_pair(certs, "alice"))
    assert cli(d.folder / "home", alice, "session", "list", "-o", "json").returncode == 0
    denied = cli(d.folder / "home", alice, "partition", "list", "-o", "json")
    assert denied.returncode != 0 and "PERMISSION_DENIED" in denied.stdout + denied.stderr

    # PymoniK with the generated AKCONFIG
    assert pymonik_sum(akconfig, monkeypatch) == 0 + 1 + 4 + 9

    # the deployment's own ingress: HTTPS, the browser's generated certificate passed on to the control plane
    web_url = f"https://127.0.0.1:{d.http_port}"
    outputs = json.loads((d.generated / "armonik-output.json").read_text())["armonik"]
    assert outputs["admin_app_url"] == f"{web_url}/admin/" and outputs["seq_web_url"] == f"{web_url}/logs/"
    monitoring = GrpcWebClient(
        web_url, ssl_context=client_context(Path(ca), *map(Path, user_pair(certs, "monitoring")))
    )
    try:
        listed_web = monitoring.call(
            "/armonik.api.grpc.v1.sessions.Sessions/ListSessions",
            sessions_common_pb2.ListSessionsRequest(page=0, page_size=10),
        ).single(sessions_common_pb2.ListSessionsResponse)
        admin_cert, admin_key = user_pair(certs, "admin")
        with create_channel(
            url, certificate_authority=ca, client_certificate=admin_cert, client_key=admin_key
        ) as ch:
            total, _ = ArmoniKSessions(ch).list_sessions()
        assert listed_web.total == total >= 1
        denied = monitoring.call(
            "/armonik.api.grpc.v1.sessions.Sessions/CreateSession",
            sessions_common_pb2.CreateSessionRequest(
                default_task_option=TaskOptions(timedelta(seconds=30), 1, 1, "default").to_message(),
                partition_ids=["default"],
            ),
        )
        assert denied.status == grpc.StatusCode.PERMISSION_DENIED.value[0], denied.message
    finally:
        monitoring.close()

    # through an ingress that terminates mTLS and forwards the caller's CN and fingerprint
    proxy_certs = ensure_certificates(
        certs, [], ["ingress-proxy"], key_size=2048
    )  # signed by the same authority
    pair = proxy_certs.clients["ingress-proxy"]
    server = (str(certs / "control-plane.crt"), str(certs / "control-plane.key"))
    proxy = Proxy(
        f"127.0.0.1:{d.port}",
        ca,
        server,
        ["--upstream-cert", str(pair.certificate), "--upstream-key", str(pair.key)],
    )
    try:
        wait_answering(proxy.url, ca, user_pair(certs, "submitter"))
        assert who(proxy.url, ca, user_pair(certs, "submitter")) == ("submitter", ["Submitter"])
        hello = hello_world(proxy.url, ca, user_pair(certs, "submitter"))
        assert hello.returncode == 0 and "Hello World!" in hello.stdout, hello.stdout + hello.stderr
        via_proxy = akconfig_for(d.folder / "proxy.yaml", proxy.url, ca, user_pair(certs, "admin"))
        listed = cli(d.folder / "home", via_proxy, "session", "list", "-o", "json")
        assert listed.returncode == 0 and len(json.loads(listed.stdout)) == 3, listed.stdout + listed.stderr
        assert pymonik_sum(via_proxy, monkeypatch) == 14
        # the proxy's own certificate is trusted, not a user: a client it does not know gets no identity
        assert fingerprint(pair.certificate) not in conf.read_text()
    finally:
        proxy.stop()


def test_a_local_proxy_trusted_by_its_secret(secret_plane: AuthPlane, auth_pki: AuthPki) -> None:
    server = auth_pki.certs.servers["control-plane"]
    proxy = Proxy(
        secret_plane.endpoint,
        auth_pki.ca,
        (str(server.certificate), str(server.key)),
        ["--secret", PROXY_SECRET],
    )
    try:
        wait_answering(proxy.url, auth_pki.ca, auth_pki.pair("submitter"))
        assert who(proxy.url, auth_pki.ca, auth_pki.pair("submitter")) == ("submitter", ["Submitter"])
        cert, key = auth_pki.pair("submitter")
        with create_channel(
            proxy.url, certificate_authority=auth_pki.ca, client_certificate=cert, client_key=key
        ) as ch:
            sessions = ArmoniKSessions(ch)
            session_id = sessions.create_session(
                TaskOptions(timedelta(seconds=60), 1, 1, "default"), ["default"]
            )
            assert sessions.get_session(session_id).session_id == session_id
        with pytest.raises(grpc.RpcError) as caught:
            who(proxy.url, auth_pki.ca, auth_pki.pair("stranger"))
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        proxy.stop()
