"""The Kubernetes ingress pod's design, run on this machine: the nginx configuration and Secrets the renderer
writes for `ingress = { tls, mtls }` with authentication, served by a real nginx (Debian's), in front of the
gRPC-Web container's process with its rendered settings, in front of a control plane that trusts the CN
`armonik-ingress`. Only the paths and ports change (no pod here); everything else is as rendered.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest
from armonik.protogen.common import auth_common_pb2, sessions_common_pb2

from armonik_deploy.certificates import ensure_certificates
from armonik_deploy.kubernetes import render
from armonik_deploy.kubernetes.ingress import (
    CLIENT_SECRET,
    GRPC_WEB_PORT,
    NGINX_CERTIFICATES,
    NGINX_PORT,
    SERVER_SECRET,
)
from armonik_deploy.parameters import load_versions, parameters_from_dict
from tests.grpcweb_client import GrpcWebClient
from tests.ingress_support import IngressProcess, client_context
from tests.security.conftest import AuthPki, start_auth_plane
from tests.support import free_port, internal_errors, options, unavailable
from tests.unit.test_kubernetes_render import QUICK_DEPLOY

NGINX = "/usr/sbin/nginx"
CURRENT_USER = "/armonik.api.grpc.v1.auth.Authentication/GetCurrentUser"
CREATE_SESSION = "/armonik.api.grpc.v1.sessions.Sessions/CreateSession"
LIST_SESSIONS = "/armonik.api.grpc.v1.sessions.Sessions/ListSessions"


def nginx_or_skip() -> None:
    if not shutil.which(NGINX):
        unavailable(
            "nginx not installed (Debian's nginx-light)", "nginx missing: .ci/run installs nginx-light"
        )


@dataclass
class Pod:
    url: str
    pki: AuthPki
    nginx: subprocess.Popen[bytes]
    folder: Path

    def context(self, user: str | None) -> httpx.Client:
        pair = [Path(p) for p in self.pki.pair(user)] if user else []
        return httpx.Client(verify=client_context(Path(self.pki.ca), *pair), timeout=30)

    def web(self, user: str, headers: dict[str, str] | None = None) -> GrpcWebClient:
        pair = [Path(p) for p in self.pki.pair(user)]
        return GrpcWebClient(self.url, headers=headers, ssl_context=client_context(Path(self.pki.ca), *pair))


def write_secret(manifest: dict[str, object], folder: Path) -> None:
    folder.mkdir(parents=True)
    for name, value in manifest["data"].items():  # type: ignore[attr-defined]
        path = folder / name
        path.write_bytes(base64.b64decode(value))
        path.chmod(0o600)


@pytest.fixture(scope="module")
def pod(auth_pki: AuthPki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pod]:
    nginx_or_skip()
    folder = tmp_path_factory.mktemp("ingress-pod")
    # the deployment's authority is the test's: its users' certificates are the browsers'
    certificates = folder / "certificates"
    shutil.copytree(auth_pki.certs.folder, certificates)
    params = parameters_from_dict(
        {
            "compute_plane": {"default": {"worker": [{"image": "armonik-samples-worker"}]}},
            "ingress": {"tls": True, "mtls": True, "certificate_key_size": 2048},
            "authentication": {"require_authentication": True, "require_authorization": True},
        },
        str(folder / "p.tfvars"),
    )
    rendered = render(
        params,
        load_versions(QUICK_DEPLOY / "versions.tfvars.json"),
        folder / "p.tfvars",
        certificates=certificates,
    )
    write_secret(rendered.get("Secret", SERVER_SECRET), folder / "server")
    write_secret(rendered.get("Secret", CLIENT_SECRET), folder / "client")
    (folder / "static").mkdir()
    for name, content in rendered.get("ConfigMap", "ingress-static")["data"].items():
        (folder / "static" / name).write_text(content)

    (folder / "plane").mkdir()
    plane = start_auth_plane(folder / "plane", auth_pki, Authenticator__TrustedCommonNames="armonik-ingress")
    grpc_web_port, nginx_port = free_port(), free_port()
    deployment = rendered.get("Deployment", "ingress")
    grpc_web_spec = next(
        c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "grpc-web"
    )
    env = {e["name"]: e["value"].replace("/certificates/", f"{folder}/client/") for e in grpc_web_spec["env"]}
    env.update(ControlPlane__Endpoint=plane.url, Ingress__Port=str(grpc_web_port))
    grpc_web = IngressProcess(plane.url, folder / "grpc-web.log", port=grpc_web_port, env=env)

    conf = rendered.get("ConfigMap", "ingress-nginx")["data"]["default.conf"]
    conf = conf.replace(f"listen {NGINX_PORT} ssl", f"listen 127.0.0.1:{nginx_port} ssl")
    conf = conf.replace(NGINX_CERTIFICATES, str(folder / "server")).replace(
        "alias /static/", f"alias {folder}/static/"
    )
    conf = conf.replace(f"127.0.0.1:{GRPC_WEB_PORT}", f"127.0.0.1:{grpc_web_port}")
    temp = "".join(
        f"  {kind}_temp_path {folder}/{kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (folder / "nginx.conf").write_text(
        ("user root;\n" if os.geteuid() == 0 else "")
        + f"daemon off;\nworker_processes 1;\npid {folder}/nginx.pid;\nerror_log {folder}/nginx-error.log;\n"
        + "events {}\nhttp {\n  access_log off;\n"
        + temp
        + "".join(f"  {line}\n" for line in conf.splitlines())
        + "}\n"
    )
    nginx = None
    try:
        grpc_web.start()
        checked = subprocess.run(
            [NGINX, "-t", "-p", str(folder), "-c", str(folder / "nginx.conf")], capture_output=True, text=True
        )
        assert checked.returncode == 0, checked.stderr
        nginx = subprocess.Popen([NGINX, "-p", str(folder), "-c", str(folder / "nginx.conf")])
        url = f"https://127.0.0.1:{nginx_port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/healthz", verify=client_context(Path(auth_pki.ca))).status_code == 200:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline, (folder / "nginx-error.log").read_text()
                time.sleep(0.2)
        yield Pod(url, auth_pki, nginx, folder)
    finally:
        if nginx is not None:
            nginx.send_signal(signal.SIGQUIT)
            nginx.wait(15)
        grpc_web.stop()
        plane.stop()
    assert "Traceback" not in grpc_web.logs(), grpc_web.logs()
    assert not internal_errors(plane.logs())


def current_user(client: GrpcWebClient) -> str:
    answer = client.call(CURRENT_USER, auth_common_pb2.GetCurrentUserRequest())
    return answer.single(auth_common_pb2.GetCurrentUserResponse).user.username


def test_nginx_passes_each_browser_certificate_on(pod: Pod) -> None:
    for user in ("admin", "monitoring", "submitter"):
        client = pod.web(user)
        try:
            assert current_user(client) == user
        finally:
            client.close()


def test_monitoring_lists_but_may_not_create(pod: Pod) -> None:
    client = pod.web("monitoring")
    try:
        listed = client.call(LIST_SESSIONS, sessions_common_pb2.ListSessionsRequest(page=0, page_size=1))
        assert listed.status == 0, listed.message
        denied = client.call(
            CREATE_SESSION,
            sessions_common_pb2.CreateSessionRequest(
                default_task_option=options().to_message(), partition_ids=["default"]
            ),
        )
    finally:
        client.close()
    assert denied.status == grpc.StatusCode.PERMISSION_DENIED.value[0]
    assert denied.message == "user monitoring lacks permission Sessions:CreateSession"


def test_a_browser_cannot_name_someone_else(pod: Pod) -> None:
    forged = {
        "X-Certificate-Client-CN": "admin",
        "X-Certificate-Client-Fingerprint": pod.pki.fingerprint("admin"),
    }
    client = pod.web("monitoring", headers=forged)
    try:
        assert current_user(client) == "monitoring"
    finally:
        client.close()


def test_without_a_certificate_only_the_probe_answers(pod: Pod, tmp_path: Path) -> None:
    with pod.context(None) as http:
        for page in ("/console/", "/static/environment.json", LIST_SESSIONS):
            refused = (
                http.get(pod.url + page) if not page.startswith("/armonik") else http.post(pod.url + page)
            )
            assert refused.status_code == 403, (page, refused.text)
            assert "a client certificate is required" in refused.text
        assert http.get(pod.url + "/healthz").text == "Healthy\n"
    with pod.context("monitoring") as http:
        served = http.get(pod.url + "/static/environment.json").json()
        assert served == json.loads((pod.folder / "static" / "environment.json").read_text())
    other = ensure_certificates(tmp_path / "other", [], ["admin"], key_size=2048)
    pair = other.clients["admin"]
    with httpx.Client(verify=client_context(Path(pod.pki.ca), pair.certificate, pair.key)) as http:
        answer = http.get(pod.url + "/console/")
    assert answer.status_code == 400 and re.search("certificate", answer.text, re.IGNORECASE)
