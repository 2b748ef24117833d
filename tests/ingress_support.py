"""An ingress started as its own process in front of a control plane, as the local deployment runs it."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from armonik.client import ArmoniKResults
from armonik.protogen.common import events_common_pb2

from tests.grpcweb_client import GrpcWebClient
from tests.support import free_port

GET_EVENTS = "/armonik.api.grpc.v1.events.Events/GetEvents"

ROOT = Path(__file__).resolve().parent.parent


def client_context(ca: Path, certificate: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    """What a client of an HTTPS ingress uses: the deployment's authority, and a client certificate if given."""
    context = ssl.create_default_context(cafile=str(ca))
    if certificate is not None:
        context.load_cert_chain(str(certificate), str(key) if key else None)
    return context


@dataclass
class IngressProcess:
    control_plane: str
    log_path: Path
    port: int = field(default_factory=free_port)
    env: dict[str, str] = field(default_factory=dict)
    #: Set for an ingress serving HTTPS: what a client trusts to reach it (and presents, under mTLS).
    ssl_context: ssl.SSLContext | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.ssl_context else 'http'}://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        env = {
            **os.environ,
            "ControlPlane__Endpoint": self.control_plane,
            "Ingress__Host": "127.0.0.1",
            "Ingress__Port": str(self.port),
            **self.env,
        }
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "armonik_core.ingress"], env=env, stdout=log, stderr=log, cwd=ROOT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ingress exited: {self.logs()}")
            try:
                verify = self.ssl_context or True
                if httpx.get(self.url + "/readiness", timeout=1, verify=verify).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"ingress not ready after {timeout}s: {self.logs()}")

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def first_event(
    web: GrpcWebClient, results: ArmoniKResults, session_id: str
) -> list[events_common_pb2.EventSubscriptionResponse]:
    """The first event of `session_id` streamed through gRPC-Web (empty if none came): the subscription starts
    in its own time, so results are created (with `results`, over gRPC) until the stream carries one."""
    request = events_common_pb2.EventSubscriptionRequest(session_id=session_id)
    got: list[events_common_pb2.EventSubscriptionResponse] = []

    def listen() -> None:
        answer = web.stream(GET_EVENTS, request, stop_after=1)
        got.extend(answer.parsed(events_common_pb2.EventSubscriptionResponse))

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    for attempt in range(40):
        results.create_results_metadata([f"r{attempt}"], session_id)
        thread.join(0.5)
        if not thread.is_alive():
            break
    return got
