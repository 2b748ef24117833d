"""Who the browser is: the verified client certificate of its connection, as the ASGI TLS extension gives it,
or the identity a TLS-terminating proxy in front put in its headers.

`CALLER` holds it for the request being served, set by `https.ClientIdentity`: the gRPC-Web proxy reads it,
and so do the console's blocking calls, which run in worker threads (a worker thread started for a request
copies its context), through `CallerMetadata` on their channel.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from typing import Any, NamedTuple

import grpc
from starlette.types import Scope

from armonik_core.control_plane.auth.identity import Identity, identity_of_pem, normalize_fingerprint

CALLER: ContextVar[Identity | None] = ContextVar("armonik_ingress_caller", default=None)


def client_identity(scope: Scope) -> Identity | None:
    """The verified client certificate of the request's connection (CN, SHA-1 fingerprint), None without one."""
    chain = ((scope.get("extensions") or {}).get("tls") or {}).get("client_cert_chain") or []
    return identity_of_pem(chain[0].encode("ascii")) if chain else None


def header_identity(headers: Mapping[str, str], names: tuple[str, str]) -> Identity | None:
    """The identity a TLS-terminating proxy in front put in `names` (CN, fingerprint), None without both."""
    cn, fingerprint = headers.get(names[0], "").strip(), normalize_fingerprint(headers.get(names[1], ""))
    return Identity(cn, fingerprint) if cn and fingerprint else None


class _Details(NamedTuple):
    method: str
    timeout: float | None
    metadata: Sequence[tuple[str, str | bytes]] | None
    credentials: grpc.CallCredentials | None
    wait_for_ready: bool | None
    compression: grpc.Compression | None


class _CallDetails(_Details, grpc.ClientCallDetails):
    pass


class CallerMetadata(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):  # type: ignore[misc]
    """Adds `CALLER`'s identity to every call of a blocking channel (the console's), as the proxy does to its."""

    def __init__(self, identity_headers: tuple[str, str]) -> None:
        self._headers = identity_headers

    def _details(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        caller = CALLER.get()
        if caller is None:
            return details
        metadata = [(k, v) for k, v in (details.metadata or ()) if k not in self._headers]
        metadata += [(self._headers[0], caller.cn), (self._headers[1], caller.fingerprint)]
        return _CallDetails(
            details.method,
            details.timeout,
            metadata,
            details.credentials,
            getattr(details, "wait_for_ready", None),
            getattr(details, "compression", None),
        )

    def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return continuation(self._details(client_call_details), request)

    def intercept_unary_stream(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return continuation(self._details(client_call_details), request)
