"""TLS and mTLS of the local deployment's client endpoint, set with upstream's `ingress` keys.

Upstream ArmoniK turns TLS on in its `ingress` block (the nginx in front of the control plane); the same keys
do it here, on both ports clients reach: the control plane serves gRPC clients itself, so TLS applies to its
port (`control_plane.port`, `control_plane_url` becomes `https://127.0.0.1:<port>`), and the ingress serves
browsers HTTPS on `ingress.http_port` (the outputs' `admin_app_url`, `grafana_url` and `seq_web_url` become
https://), requiring a client certificate with mTLS:

    ingress = {
      tls                       = false # clients connect with TLS: the control plane presents a certificate
      mtls                      = false # clients must also present a certificate (needs tls = true)
      generate_client_cert      = true  # armonik-cli.yaml names the generated client certificate (mTLS)
      custom_client_ca_file     = ""    # mTLS: comma-separated PEM files of more client authorities
      certificate_validity_days = 365   # local: validity of the generated authority and certificates
      certificate_key_size      = 4096  # local: RSA key size (2048, 3072 or 4096; 4096 as upstream)
    }

`ingress = null` (the default) or `tls = false` keeps the plain endpoint. The ingress's other keys (image,
ports, limits, ...) are for Kubernetes and ignored here.

With TLS, `deploy` keeps under `<generated>/certificates/` an authority (`ca.crt`), the control plane's
certificate (`control-plane.crt`, for localhost, 127.0.0.1, ::1 and the listen address), the ingress's
(`ingress.crt`, for the same names) and, with mTLS, a client certificate (`client.crt`), which the polling
agents present too, and the ingress's own (`armonik-ingress.crt`, the CN the control plane trusts as a proxy
when authentication is on: the ingress passes on the browser's certificate in `X-Certificate-Client-*`). Existing files are kept while valid, so
clients holding `ca.crt` keep working across redeploys (see armonik_deploy.certificates); when a certificate
is renewed, the processes using it are restarted to load it.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from armonik_deploy.authentication import INGRESS_PROXY, AuthPlan, auth_plan, user_cert_name, write_conf
from armonik_deploy.certificates import (
    DEFAULT_KEY_SIZE,
    DEFAULT_RENEW_BEFORE_DAYS,
    CertificateError,
    Certificates,
    ServerIdentity,
    ensure_certificates,
)
from armonik_deploy.parameters import Parameters, ParametersError
from armonik_deploy.schema import SchemaError, build, constraint, key_path

if TYPE_CHECKING:
    import grpc

    from armonik_deploy.plan import Plan

CERTIFICATES_FOLDER = "certificates"
CONTROL_PLANE = "control-plane"
#: The ingress's HTTPS certificate (the browser's side), for the same names as the control plane's.
INGRESS_SERVER = "ingress"
CLIENT = "client"
#: The ingress's own client certificate (mTLS): its CN is the control plane's trusted proxy under authentication.
INGRESS_CLIENT = INGRESS_PROXY
CLIENT_CA_BUNDLE = "client_ca.crt"
#: Not read by any process: its change (a renewed certificate) makes the supervisor restart those using TLS.
DIGEST_KEY = "ArmoniKDeploy__CertificatesDigest"

#: Keys of upstream's `ingress` variable that have nothing to do with TLS (accepted, used on Kubernetes).
_OTHER_INGRESS_KEYS = {
    "name",
    "service_type",
    "replicas",
    "image",
    "tag",
    "image_pull_policy",
    "http_port",
    "grpc_port",
    "limits",
    "requests",
    "image_pull_secrets",
    "node_selector",
    "annotations",
    "cors_allowed_host",
    "cors_allowed_headers",
    "cors_allowed_methods",
    "cors_preflight_max_age",
}


@dataclass(slots=True)
class IngressTls:
    """The TLS keys of `ingress`, typed (the rest of the block stays as written, for the Kubernetes target)."""

    tls: bool = False
    mtls: bool = False
    generate_client_cert: bool = True
    custom_client_ca_file: str = ""
    # local
    certificate_validity_days: int = field(
        default=365, metadata=constraint(min=DEFAULT_RENEW_BEFORE_DAYS + 1, max=3650)
    )
    certificate_key_size: Literal[2048, 3072, 4096] = 4096

    def validate(self, path: str) -> None:
        if self.mtls and not self.tls:
            raise SchemaError(
                key_path(path, "mtls"), "client certificates are checked over TLS: set tls = true"
            )


def read_ingress_tls(params: Parameters, file: Path) -> IngressTls:
    """The TLS keys of `params.ingress` (defaults when the block is null), or a ParametersError."""
    block: dict[str, Any] = params.ingress or {}
    names = [f.name for f in dataclasses.fields(IngressTls)]
    for key in block:
        close = difflib.get_close_matches(key, names, n=1, cutoff=0.75)
        if key not in names and key not in _OTHER_INGRESS_KEYS and close:
            raise ParametersError(file, key_path("ingress", key), f"unknown key; did you mean '{close[0]}'?")
    try:
        return build(IngressTls, {k: v for k, v in block.items() if k in names}, "ingress")
    except SchemaError as exc:
        raise ParametersError(file, exc.path, exc.message) from None


class CliCredentials(TypedDict, total=False):
    """The certificate entries of armonik-cli.yaml, as keyword arguments of `write_outputs`."""

    certificate_authority: Path
    client_certificate: Path
    client_key: Path


@dataclass(slots=True)
class TlsPlan:
    """Where the certificates of a deployment are, and what they must cover."""

    folder: str
    #: Subject alternative names of the control plane's certificate.
    hosts: list[str]
    mtls: bool
    validity_days: int
    key_size: int = DEFAULT_KEY_SIZE
    #: More authorities whose client certificates are accepted (mTLS).
    custom_client_ca_files: list[str] = field(default_factory=list)
    #: Whether armonik-cli.yaml names the generated client certificate (mTLS).
    cli_client_certificate: bool = True
    #: Users, roles and their certificates (`authentication` block); None: authentication off.
    auth: AuthPlan | None = None

    def __post_init__(self) -> None:
        if isinstance(self.auth, dict):  # read back from the plan's JSON
            self.auth = AuthPlan(**self.auth)

    def path(self, name: str) -> str:
        return str(Path(self.folder) / name)

    @property
    def ca_file(self) -> str:
        return self.path("ca.crt")

    @property
    def client_ca_file(self) -> str:
        """The authorities of client certificates: the generated one, plus the custom ones if any."""
        return self.path(CLIENT_CA_BUNDLE) if self.custom_client_ca_files else self.ca_file

    def _server_env(self, section: str, name: str) -> dict[str, str]:
        env = {
            f"{section}__Tls__CertificateFile": self.path(f"{name}.crt"),
            f"{section}__Tls__KeyFile": self.path(f"{name}.key"),
        }
        if self.mtls:
            env[f"{section}__Tls__ClientCaFile"] = self.client_ca_file
        return env

    def server_env(self) -> dict[str, str]:
        """The control plane's `ControlPlane__Tls__*` settings."""
        return self._server_env("ControlPlane", CONTROL_PLANE)

    def ingress_server_env(self) -> dict[str, str]:
        """The ingress's `Ingress__Tls__*` settings: HTTPS, and with mTLS the browsers' certificates checked
        against the same authorities as the control plane's clients."""
        return self._server_env("Ingress", INGRESS_SERVER)

    def client_env(self, certificate: str = CLIENT) -> dict[str, str]:
        """The settings of a process connecting to the control plane (with an https:// endpoint), under mTLS
        with the client certificate `certificate`."""
        env = {"ControlPlane__Tls__CaFile": self.ca_file}
        if self.mtls:
            env["ControlPlane__Tls__ClientCertificateFile"] = self.path(f"{certificate}.crt")
            env["ControlPlane__Tls__ClientKeyFile"] = self.path(f"{certificate}.key")
        return env

    def ingress_client_env(self) -> dict[str, str]:
        """The ingress's settings to reach the control plane: its own certificate (CN `armonik-ingress`)."""
        return self.client_env(INGRESS_CLIENT)

    def cli_credentials(self) -> CliCredentials:
        """The certificate entries of armonik-cli.yaml (AKCONFIG)."""
        entries = CliCredentials(certificate_authority=Path(self.ca_file))
        user = self.auth.cli_user if self.auth else None
        if self.mtls and user:  # authentication on: the admin's certificate, the agents' is no user
            entries["client_certificate"] = Path(self.path(f"{user_cert_name(user)}.crt"))
            entries["client_key"] = Path(self.path(f"{user_cert_name(user)}.key"))
        elif self.mtls and self.cli_client_certificate:
            entries["client_certificate"] = Path(self.path(f"{CLIENT}.crt"))
            entries["client_key"] = Path(self.path(f"{CLIENT}.key"))
        return entries


