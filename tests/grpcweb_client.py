"""A gRPC-Web client over HTTP/1.1 or HTTPS (httpx), written from the protocol, as a browser's client speaks it.

It shares no code with the ingress: frames, base64 and trailers are done here again, so a test with it checks
the ingress against the protocol rather than against itself.
"""

from __future__ import annotations

import base64
import re
import ssl
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TypeVar
from urllib.parse import unquote

import httpx
from google.protobuf.message import Message

M = TypeVar("M", bound=Message)
TEXT = "application/grpc-web-text"
BINARY = "application/grpc-web+proto"


@dataclass
class Answer:
    http_status: int
    headers: httpx.Headers
    messages: list[bytes] = field(default_factory=list)
    trailers: dict[str, str] = field(default_factory=dict)
    #: Whether the status came in the headers (a trailers-only answer) rather than in a trailer frame.
    trailers_only: bool = False

    @property
    def status(self) -> int:
        value = self.headers.get("grpc-status") if self.trailers_only else self.trailers.get("grpc-status")
        assert value is not None, f"no grpc-status: headers {dict(self.headers)}, trailers {self.trailers}"
        return int(value)

    @property
    def message(self) -> str:
        source = self.headers if self.trailers_only else self.trailers
        return unquote(source.get("grpc-message", ""))

    def parsed(self, cls: type[M]) -> list[M]:
        out = []
        for raw in self.messages:
            message = cls()
            message.ParseFromString(raw)
            out.append(message)
        return out

    def single(self, cls: type[M]) -> M:
        assert self.status == 0, f"status {self.status}: {self.message}"
        messages = self.parsed(cls)
        assert len(messages) == 1, messages
        return messages[0]


def frames(body: bytes) -> Iterator[tuple[int, bytes]]:
    offset = 0
    while offset < len(body):
        flags, length = struct.unpack_from(">BI", body, offset)
        payload = body[offset + 5 : offset + 5 + length]
        assert len(payload) == length, "truncated frame"
        yield flags, payload
        offset += 5 + length


def decode_text(body: bytes) -> bytes:
    """Base64 answers may be several padded chunks one after the other (one per streamed frame): each run up to
    its padding is decoded on its own (a run without padding is a multiple of 4 and joins the next)."""
    assert len(body) % 4 == 0, "base64 body not a multiple of 4"
    return b"".join(
        base64.b64decode(chunk, validate=True) for chunk in re.findall(rb"[A-Za-z0-9+/]+={0,2}", body)
    )


class GrpcWebClient:
    def __init__(
        self,
        base_url: str,
        mode: str = TEXT,
        headers: dict[str, str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.mode = mode
        self.headers = headers or {}
        # HTTPS: verified with the deployment's authority (and the client certificate under mTLS) in the context.
        self.http = httpx.Client(timeout=30, verify=ssl_context or True)

    def close(self) -> None:
        self.http.close()

    def request_headers(self) -> dict[str, str]:
        return {
            "content-type": self.mode,
            "accept": self.mode,
            "x-grpc-web": "1",
            "x-user-agent": "grpc-web-javascript/0.1",
            **self.headers,
        }

    def body(self, request: Message) -> bytes:
        raw = request.SerializeToString()
        framed = struct.pack(">BI", 0, len(raw)) + raw
        return base64.b64encode(framed) if self.mode == TEXT else framed

    def read(self, response: httpx.Response, content: bytes) -> Answer:
        answer = Answer(response.status_code, response.headers)
        assert response.status_code == 200, (response.status_code, content[:200])
        assert response.headers["content-type"] == self.mode, response.headers
        if "grpc-status" in response.headers:
            answer.trailers_only = True
            assert content == b"", "a trailers-only answer has no body"
            return answer
        body = decode_text(content) if self.mode == TEXT else content
        for flags, payload in frames(body):
            if flags & 0x80:
                for line in payload.decode("latin-1").split("\r\n"):
                    if line:
                        name, _, value = line.partition(":")
                        answer.trailers[name.strip()] = value.strip()
            else:
                assert not answer.trailers, "a message after the trailers"
                answer.messages.append(payload)
        assert answer.trailers, "no trailer frame"
        return answer

    def call(self, path: str, request: Message) -> Answer:
        response = self.http.post(
            self.base_url + path, content=self.body(request), headers=self.request_headers()
        )
        return self.read(response, response.content)

    def stream(self, path: str, request: Message, stop_after: int | None = None) -> Answer:
        """A server-streaming call; with `stop_after`, the connection is dropped after that many messages."""
        with self.http.stream(
            "POST", self.base_url + path, content=self.body(request), headers=self.request_headers()
        ) as response:
            content = b""
            for chunk in response.iter_bytes():
                content += chunk
                if stop_after is not None:
                    body = decode_text(content[: len(content) // 4 * 4]) if self.mode == TEXT else content
                    complete = 0
                    try:
                        complete = sum(1 for flags, _ in frames(body) if not flags & 0x80)
                    except (AssertionError, struct.error):
                        pass  # a frame not yet whole
                    if complete >= stop_after:
                        answer = Answer(response.status_code, response.headers)
                        answer.messages = [p for f, p in frames(body) if not f & 0x80][:stop_after]
                        return answer
            return self.read(response, content)
