"""Every RPC of the client services, called with an empty request through a raw gRPC channel, and the status it
ends with: what the tests use to see that a call is refused (or not) before its handler looks at the request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import message_factory

from armonik_core.services.client_api import CLIENT_SERVICES

#: The client services' proto modules (the same list the control plane serves).
MODULES = [module for module, _ in CLIENT_SERVICES]


@dataclass(frozen=True)
class Rpc:
    service: str  # the proto's short name: Sessions, HealthChecksService, ...
    name: str
    path: str
    request: Any
    client_streaming: bool
    server_streaming: bool

    def __str__(self) -> str:
        return f"{self.service}.{self.name}"


def client_rpcs() -> list[Rpc]:
    found = []
    for module in MODULES:
        for service in module.DESCRIPTOR.services_by_name.values():
            for m in service.methods:
                request = message_factory.GetMessageClass(m.input_type)
                path = f"/{service.full_name}/{m.name}"
                found.append(Rpc(service.name, m.name, path, request, m.client_streaming, m.server_streaming))
    return found


@dataclass(frozen=True)
class Outcome:
    code: grpc.StatusCode
    details: str


def call(channel: grpc.Channel, rpc: Rpc, metadata: list[tuple[str, str]] | None = None) -> Outcome:
    """Call `rpc` with one empty request; a streamed answer is read to its first message (or for 3 s)."""
    kw: dict[str, Any] = {"request_serializer": rpc.request.SerializeToString, "response_deserializer": bytes}
    request = rpc.request()
    try:
        if rpc.client_streaming and rpc.server_streaming:
            stream = channel.stream_stream(rpc.path, **kw)(iter([request]), metadata=metadata, timeout=3)
            next(iter(stream), None)
        elif rpc.client_streaming:
            channel.stream_unary(rpc.path, **kw)(iter([request]), metadata=metadata, timeout=10)
        elif rpc.server_streaming:
            stream = channel.unary_stream(rpc.path, **kw)(request, metadata=metadata, timeout=3)
            next(iter(stream), None)
        else:
            channel.unary_unary(rpc.path, **kw)(request, metadata=metadata, timeout=10)
    except grpc.RpcError as error:
        return Outcome(error.code(), error.details() or "")
    return Outcome(grpc.StatusCode.OK, "")


REFUSALS = (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)
