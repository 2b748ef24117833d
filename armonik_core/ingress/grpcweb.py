"""gRPC-Web to gRPC: a Starlette endpoint that forwards each call to the control plane's client port.

The proxy never decodes a message: the request frame's payload is sent as is through a generic
`channel.unary_unary(path)` / `unary_stream(path)` (no serializers), and each response message is framed
back. The control plane's own checks (authentication and authorization interceptors, input validation)
therefore apply to gRPC-Web exactly as to gRPC, as with upstream's ingress in front of Core.

Answers follow the gRPC-Web protocol as the official JavaScript client and upstream's Admin GUI read it:

- the answer has the request's mode: `application/grpc-web-text` (base64) for a text request, whatever its
  `Accept`, since a binary answer to a text request breaks the GUI; `application/grpc-web+proto` otherwise;
- a call that succeeds, or fails after a message, ends with a trailer frame (`grpc-status`, `grpc-message`
  and the call's trailing metadata);
- a call that fails before any message is a "trailers-only" answer: HTTP 200 with `grpc-status` and
  `grpc-message` in the headers and an empty body, as gRPC servers (and ASP.NET Core's gRPC-Web) do;
- a request the proxy cannot read (bad framing, unknown or client-streaming method) gets a gRPC status
  (INVALID_ARGUMENT, UNIMPLEMENTED) the same way, never a bare HTTP error.

Request headers become call metadata, except HTTP's own and the browser's (content type, origin, cookies,
...), and except the trusted-proxy headers (`X-Certificate-Client-*`, the proxy secret), which a client must
never be able to set through the ingress: the identity headers the control plane receives are the ingress's
own, from the browser's verified client certificate (https.py). `grpc-timeout` becomes the call's deadline.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from urllib.parse import quote

import grpc
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from armonik_core.control_plane.auth.identity import Identity
from armonik_core.control_plane.auth.settings import PROXY_SECRET_HEADER
from armonik_core.ingress import framing
from armonik_core.ingress.caller import CALLER
from armonik_core.ingress.methods import Method

log = logging.getLogger("armonik.ingress")

#: Request headers that are HTTP's or the browser's, not call metadata.
_NOT_METADATA = {
    "accept",
    "accept-encoding",
    "accept-language",
    "authority",
    "cache-control",
    "connection",
    "content-length",
    "content-type",
    "cookie",
    "dnt",
    "host",
    "keep-alive",
    "origin",
    "pragma",
    "priority",
    "proxy-connection",
    "referer",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "x-grpc-web",
    "x-user-agent",
    "grpc-timeout",
    "grpc-encoding",
    "grpc-accept-encoding",
}
#: Headers only a trusted proxy may set (the control plane trusts them from the ingress): never the browser's.
_IDENTITY_PREFIX = "x-certificate-client-"
_PROXY_ONLY = frozenset({PROXY_SECRET_HEADER})
#: Where the caller's certificate goes (upstream's names; `Authenticator__CNHeader` / `FingerprintHeader`).
DEFAULT_IDENTITY_HEADERS = ("x-certificate-client-cn", "x-certificate-client-fingerprint")
_TIMEOUT_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}
#: Response headers a browser script may read (CORS `Expose-Headers`).
EXPOSED_HEADERS = "grpc-status, grpc-message, grpc-status-details-bin"


def parse_timeout(value: str | None) -> float | None:
    """Seconds of a `grpc-timeout` header (`100m`, `5S`), None when absent or malformed."""
    if not value or len(value) < 2 or value[-1] not in _TIMEOUT_UNITS or not value[:-1].isdigit():
        return None
    return int(value[:-1]) * _TIMEOUT_UNITS[value[-1]]


def call_metadata(
    request: Request,
    caller: Identity | None = None,
    identity_headers: tuple[str, str] = DEFAULT_IDENTITY_HEADERS,
) -> list[tuple[str, str | bytes]]:
    """The request's headers as call metadata, the proxy-only ones dropped, then the caller's identity."""
    metadata: list[tuple[str, str | bytes]] = []
    for name, value in request.headers.items():
        if (
            name in _NOT_METADATA
            or name in _PROXY_ONLY
            or name in identity_headers
            or name.startswith((_IDENTITY_PREFIX, "sec-", ":"))
        ):
            continue
        if name.endswith("-bin"):
            try:
                metadata.append((name, base64.b64decode(value + "=" * (-len(value) % 4))))
            except ValueError:
                continue
        else:
            metadata.append((name, value))
    if caller is not None:
        metadata += [(identity_headers[0], caller.cn), (identity_headers[1], caller.fingerprint)]
    return metadata


def _header_value(value: str | bytes) -> str:
    return base64.b64encode(value).decode("ascii") if isinstance(value, bytes) else value


def encode_message(details: str) -> str:
    """`grpc-message` is percent-encoded (gRPC's HTTP/2 spec): printable ASCII stays, the rest is %XX; so do
    spaces at either end, which an HTTP/1 header value cannot hold."""
    encoded = quote(details, safe=" !\"#$&'()*+,-./:;<=>?@[\\]^_`{|}~")
    stripped = encoded.strip(" ")
    if stripped == encoded:
        return encoded
    start = encoded.index(stripped) if stripped else len(encoded)
    return "%20" * start + stripped + "%20" * (len(encoded) - start - len(stripped))


def status_pairs(code: grpc.StatusCode, details: str | None) -> list[tuple[str, str]]:
    pairs = [("grpc-status", str(code.value[0]))]
    if details:
        pairs.append(("grpc-message", encode_message(details)))
    return pairs


def _metadata_pairs(metadata: Sequence[tuple[str, str | bytes]] | None) -> list[tuple[str, str]]:
    return [(k, _header_value(v)) for k, v in (metadata or ()) if not k.startswith("grpc-")]


class Codec:
    """The answer's content type and encoding, from the request's mode."""

    def __init__(self, content_type: str) -> None:
        base = content_type.split(";", 1)[0].strip().lower()
        self.text = base in framing.TEXT_TYPES
        self.known = self.text or base in framing.BINARY_TYPES
        self.content_type = framing.TEXT if self.text else framing.BINARY

    def decode(self, body: bytes) -> bytes:
        return framing.decode_text(body) if self.text else body

    def encode(self, chunk: bytes) -> bytes:
        return base64.b64encode(chunk) if self.text else chunk


def trailers_only(
    codec: Codec,
    code: grpc.StatusCode,
    details: str | None,
    metadata: Sequence[tuple[str, str | bytes]] | None = None,
) -> Response:
    headers = dict(_metadata_pairs(metadata))
    headers.update(status_pairs(code, details))
    return Response(b"", 200, headers=headers, media_type=codec.content_type)


def error_answer(codec: Codec, error: grpc.aio.AioRpcError) -> Response:
    """The trailers-only answer of a call the control plane failed before any message."""
    return trailers_only(codec, error.code(), error.details(), error.trailing_metadata())


def error_trailers(error: grpc.aio.AioRpcError) -> list[tuple[str, str]]:
    """The trailer frame's lines of a call that failed after its first message."""
    return status_pairs(error.code(), error.details()) + _metadata_pairs(error.trailing_metadata())


async def _disconnected(request: Request) -> None:
    """Returns once the client has gone (its body was read: what is left to receive is the disconnect)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


class GrpcWebProxy:
    """Calls the control plane through `channel` for the methods in `methods`."""

    def __init__(
        self,
        channel: grpc.aio.Channel | None,
        methods: dict[str, Method],
        identity_headers: tuple[str, str] = DEFAULT_IDENTITY_HEADERS,
    ) -> None:
        self._channel = channel
        self._methods = methods
        self._identity_headers = identity_headers

    @property
    def channel(self) -> grpc.aio.Channel:
        if self._channel is None:
            raise RuntimeError("the proxy has no channel yet: the application was not started")
        return self._channel

    def open(self, make: Callable[[], grpc.aio.Channel]) -> bool:
        """Open the channel with `make` unless one was given; whether it was opened here."""
        if self._channel is not None:
            return False
        self._channel = make()
        return True

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None

    async def handle(self, request: Request) -> Response:
        codec = Codec(request.headers.get("content-type", ""))
        if not codec.known:
            return Response(
                "expected a gRPC-Web request (application/grpc-web-text or application/grpc-web+proto)\n",
                415,
                media_type="text/plain",
            )
        method = self._methods.get(request.url.path)
        if method is None:
            return trailers_only(codec, grpc.StatusCode.UNIMPLEMENTED, f"no such method: {request.url.path}")
        if method.client_streaming:
            return trailers_only(
                codec, grpc.StatusCode.UNIMPLEMENTED, f"{method.path} streams its requests: use gRPC"
            )
        try:
            message = framing.single_message(codec.decode(await request.body()))
        except framing.FramingError as exc:
            return trailers_only(codec, grpc.StatusCode.INVALID_ARGUMENT, f"bad gRPC-Web body: {exc}")
        metadata = call_metadata(request, CALLER.get(), self._identity_headers)
        timeout = parse_timeout(request.headers.get("grpc-timeout"))
        if method.server_streaming:
            return await self._stream(request, codec, method, message, metadata, timeout)
        return await self._unary(codec, method, message, metadata, timeout)

    async def _unary(
        self,
        codec: Codec,
        method: Method,
        message: bytes,
        metadata: list[tuple[str, str | bytes]],
        timeout: float | None,
    ) -> Response:
        call = self.channel.unary_unary(method.path)(message, metadata=metadata, timeout=timeout)
        try:
            answer = await call
        except grpc.aio.AioRpcError as error:
            return error_answer(codec, error)
        initial = await call.initial_metadata()
        trailing = await call.trailing_metadata()
        body = framing.frame(answer) + framing.trailer_frame(
            status_pairs(grpc.StatusCode.OK, None) + _metadata_pairs(trailing)
        )
        return Response(
            codec.encode(body), 200, headers=dict(_metadata_pairs(initial)), media_type=codec.content_type
        )

    async def _stream(
        self,
        request: Request,
        codec: Codec,
        method: Method,
        message: bytes,
        metadata: list[tuple[str, str | bytes]],
        timeout: float | None,
    ) -> Response:
        call = self.channel.unary_stream(method.path)(message, metadata=metadata, timeout=timeout)
        responses = call.__aiter__()
        # The first message (or the status) decides between a streamed answer and a trailers-only one; a
        # stream may stay silent for long (events of an idle session), and the browser may leave meanwhile.
        waiting = asyncio.ensure_future(responses.__anext__())
        gone = asyncio.ensure_future(_disconnected(request))
        try:
            await asyncio.wait({waiting, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
        if not waiting.done():  # nobody to answer: the control plane's stream ends here
            call.cancel()
            waiting.cancel()
            with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError, StopAsyncIteration):
                await waiting
            return Response(status_code=499)
        try:
            first: bytes | None = waiting.result()
        except StopAsyncIteration:
            first = None
        except grpc.aio.AioRpcError as error:
            return error_answer(codec, error)
        initial = await call.initial_metadata()

        async def body() -> AsyncIterator[bytes]:
            try:
                if first is not None:
                    yield codec.encode(framing.frame(first))
                    async for answer in responses:
                        yield codec.encode(framing.frame(answer))
                status = status_pairs(grpc.StatusCode.OK, None) + _metadata_pairs(
                    await call.trailing_metadata()
                )
            except grpc.aio.AioRpcError as error:
                status = error_trailers(error)
            finally:
                # Runs too when the browser goes away: the control plane's stream ends with it.
                call.cancel()
            yield codec.encode(framing.trailer_frame(status))

        return StreamingResponse(
            body(), 200, headers=dict(_metadata_pairs(initial)), media_type=codec.content_type
        )
