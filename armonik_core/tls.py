"""TLS and mutual TLS on the control plane's gRPC port, and on the channels other processes open to it.

Upstream ArmoniK terminates TLS in its ingress; a process of this implementation may be reached directly
(gRPC clients reach the control plane's port, not the ingress), so the control plane serves TLS itself when
given a certificate (the ingress reads the same three settings under `Ingress__Tls__*` for its HTTPS port):

- `ControlPlane__Tls__CertificateFile`, `ControlPlane__Tls__KeyFile`: the server certificate (PEM, the chain
  after it if any) and its private key (PEM, unencrypted). Both set: TLS; neither: plain HTTP/2 as before;
  one alone is an error naming the other.
- `ControlPlane__Tls__ClientCaFile`: PEM authorities of the client certificates. When set, every client must
  present a certificate signed by one of them (mTLS); a handshake without one is refused.

A process connecting to the control plane (a polling agent) uses TLS when `ControlPlane__Endpoint` is an
`https://` URL, as the `armonik` SDK and CLI do:

- `ControlPlane__Tls__CaFile`: the authority to trust (default: gRPC's bundled public roots).
- `ControlPlane__Tls__ClientCertificateFile`, `ControlPlane__Tls__ClientKeyFile`: the client certificate
  and key, for mTLS (both or neither).

Files are read and checked when the settings are read, so that a wrong path or a key that does not match its
certificate stops the process at start-up with the variable named, not at the first handshake.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from armonik_core.settings.environment import ConfigurationError, Environment

#: The control plane's server settings (the ingress's are the same under `Ingress__Tls__`).
CERTIFICATE_FILE = "ControlPlane__Tls__CertificateFile"
KEY_FILE = "ControlPlane__Tls__KeyFile"
CLIENT_CA_FILE = "ControlPlane__Tls__ClientCaFile"
CA_FILE = "ControlPlane__Tls__CaFile"
CLIENT_CERTIFICATE_FILE = "ControlPlane__Tls__ClientCertificateFile"
CLIENT_KEY_FILE = "ControlPlane__Tls__ClientKeyFile"

_SCHEMES = ("https://", "http://")


# -- reading and checking PEM files ------------------------------------------------------------------------------
def _read(key: str, path: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise ConfigurationError(f"{key}={path!r}: cannot read the file ({exc.strerror or exc})") from None


def _certificates(key: str, path: str) -> tuple[bytes, list[x509.Certificate]]:
    data = _read(key, path)
    try:
        return data, x509.load_pem_x509_certificates(data)
    except ValueError:
        raise ConfigurationError(f"{key}={path!r}: not a PEM certificate") from None


def _key_pair(
    certificate_key: str, certificate_path: str, key_key: str, key_path: str
) -> tuple[bytes, bytes]:
    """The certificate chain and the private key, checked to belong together."""
    chain, certificates = _certificates(certificate_key, certificate_path)
    data = _read(key_key, key_path)
    try:
        private = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise ConfigurationError(f"{key_key}={key_path!r}: not an unencrypted PEM private key") from None
    if private.public_key() != certificates[0].public_key():
        raise ConfigurationError(
            f"{key_key}={key_path!r}: not the key of the certificate in {certificate_key}={certificate_path!r}"
        )
    return chain, data


def _optional(env: Environment, key: str) -> str | None:
    return env.get(key, "").strip() or None


def _pair_or_none(env: Environment, first: str, second: str, purpose: str) -> tuple[str, str] | None:
    """Two settings that go together: both paths, or None when neither is set."""
    a, b = _optional(env, first), _optional(env, second)
    if a is None and b is None:
        return None
    if a is None or b is None:
        missing, given = (first, second) if a is None else (second, first)
        raise ConfigurationError(f"{given} is set but {missing} is not: {purpose} needs both")
    return a, b


# -- server side ------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ServerTlsSettings:
    """A server's certificate and, for mTLS, the authorities its clients' certificates come from.

    Read from `<Section>__Tls__CertificateFile`, `__KeyFile` and `__ClientCaFile`: the control plane's
    (`ControlPlane`), and the ingress's (`Ingress`) with the same rules."""

    certificate_chain: bytes
    private_key: bytes = field(repr=False)  # never in a log line
    client_ca: bytes | None = None
    certificate_file: str = ""
    key_file: str = ""
    client_ca_file: str | None = None

    @property
    def mtls(self) -> bool:
        return self.client_ca is not None

    @staticmethod
    def from_env(env: Environment, section: str = "ControlPlane") -> ServerTlsSettings | None:
        """None when TLS is off (neither file set)."""
        certificate, key, client_ca = (
            name.replace("ControlPlane__", f"{section}__", 1)
            for name in (CERTIFICATE_FILE, KEY_FILE, CLIENT_CA_FILE)
        )
        client_ca_file = _optional(env, client_ca)
        pair = _pair_or_none(env, certificate, key, "TLS")
        if pair is None:
            if client_ca_file is not None:
                raise ConfigurationError(
                    f"{client_ca} is set but {certificate} and {key} are not: "
                    "client certificates (mTLS) are checked over TLS only"
                )
            return None
        chain, private = _key_pair(certificate, pair[0], key, pair[1])
        authorities = _certificates(client_ca, client_ca_file)[0] if client_ca_file else None
        return ServerTlsSettings(chain, private, authorities, pair[0], pair[1], client_ca_file)


