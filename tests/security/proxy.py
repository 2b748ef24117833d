"""A test ingress, as upstream's nginx does it: it terminates the clients' mTLS, takes the CN and SHA-1
fingerprint of the client's certificate, and forwards every call to the control plane with the
`X-Certificate-Client-CN` / `-Fingerprint` headers (headers a client sent under these names are dropped). It
proves itself to the control plane either with its own client certificate (a CN the control plane trusts) or with
the proxy secret (a plain port).

Every method is forwarded as a bidirectional stream of raw bytes: gRPC frames unary and streaming calls alike,
so one handler serves every RPC without knowing its messages.

    python -m tests.security.proxy --port P --upstream HOST:PORT --ca CA --cert CRT --key KEY
        (--upstream-cert CRT --upstream-key KEY | --secret SECRET)
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

DROPPED = (
    "x-certificate-client-cn",
    "x-certificate-client-fingerprint",
    "x-armonik-proxy-secret",
    "user-agent",
)


def client_headers(context: grpc.aio.ServicerContext) -> list[tuple[str, str]]:
    pems = context.auth_context().get("x509_pem_cert")
    if not pems:
        return []
    cert = x509.load_pem_x509_certificate(pems[0])
    cn = str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)
    fingerprint = hashlib.sha1(cert.public_bytes(Encoding.DER)).hexdigest()  # noqa: S324 - nginx's fingerprint
    return [("x-certificate-client-cn", cn), ("x-certificate-client-fingerprint", fingerprint)]


class Forward(grpc.GenericRpcHandler):
    def __init__(self, upstream: grpc.aio.Channel, extra: list[tuple[str, str]]) -> None:
        self._upstream = upstream
        self._extra = extra

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        method = details.method

        async def forward(
            requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
        ) -> AsyncIterator[bytes]:
            metadata = [
                (k, v)
                for k, v in context.invocation_metadata() or ()
                if not k.startswith((":", "grpc-")) and k not in DROPPED
            ]
            call = self._upstream.stream_stream(method)(
                requests, metadata=metadata + client_headers(context) + self._extra
            )
            try:
                async for response in call:
                    yield response
            except grpc.aio.AioRpcError as error:
                await context.abort(error.code(), error.details() or "")

        return grpc.stream_stream_rpc_method_handler(forward)


async def serve(args: Any) -> None:
    ca = Path(args.ca).read_bytes()
    if args.secret:
        upstream = grpc.aio.insecure_channel(args.upstream)
        extra = [("x-armonik-proxy-secret", args.secret)]
    else:
        credentials = grpc.ssl_channel_credentials(
            ca, Path(args.upstream_key).read_bytes(), Path(args.upstream_cert).read_bytes()
        )
        upstream = grpc.aio.secure_channel(args.upstream, credentials)
        extra = []
    server = grpc.aio.server()
    server.add_generic_rpc_handlers([Forward(upstream, extra)])
    creds = grpc.ssl_server_credentials(
        [(Path(args.key).read_bytes(), Path(args.cert).read_bytes())],
        root_certificates=ca,
        require_client_auth=True,
    )
    server.add_secure_port(f"127.0.0.1:{args.port}", creds)
    await server.start()
    await server.wait_for_termination()


def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("--port", "--upstream", "--ca", "--cert", "--key"):
        parser.add_argument(name, required=True)
    for name in ("--upstream-cert", "--upstream-key", "--secret"):
        parser.add_argument(name, default="")
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
