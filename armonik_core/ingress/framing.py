"""The gRPC-Web wire format: length-prefixed frames, the trailer frame, and the base64 text mode.

A gRPC-Web body is a sequence of frames `flags (1 byte) | length (4 bytes, big endian) | payload`; flag bit
0x80 marks the trailer frame, whose payload is HTTP/1 header lines (`grpc-status: 0\\r\\n...`); bit 0x01 marks
a compressed payload (never sent here: the ingress asks for no compression). In `application/grpc-web-text`
the body is base64, and a client may send (and a server may answer) several base64 chunks one after the other,
each with its own padding, so decoding goes chunk by chunk rather than with one `b64decode` of the whole body.

Why a module of our own rather than `sonora`'s protocol helpers: sonora (0.2.3, its last release) pins
`urllib3<2` and pulls aiohttp, which the deployment toolkit's other dependencies do not accept, and its
ASGI text decoder base64-decodes each received chunk on its own, which breaks on a body split at a point that
is not a multiple of four characters. What we need of the format is the sixty lines below, tested on their
own (tests/unit/test_grpcweb_framing.py) and against the official JavaScript client in a browser.
"""

from __future__ import annotations

import base64
import binascii
import struct
from collections.abc import Iterable, Iterator

HEADER = struct.Struct(">BI")
TRAILER_FLAG = 0x80
COMPRESSED_FLAG = 0x01

TEXT = "application/grpc-web-text"
BINARY = "application/grpc-web+proto"
#: Content types a request may have; `application/grpc-web` is the binary mode without a codec suffix.
BINARY_TYPES = ("application/grpc-web", "application/grpc-web+proto")
TEXT_TYPES = ("application/grpc-web-text", "application/grpc-web-text+proto")


class FramingError(ValueError):
    """The body is not a sequence of gRPC-Web frames; the message says what is wrong."""


def frame(payload: bytes, *, trailer: bool = False) -> bytes:
    return HEADER.pack(TRAILER_FLAG if trailer else 0, len(payload)) + payload


def trailer_frame(trailers: Iterable[tuple[str, str]]) -> bytes:
    """The trailer frame: lower-case names, `name: value\\r\\n` lines."""
    block = "".join(f"{name.lower()}: {value}\r\n" for name, value in trailers)
    return frame(block.encode("latin-1"), trailer=True)


def parse_frames(body: bytes) -> Iterator[tuple[bool, bytes]]:
    """(is_trailer, payload) for each frame of a complete body."""
    offset = 0
    while offset < len(body):
        if len(body) - offset < HEADER.size:
            raise FramingError(f"truncated frame header at byte {offset}")
        flags, length = HEADER.unpack_from(body, offset)
        if flags & COMPRESSED_FLAG:
            raise FramingError("compressed frames are not accepted (send grpc-encoding: identity)")
        start = offset + HEADER.size
        if len(body) - start < length:
            raise FramingError(f"frame at byte {offset} announces {length} bytes, {len(body) - start} follow")
        yield bool(flags & TRAILER_FLAG), body[start : start + length]
        offset = start + length


def parse_trailers(payload: bytes) -> dict[str, str]:
    """The trailer frame's lines as a dict (names lower-cased)."""
    trailers: dict[str, str] = {}
    for line in payload.decode("latin-1").split("\r\n"):
        if line:
            name, _, value = line.partition(":")
            trailers[name.strip().lower()] = value.strip()
    return trailers


def decode_text(body: bytes) -> bytes:
    """The bytes of a base64 text body, made of one or more padded chunks."""
    compact = b"".join(body.split())
    if len(compact) % 4:
        raise FramingError("the base64 body's length is not a multiple of 4")
    out = bytearray()
    start = 0
    # A chunk ends at its padding: decode up to each `=` group, then go on after it.
    while start < len(compact):
        pad = compact.find(b"=", start)
        if pad < 0:
            end = len(compact)
        else:
            end = pad + (2 if compact[pad : pad + 2] == b"==" else 1)
            if end % 4:
                raise FramingError("misplaced base64 padding")
        try:
            out += base64.b64decode(compact[start:end], validate=True)
        except binascii.Error as exc:
            raise FramingError(f"not base64: {exc}") from None
        start = end
    return bytes(out)


def single_message(body: bytes) -> bytes:
    """The one request message of a unary or server-streaming call (a trailer frame may not be sent)."""
    messages = [payload for is_trailer, payload in parse_frames(body) if not is_trailer]
    if len(messages) != 1:
        raise FramingError(f"expected one request message, got {len(messages)}")
    return messages[0]