def server_hosts(listen_host: str, connect_host: str) -> list[str]:
    """What clients may write to reach the control plane: loopback names, the listen address, and for a
    wildcard listen address the machine's name."""
    hosts = ["localhost", "127.0.0.1", "::1", connect_host]
    if listen_host in ("", "0.0.0.0", "::", "[::]"):
        hosts.append(socket.gethostname())
    else:
        hosts.append(listen_host)
    return list(dict.fromkeys(h.strip("[]") for h in hosts if h))


def tls_plan(
    params: Parameters, file: Path, generated: Path, connect_host: str
) -> tuple[TlsPlan | None, list[str]]:
    """The TLS part of a plan (None: plain endpoint), and warnings; a ParametersError for unusable keys."""
    settings = read_ingress_tls(params, file)
    if not settings.tls:
        auth_plan(params, file, None, False, False)  # authentication without mTLS: the error says so
        return None, []
    base = file.resolve().parent
    custom = [
        str((base / part.strip()).resolve())
        for part in settings.custom_client_ca_file.split(",")
        if part.strip()
    ]
    for path in custom:
        if settings.mtls and not Path(path).is_file():
            raise ParametersError(file, "ingress.custom_client_ca_file", f"no such file: {path}")
    warnings = []
    if settings.mtls and not settings.generate_client_cert and not custom:
        warnings.append(
            "ingress.generate_client_cert = false and no custom_client_ca_file: armonik-cli.yaml names no "
            "client certificate, and only certificates signed by the generated authority are accepted"
        )
    plan = TlsPlan(
        folder=str(generated / CERTIFICATES_FOLDER),
        hosts=server_hosts(params.local.host, connect_host),
        mtls=settings.mtls,
        validity_days=settings.certificate_validity_days,
        key_size=settings.certificate_key_size,
        custom_client_ca_files=custom if settings.mtls else [],
        cli_client_certificate=settings.generate_client_cert,
    )
    plan.auth = auth_plan(params, file, plan.folder, settings.mtls, settings.generate_client_cert)
    return plan, warnings


