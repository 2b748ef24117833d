"""What the podman suites check of a deployment's ingress pod (nginx of the project's `armonik-ingress-nginx`
image in front of the gRPC-Web container), from the host, through the port its Service publishes.

The outputs' `admin_app_url` names that port; a session made with the SDK is listed through gRPC-Web
(tests/grpcweb_client.py), `/static/environment.json` is nginx's file from the ConfigMap, and `/admin/` goes on
to the console (no Admin GUI build is deployed). Under mTLS, the client (user) certificate the deployment
generated opens all of it, and a browser without one is answered 403 with what to do."""

from __future__ import annotations

import json
import ssl
from pathlib import Path

import httpx
from armonik.client import ArmoniKSessions
from armonik.protogen.common import sessions_common_pb2

from tests.grpcweb_client import GrpcWebClient
from tests.ingress_support import client_context
from tests.podman.conftest import PodmanDeployment
from tests.support import options

LIST_SESSIONS = "/armonik.api.grpc.v1.sessions.Sessions/ListSessions"
NGINX_IMAGE = "localhost/armonik-ingress-nginx:0.1.0"


def ingress_url(deployment: PodmanDeployment) -> str:
    """The ingress' base URL, from the outputs' `admin_app_url` (`<scheme>://127.0.0.1:<port>/admin/`)."""
    outputs = json.loads((deployment.generated / "armonik-output.json").read_text())["armonik"]
    admin = str(outputs["admin_app_url"])
    scheme = "https" if deployment.tls else "http"
    assert admin.startswith(f"{scheme}://127.0.0.1:") and admin.endswith("/admin/"), outputs
    return admin.removesuffix("/admin/")


def tls_context(deployment: PodmanDeployment, certificate: bool = True) -> ssl.SSLContext | None:
    """What a browser trusts (the deployment's authority) and, with `certificate`, presents (the generated
    client certificate named by the AKCONFIG); None without TLS."""
    if not deployment.tls:
        return None
    files = deployment.cli_files()
    pair = [Path(files["client_certificate"]), Path(files["client_key"])] if certificate else []
    return client_context(Path(files["certificate_authority"]), *pair)


def check_runs_the_projects_nginx(deployment: PodmanDeployment) -> None:
    """The ingress pod runs, its nginx from the project's image (upstream's cannot be pulled here)."""
    name = deployment.container("-ingress-0-nginx")
    (state,) = json.loads(deployment.podman("container", "inspect", name).stdout)
    assert state["ImageName"] == NGINX_IMAGE and state["State"]["Status"] == "running", state["State"]
    assert f"{NGINX_IMAGE} runs in its place" in deployment.deploy_output


def check_lists_a_session_through_grpc_web(deployment: PodmanDeployment) -> None:
    with deployment.channel() as channel:
        session_id = ArmoniKSessions(channel).create_session(options(), partition_ids=["default"])
    client = GrpcWebClient(ingress_url(deployment), ssl_context=tls_context(deployment))
    try:
        answer = client.call(LIST_SESSIONS, sessions_common_pb2.ListSessionsRequest(page=0, page_size=1000))
    finally:
        client.close()
    assert answer.status == 0, answer.message
    listed = answer.single(sessions_common_pb2.ListSessionsResponse)
    assert session_id in [s.session_id for s in listed.sessions]


def check_static_and_admin_pages(deployment: PodmanDeployment) -> None:
    url = ingress_url(deployment)
    with httpx.Client(verify=tls_context(deployment) or True, timeout=30) as http:
        environment = http.get(f"{url}/static/environment.json")
        assert environment.status_code == 200, environment.text
        assert set(environment.json()) >= {"name", "version"}, environment.json()
        admin = http.get(f"{url}/admin/")
        assert admin.status_code in (302, 307) and admin.headers["location"] == "/console/", admin
        console = http.get(f"{url}/console/")
        assert console.status_code == 200 and "<html" in console.text.lower()


def check_refuses_a_browser_without_a_certificate(deployment: PodmanDeployment) -> None:
    url = ingress_url(deployment)
    with httpx.Client(verify=tls_context(deployment, certificate=False) or True, timeout=30) as http:
        for page in ("/admin/", "/static/environment.json"):
            refused = http.get(url + page)
            assert refused.status_code == 403 and "a client certificate is required" in refused.text, page
        refused = http.post(url + LIST_SESSIONS, headers={"content-type": "application/grpc-web-text"})
        assert refused.status_code == 403, refused.text
        assert http.get(f"{url}/healthz").text == "Healthy\n"
