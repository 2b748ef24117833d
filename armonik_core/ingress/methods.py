"""Which gRPC methods the ingress passes on, and how each is called, read from the official API's descriptors.

Only the client services the Admin GUI and other browser clients use are reachable through gRPC-Web; the
agents' services (the compute gateway) and the legacy Submitter are not, so a browser never gets a path to
what only agents may do. Client-streaming methods (`Results.UploadResultData`, `Results.WatchResults`) cannot be
carried by gRPC-Web (a browser cannot stream a request body), and are answered UNIMPLEMENTED by the proxy.
"""

from __future__ import annotations

from dataclasses import dataclass

from armonik_core.services.client_api import CLIENT_SERVICES


@dataclass(frozen=True, slots=True)
class Method:
    #: `/armonik.api.grpc.v1.sessions.Sessions/GetSession`
    path: str
    client_streaming: bool
    server_streaming: bool


def client_methods() -> dict[str, Method]:
    """Path -> method, for every method of the client services."""
    methods: dict[str, Method] = {}
    for module, _ in CLIENT_SERVICES:
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                path = f"/{service.full_name}/{method.name}"
                methods[path] = Method(path, method.client_streaming, method.server_streaming)
    return methods