def prepare_certificates(plan: Plan) -> Certificates | None:
    """Make or keep the certificates `plan` needs, write the client authorities' bundle, and stamp the
    processes using them with the certificates' digest (a renewal then restarts them). Nothing without TLS."""
    tls = plan.tls
    if tls is None:
        return None
    folder = Path(tls.folder)
    certificates = ensure_certificates(
        folder,
        [ServerIdentity(CONTROL_PLANE, tls.hosts), ServerIdentity(INGRESS_SERVER, tls.hosts)],
        (
            [CLIENT, INGRESS_CLIENT] + [user_cert_name(u) for u in tls.auth.generated_users]
            if tls.auth
            else [CLIENT, INGRESS_CLIENT]
        )
        if tls.mtls
        else [],
        validity_days=tls.validity_days,
        key_size=tls.key_size,
    )
    digest = certificates.digest()
    if tls.auth is not None:
        write_conf(tls.auth, folder, folder / f"{CLIENT}.crt")
    if tls.custom_client_ca_files:
        sources = [Path(tls.ca_file), *map(Path, tls.custom_client_ca_files)]
        bundle = _write_bundle(folder / CLIENT_CA_BUNDLE, sources)
        digest = hashlib.sha256(digest.encode() + bundle).hexdigest()[:16]  # an edited custom CA counts too
    for spec in plan.processes:
        if "ControlPlane__Tls__CertificateFile" in spec.env or "ControlPlane__Tls__CaFile" in spec.env:
            spec.env[DIGEST_KEY] = digest
    return certificates


def _write_bundle(path: Path, sources: list[Path]) -> bytes:
    """The authorities of `sources` in one PEM file (what the control plane's ClientCaFile takes)."""
    try:
        bundle = b"".join(source.read_bytes().strip() + b"\n" for source in sources)
        path.write_bytes(bundle)
    except OSError as exc:
        raise CertificateError(f"cannot write the client authorities {path}: {exc}") from None
    return bundle


def channel_credentials(tls: TlsPlan) -> grpc.ChannelCredentials:
    """What a client of this deployment (the health check of `deploy`) connects with."""
    import grpc

    env = tls.client_env()
    key_file, chain_file = (
        env.get("ControlPlane__Tls__ClientKeyFile"),
        env.get("ControlPlane__Tls__ClientCertificateFile"),
    )
    return grpc.ssl_channel_credentials(
        root_certificates=Path(tls.ca_file).read_bytes(),
        private_key=Path(key_file).read_bytes() if key_file else None,
        certificate_chain=Path(chain_file).read_bytes() if chain_file else None,
    )