def server_credentials(settings: ServerTlsSettings) -> grpc.ServerCredentials:
    """Credentials for `add_secure_port`: with a client CA, a client certificate is required and verified."""
    return grpc.ssl_server_credentials(
        [(settings.private_key, settings.certificate_chain)],
        root_certificates=settings.client_ca,
        require_client_auth=settings.mtls,
    )


# -- client side ------------------------------------------------------------------------------------------------
def is_https(endpoint: str) -> bool:
    return endpoint.strip().lower().startswith("https://")


def channel_target(endpoint: str) -> str:
    """`host:port` for gRPC from an endpoint written as a URL (`https://host:port/`) or as `host:port`."""
    target = endpoint.strip()
    for scheme in _SCHEMES:
        if target.lower().startswith(scheme):
            target = target[len(scheme) :]
    return target.rstrip("/")


@dataclass(frozen=True, slots=True)
class ClientTlsSettings:
    """What a TLS channel to the control plane trusts and, for mTLS, presents."""

    root_certificates: bytes | None = None
    certificate_chain: bytes | None = None
    private_key: bytes | None = field(default=None, repr=False)  # never in a log line

    @staticmethod
    def from_env(env: Environment, endpoint: str) -> ClientTlsSettings | None:
        """None for a plain channel (`endpoint` is not https://); TLS settings with a plain endpoint are an
        error rather than silently unused."""
        ca_file = _optional(env, CA_FILE)
        pair = _pair_or_none(env, CLIENT_CERTIFICATE_FILE, CLIENT_KEY_FILE, "a client certificate (mTLS)")
        if not is_https(endpoint):
            given = [k for k, v in ((CA_FILE, ca_file), (CLIENT_CERTIFICATE_FILE, pair)) if v is not None]
            if given:
                raise ConfigurationError(
                    f"{given[0]} is set but ControlPlane__Endpoint={endpoint!r} is not an https:// URL: "
                    "write https://host:port to connect with TLS"
                )
            return None
        roots = _certificates(CA_FILE, ca_file)[0] if ca_file else None
        chain, key = (
            _key_pair(CLIENT_CERTIFICATE_FILE, pair[0], CLIENT_KEY_FILE, pair[1]) if pair else (None, None)
        )
        return ClientTlsSettings(roots, chain, key)


def channel_credentials(settings: ClientTlsSettings) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=settings.root_certificates,
        private_key=settings.private_key,
        certificate_chain=settings.certificate_chain,
    )


def sync_channel(
    endpoint: str, tls: ClientTlsSettings | None, options: Sequence[tuple[str, object]] | None = None
) -> grpc.Channel:
    """A blocking channel to `endpoint` (for the official SDK's clients): TLS with `tls`, plain without."""
    target = channel_target(endpoint)
    if tls is None:
        return grpc.insecure_channel(target, options=options)
    return grpc.secure_channel(target, channel_credentials(tls), options=options)


def aio_channel(
    endpoint: str, tls: ClientTlsSettings | None, options: Sequence[tuple[str, object]] | None = None
) -> grpc.aio.Channel:
    """An asyncio channel to `endpoint`: TLS with `tls`, plain HTTP/2 without."""
    target = channel_target(endpoint)
    if tls is None:
        return grpc.aio.insecure_channel(target, options=options)
    return grpc.aio.secure_channel(target, channel_credentials(tls), options=options)
