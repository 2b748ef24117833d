"""HTTPS on the ingress, and who the browser is: its client certificate, passed on as a trusted proxy does.

uvicorn terminates TLS with the ingress's certificate (`Ingress__Tls__CertificateFile` / `KeyFile`). With
`Ingress__Tls__ClientCaFile` (mTLS), every browser is asked for a certificate, and one that those authorities
did not sign fails the handshake. A browser that has none still completes it (`CERT_OPTIONAL`), so that
`ClientIdentity` can answer with a page saying which certificate to install (gRPC-Web calls get
UNAUTHENTICATED) rather than with a handshake failure the browser reports as a bare error code. Only the
health endpoints answer without a certificate: they say whether the ingress and the control plane are up,
nothing more.

The verified certificate becomes the caller's identity (CN and SHA-1 fingerprint, as upstream's nginx gives
them in `X-Certificate-Client-CN` / `-Fingerprint`), which the gRPC-Web proxy and the console send to the
control plane. The control plane believes those headers only from a proxy it trusts, the ingress's own
certificate (CN `armonik-ingress`); a browser's own headers of that name are dropped by the proxy, so a
browser can never name someone else.

uvicorn does not give the application the connection's certificate (it does not implement the ASGI TLS
extension), so `peer_certificate_protocol` derives its HTTP protocol class and adds the extension's
`client_cert_chain` to the scope of every request of a connection that presented one; everything above reads
the scope as the ASGI specification defines it.

On Kubernetes, nginx terminates TLS in front of the ingress (in the same pod) and sets the identity headers
itself, as upstream's does; the ingress then listens on the pod's loopback only and takes the identity from
those headers (`Ingress__TrustProxyIdentityHeaders`).
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import grpc
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from armonik_core.ingress.caller import CALLER, client_identity, header_identity
from armonik_core.ingress.grpcweb import Codec, trailers_only
from armonik_core.tls import ServerTlsSettings

#: Paths answered without a client certificate: probes (a kubelet, the local supervisor) have none.
HEALTH_PATHS = frozenset({"/healthz", "/liveness", "/readiness"})
REQUIRED = (
    "a client certificate is required: this ingress checks client certificates (ingress.mtls = true); "
    "install a certificate signed by the deployment's authority in the browser (locally: "
    "generated/certificates/user-<name>.crt and .key) and open the page again"
)


def uvicorn_tls_options(tls: ServerTlsSettings | None) -> dict[str, Any]:
    """The keyword arguments of `uvicorn.Config` for HTTPS (none for plain HTTP)."""
    if tls is None:
        return {}
    options: dict[str, Any] = {"ssl_certfile": tls.certificate_file, "ssl_keyfile": tls.key_file}
    if tls.client_ca_file:
        options.update(ssl_ca_certs=tls.client_ca_file, ssl_cert_reqs=ssl.CERT_OPTIONAL)
    return options


def peer_certificate_protocol(base: type[asyncio.Protocol]) -> type[asyncio.Protocol]:
    """`base` (one of uvicorn's HTTP protocols), adding the ASGI TLS extension to each request's scope."""

    class PeerCertificateProtocol(base):  # type: ignore[valid-type, misc]
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            ssl_object = transport.get_extra_info("ssl_object")
            der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
            if der:  # verified: an unverifiable certificate never completes the handshake
                app: ASGIApp = getattr(self, "app")  # noqa: B009 (set by uvicorn's protocol)
                self.app = _with_tls_extension(app, ssl.DER_cert_to_PEM_cert(der))

    return PeerCertificateProtocol


def _with_tls_extension(app: ASGIApp, pem: str) -> ASGIApp:
    async def with_certificate(scope: Scope, receive: Receive, send: Send) -> None:
        extensions = dict(scope.get("extensions") or {})
        extensions["tls"] = {
            "server_cert": None,
            "client_cert_chain": [pem],
            "client_cert_name": None,
            "client_cert_error": None,
            "tls_version": None,
            "cipher_suite": None,
        }
        scope["extensions"] = extensions
        await app(scope, receive, send)

    return with_certificate


class ClientIdentity:
    """Who each request comes from, in `CALLER` for the proxy and the console: the connection's verified
    certificate or, behind a TLS-terminating proxy in front (`from_headers`: nginx in the same pod on
    Kubernetes), the identity headers that proxy set. With `required` (mTLS), every request but the health
    endpoints without one is refused."""

    def __init__(self, app: ASGIApp, required: bool, from_headers: tuple[str, str] | None) -> None:
        self.app = app
        self.required = required
        self.from_headers = from_headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        identity = (
            header_identity(Headers(scope=scope), self.from_headers)
            if self.from_headers
            else client_identity(scope)
        )
        if identity is None and self.required and scope["path"] not in HEALTH_PATHS:
            await _refusal(Request(scope))(scope, receive, send)
            return
        token = CALLER.set(identity)
        try:
            await self.app(scope, receive, send)
        finally:
            CALLER.reset(token)


def _refusal(request: Request) -> Response:
    codec = Codec(request.headers.get("content-type", ""))
    if codec.known:
        return trailers_only(codec, grpc.StatusCode.UNAUTHENTICATED, REQUIRED)
    return PlainTextResponse(REQUIRED + "\n", 403)
