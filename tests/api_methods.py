"""Every method of every client service of the official API, from the `armonik` package's descriptors, and
calls that send raw bytes to any of them (what a client with a corrupt encoder, or an attacker, sends)."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator
from dataclasses import dataclass

import armonik.protogen.client as client_protos
import grpc
from google.protobuf.descriptor import MethodDescriptor

#: Services of the package the control plane does not serve at all (the legacy Submitter).
NOT_SERVED = frozenset({"armonik.api.grpc.v1.submitter.Submitter"})
#: Methods the control plane serves as UNIMPLEMENTED (legacy; superseded by Events.GetEvents).
UNIMPLEMENTED = frozenset({"Results.WatchResults"})


@dataclass(frozen=True)
class ApiMethod:
    descriptor: MethodDescriptor

    @property
    def name(self) -> str:
        return f"{self.descriptor.containing_service.name}.{self.descriptor.name}"

    @property
    def path(self) -> str:
        return f"/{self.descriptor.containing_service.full_name}/{self.descriptor.name}"

    @property
    def served(self) -> bool:
        return self.descriptor.containing_service.full_name not in NOT_SERVED

    @property
    def implemented(self) -> bool:
        return self.served and self.name not in UNIMPLEMENTED

    def __str__(self) -> str:
        return self.name


def client_methods() -> list[ApiMethod]:
    methods = []
    for module in pkgutil.iter_modules(client_protos.__path__):
        if not module.name.endswith("_service_pb2"):
            continue
        protos = importlib.import_module(f"{client_protos.__name__}.{module.name}")
        for service in protos.DESCRIPTOR.services_by_name.values():
            methods.extend(ApiMethod(method) for method in service.methods)
    return sorted(methods, key=lambda m: m.name)


def call_raw(
    channel: grpc.Channel, method: ApiMethod, messages: list[bytes], timeout: float = 10.0
) -> tuple[grpc.StatusCode, str]:
    """Send `messages` (one for a unary request) as raw bytes; the call's final status and details."""
    desc = method.descriptor
    try:
        if desc.client_streaming:
            requests: Iterator[bytes] = iter(messages)
            if desc.server_streaming:
                for _ in channel.stream_stream(method.path)(requests, timeout=timeout):
                    pass
            else:
                channel.stream_unary(method.path)(requests, timeout=timeout)
        elif desc.server_streaming:
            for _ in channel.unary_stream(method.path)(messages[0], timeout=timeout):
                pass
        else:
            channel.unary_unary(method.path)(messages[0], timeout=timeout)
    except grpc.RpcError as exc:
        return exc.code(), exc.details() or ""
    return grpc.StatusCode.OK, ""
