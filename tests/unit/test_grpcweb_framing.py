"""The gRPC-Web wire format of the ingress: frames, trailers, base64 chunks, and what it refuses."""

from __future__ import annotations

import base64

import grpc
import pytest

from armonik_core.ingress import framing
from armonik_core.ingress.grpcweb import Codec, encode_message, parse_timeout, status_pairs


def test_frames_round_trip() -> None:
    body = framing.frame(b"abc") + framing.frame(b"") + framing.trailer_frame([("grpc-status", "0")])
    assert list(framing.parse_frames(body)) == [(False, b"abc"), (False, b""), (True, b"grpc-status: 0\r\n")]
    assert body[:5] == b"\x00\x00\x00\x00\x03"
    assert framing.parse_trailers(b"Grpc-Status: 5\r\ngrpc-message: x: y\r\n") == {
        "grpc-status": "5",
        "grpc-message": "x: y",
    }


def test_single_message() -> None:
    assert framing.single_message(framing.frame(b"m")) == b"m"
    with pytest.raises(framing.FramingError, match="one request message, got 2"):
        framing.single_message(framing.frame(b"a") + framing.frame(b"b"))
    with pytest.raises(framing.FramingError, match="got 0"):
        framing.single_message(b"")


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"\x00\x00\x00", "truncated frame header"),
        (b"\x00\x00\x00\x00\x09ab", "announces 9 bytes, 2 follow"),
        (b"\x01\x00\x00\x00\x01a", "compressed"),
    ],
)
def test_bad_frames(body: bytes, error: str) -> None:
    with pytest.raises(framing.FramingError, match=error):
        list(framing.parse_frames(body))


def test_text_mode_takes_several_padded_chunks() -> None:
    one, two = framing.frame(b"ab"), framing.trailer_frame([("grpc-status", "0")])
    joined = base64.b64encode(one) + base64.b64encode(two)
    assert b"=" in base64.b64encode(one)  # padding in the middle of the body
    assert framing.decode_text(joined) == one + two
    assert framing.decode_text(base64.b64encode(one + two)) == one + two
    assert framing.decode_text(b"AAAA\nAAAA") == b"\x00" * 6  # line breaks are ignored
    for bad, error in [(b"AAA", "multiple of 4"), (b"A=AA", "misplaced"), (b"AA!A", "not base64")]:
        with pytest.raises(framing.FramingError, match=error):
            framing.decode_text(bad)


def test_codec_answers_in_the_request_mode() -> None:
    assert Codec("application/grpc-web-text").content_type == framing.TEXT
    assert Codec("application/grpc-web-text+proto; charset=x").text
    assert Codec("application/grpc-web").content_type == framing.BINARY
    assert Codec("application/grpc-web+proto").encode(b"\x00") == b"\x00"
    assert not Codec("application/json").known


def test_status_and_message_encoding() -> None:
    assert status_pairs(grpc.StatusCode.NOT_FOUND, "no session: abc") == [
        ("grpc-status", "5"),
        ("grpc-message", "no session: abc"),
    ]
    assert encode_message("100% é\n") == "100%25 %C3%A9%0A"
    assert encode_message("trailing ") == "trailing%20"
    assert encode_message("  ") == "%20%20"


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("5S", 5.0), ("100m", 0.1), ("2M", 120.0), ("1H", 3600.0), ("x", None), ("5", None), (None, None)],
)
def test_timeouts(value: str | None, seconds: float | None) -> None:
    assert parse_timeout(value) == (pytest.approx(seconds) if seconds is not None else None)


def test_metadata_forwarded_and_identity_headers_dropped() -> None:
    from starlette.requests import Request

    from armonik_core.ingress.grpcweb import call_metadata

    headers = {
        "content-type": "application/grpc-web-text",
        "x-grpc-web": "1",
        "origin": "http://gui",
        "authorization": "Bearer x",
        "x-certificate-client-cn": "admin",
        "X-Certificate-Client-Fingerprint": "ab:cd",
        "trace-bin": base64.b64encode(b"\x01\x02").decode().rstrip("="),
        "sec-fetch-mode": "cors",
    }
    scope = {"type": "http", "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]}
    assert call_metadata(Request(scope)) == [("authorization", "Bearer x"), ("trace-bin", b"\x01\x02")]
