"""A control plane with authentication and authorization required, over mTLS, with users of every built-in role
loaded by the init job from an `authentication_datafile` in upstream's format; and one on a plain port that
trusts a proxy by its secret. Both are real processes; clients are real gRPC channels and the official SDK."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from armonik.common.channel import create_channel
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from armonik_deploy.certificates import Certificates, ServerIdentity, ensure_certificates
from tests.conftest import ControlPlaneProcess
from tests.support import internal_errors, run_module

#: Client certificates: CN = the name. `stranger` is signed by the deployment's authority but registered nowhere;
#: `proxy` is the trusted proxy's own certificate.
CLIENTS = ("admin", "submitter", "monitoring", "impersonator", "plain", "stranger", "proxy")
PROXY_SECRET = "a-long-unguessable-proxy-secret-for-the-tests"


def fingerprint(path: Path) -> str:
    """SHA-1 of the DER certificate, lower-case hex (computed here independently of the code under test)."""
    return x509.load_pem_x509_certificate(path.read_bytes()).fingerprint(hashes.SHA1()).hex()


@dataclass
class AuthPki:
    certs: Certificates

    @property
    def ca(self) -> str:
        return str(self.certs.ca.certificate)

    def pair(self, name: str) -> tuple[str, str]:
        p = self.certs.clients[name]
        return str(p.certificate), str(p.key)

    def fingerprint(self, name: str) -> str:
        return fingerprint(self.certs.clients[name].certificate)


def datafile(pki: AuthPki) -> dict[str, object]:
    """Upstream's format. `monitoring` is registered by CN alone (any certificate with that CN)."""
    return {
        "roles_list": [{"RoleName": "Impersonator", "Permissions": ["General:Impersonate:Monitoring"]}],
        "users_list": [
            {"Username": "admin", "Roles": ["Admin"]},
            {"Username": "submitter", "Roles": ["Submitter"]},
            {"Username": "monitoring", "Roles": ["Monitoring"]},
            {"Username": "impersonator", "Roles": ["Impersonator"]},
            {"Username": "nobody", "Roles": []},
        ],
        "certificates_list": [
            {"Username": "admin", "Cn": "admin", "Fingerprint": pki.fingerprint("admin")},
            {"Username": "submitter", "Cn": "submitter", "Fingerprint": pki.fingerprint("submitter").upper()},
            {"Username": "monitoring", "Cn": "monitoring", "Fingerprint": None},
            {
                "Username": "impersonator",
                "Cn": "impersonator",
                "Fingerprint": pki.fingerprint("impersonator"),
            },
            {"Username": "nobody", "Cn": "plain", "Fingerprint": pki.fingerprint("plain")},
        ],
    }


def run_init(data_dir: Path, datafile_path: Path) -> str:
    env = {
        **os.environ,
        "Embedded__DataDirectory": str(data_dir),
        "InitServices__Authentication__DataFile": str(datafile_path),
    }
    done = run_module("armonik_deploy.init_job", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@dataclass
class AuthPlane(ControlPlaneProcess):
    pki: AuthPki | None = None
    tls: bool = True

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}" if self.tls else f"http://127.0.0.1:{self.port}"

    def channel(self, user: str | None = None) -> grpc.Channel:
        if not self.tls:
            return grpc.insecure_channel(self.endpoint)
        assert self.pki is not None
        cert, key = self.pki.pair(user) if user else (None, None)
        return create_channel(
            self.url, certificate_authority=self.pki.ca, client_certificate=cert, client_key=key
        )

    def ready_channel(self) -> grpc.Channel:
        return self.channel("admin")


@pytest.fixture(scope="session")
def auth_pki(tmp_path_factory: pytest.TempPathFactory) -> AuthPki:
    folder = tmp_path_factory.mktemp("auth-pki")
    servers = [ServerIdentity(name, ["localhost", "127.0.0.1"]) for name in ("control-plane", "ingress")]
    return AuthPki(ensure_certificates(folder, servers, list(CLIENTS), key_size=2048))


def start_auth_plane(folder: Path, pki: AuthPki, tls: bool = True, **extra: str) -> AuthPlane:
    data = folder / "data"
    path = folder / "authentication.json"
    path.write_text(json.dumps(datafile(pki)))
    run_init(data, path)
    env = {
        "Authenticator__RequireAuthentication": "true",
        "Authenticator__RequireAuthorization": "true",
    }
    if tls:
        server = pki.certs.servers["control-plane"]
        env.update(
            ControlPlane__Tls__CertificateFile=str(server.certificate),
            ControlPlane__Tls__KeyFile=str(server.key),
            ControlPlane__Tls__ClientCaFile=pki.ca,
            Authenticator__TrustedCommonNames="proxy",
        )
    env.update(extra)
    plane = AuthPlane(data, env=env, pki=pki, tls=tls)
    plane.start()
    return plane


@pytest.fixture(scope="session")
def auth_plane(tmp_path_factory: pytest.TempPathFactory, auth_pki: AuthPki) -> Iterator[AuthPlane]:
    plane = start_auth_plane(tmp_path_factory.mktemp("auth-mtls"), auth_pki)
    yield plane
    plane.stop()
    assert not internal_errors(plane.logs())


@pytest.fixture(scope="session")
def secret_plane(tmp_path_factory: pytest.TempPathFactory, auth_pki: AuthPki) -> Iterator[AuthPlane]:
    """A plain port behind a local proxy that proves itself with a shared secret."""
    plane = start_auth_plane(
        tmp_path_factory.mktemp("auth-secret"), auth_pki, tls=False, Authenticator__ProxySecret=PROXY_SECRET
    )
    yield plane
    plane.stop()
    assert not internal_errors(plane.logs())
