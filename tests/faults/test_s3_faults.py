"""S3 that fails, for real: moto servers of this module's own (authentication switched on, killed, or behind a
relay the test cuts), so the session's shared server is never disturbed. The adapter raises a named error that
says which backend at which address failed doing what to which key, and loses nothing already stored."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest

from armonik_core.adapters.objects.errors import ObjectStorageError, ObjectStorageUnavailable
from armonik_core.adapters.objects.s3 import S3ObjectStorage, S3Settings
from tests.faults.object_storage_support import (
    MIB,
    PAUSE_MS,
    RETRIES,
    multipart_stream,
    stream,
    unique_bucket,
)
from tests.s3_server import ACCESS_KEY, SECRET_KEY, S3Server


@dataclass
class AuthenticatingS3:
    """A moto server that checks credentials, with a user allowed everything and one allowed to read."""

    server: S3Server
    writer: tuple[str, str]
    reader: tuple[str, str]

    def storage(self, credentials: tuple[str, str], bucket: str) -> S3ObjectStorage:
        login, password = credentials
        return S3ObjectStorage(
            S3Settings(
                endpoint_url=self.server.endpoint,
                login=login,
                password=password,
                bucket_name=bucket,
                max_retry=RETRIES,
                ms_after_retry=PAUSE_MS,
            )
        )


def _iam_user(iam: object, name: str, actions: list[str]) -> tuple[str, str]:
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}
    iam.create_user(UserName=name)  # type: ignore[attr-defined]
    iam.put_user_policy(UserName=name, PolicyName="access", PolicyDocument=json.dumps(policy))  # type: ignore[attr-defined]
    key = iam.create_access_key(UserName=name)["AccessKey"]  # type: ignore[attr-defined]
    return key["AccessKeyId"], key["SecretAccessKey"]


def boto3_client(service: str, endpoint: str) -> Any:
    """A boto3 client of moto's server at `endpoint`, as its administrator: to set the server up or look
    behind the adapter's back."""
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )


@pytest.fixture(scope="module")
def authenticating_s3() -> Iterator[AuthenticatingS3]:
    server = S3Server().start()
    try:
        iam = boto3_client("iam", server.endpoint)
        writer = _iam_user(iam, "writer", ["s3:*"])
        # A read-only user. moto names the permission of HEAD on a bucket s3:HeadBucket (AWS: s3:ListBucket),
        # and since 5.2 that of HEAD on an object s3:HeadObject (AWS: s3:GetObject).
        reader = _iam_user(
            iam,
            "reader",
            ["s3:GetObject", "s3:ListBucket", "s3:GetBucketLocation", "s3:HeadBucket", "s3:HeadObject"],
        )
        server.enable_authentication()
        yield AuthenticatingS3(server, writer, reader)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def plain_s3() -> Iterator[S3Server]:
    server = S3Server().start()
    yield server
    server.stop()


def _plain_storage(endpoint: str, bucket: str) -> S3ObjectStorage:
    return S3ObjectStorage(
        S3Settings(
            endpoint_url=endpoint,
            login=ACCESS_KEY,
            password=SECRET_KEY,
            bucket_name=bucket,
            max_retry=RETRIES,
            ms_after_retry=PAUSE_MS,
        )
    )


async def test_s3_read_only_credentials_refuse_writes_and_keep_the_object(
    authenticating_s3: AuthenticatingS3,
) -> None:
    bucket = unique_bucket()
    writer = authenticating_s3.storage(authenticating_s3.writer, bucket)
    reader = authenticating_s3.storage(authenticating_s3.reader, bucket)
    try:
        await writer.put_bytes("result", b"complete")

        with pytest.raises(ObjectStorageError) as small:
            await reader.put_bytes("result", b"overwritten")
        with pytest.raises(ObjectStorageError) as large:  # a multipart upload: refused when it starts
            await reader.put("result", stream(b"a" * (5 * MIB), b"b" * MIB))
        with pytest.raises(ObjectStorageError):
            await reader.put_many({"result": b"overwritten", "other": b"new"})

        endpoint = authenticating_s3.server.endpoint
        for caught in (small, large):
            assert not isinstance(caught.value, ObjectStorageUnavailable)
            assert str(caught.value).startswith(f"S3 at {endpoint} refused writing 'result': AccessDenied")
        assert await reader.get_bytes("result") == b"complete"
        assert await reader.size("other") is None
    finally:
        await writer.close()
        await reader.close()


async def test_s3_unknown_credentials_are_refused_not_unreachable(
    authenticating_s3: AuthenticatingS3,
) -> None:
    bucket = unique_bucket()
    writer = authenticating_s3.storage(authenticating_s3.writer, bucket)
    stranger = authenticating_s3.storage(("nobody", "no-secret"), bucket)
    try:
        await writer.put_bytes("result", b"complete")

        with pytest.raises(ObjectStorageError) as caught:
            await stranger.put_bytes("result", b"overwritten")

        assert not isinstance(caught.value, ObjectStorageUnavailable)
        assert "InvalidAccessKeyId" in str(caught.value)
        assert authenticating_s3.server.endpoint in str(caught.value)
        assert await writer.get_bytes("result") == b"complete"
    finally:
        await writer.close()
        await stranger.close()


@dataclass
class CuttableRelay:
    """A TCP relay in front of a server. `cut()` drops every connection and stops accepting new ones: the
    network failing between the client and a server that keeps running (and keeps its state)."""

    target_port: int
    port: int = 0
    _server: asyncio.Server | None = None
    _writers: list[asyncio.StreamWriter] = field(default_factory=list)

    async def start(self) -> CuttableRelay:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _relay(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers += [client_writer, server_writer]
        await asyncio.gather(
            self._pump(client_reader, server_writer), self._pump(server_reader, client_writer)
        )

    @staticmethod
    async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(1 << 16):
                writer.write(data)
                await writer.drain()
            writer.close()
        except (ConnectionError, OSError):
            writer.transport.abort()

    def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.transport.abort()


async def test_s3_connection_lost_mid_multipart_upload_keeps_the_previous_object(plain_s3: S3Server) -> None:
    bucket = unique_bucket()
    direct = _plain_storage(plain_s3.endpoint, bucket)
    relay = await CuttableRelay(plain_s3.port).start()
    relayed = _plain_storage(f"http://127.0.0.1:{relay.port}", bucket)
    first_part_sent = asyncio.Event()
    try:
        await direct.put_bytes("result", b"complete")

        async def cut_after_first_part() -> None:
            await first_part_sent.wait()
            relay.cut()

        cutter = asyncio.create_task(cut_after_first_part())
        with pytest.raises(ObjectStorageUnavailable) as caught:
            # The first 5 MiB part goes through; the network then fails before the last part.
            await relayed.put("result", multipart_stream(first_part_sent))
        await cutter

        assert str(caught.value).startswith(
            f"S3 at http://127.0.0.1:{relay.port} is unreachable while writing 'result'"
        )
        assert await direct.get_bytes("result") == b"complete"
        assert await direct.size("result") == len(b"complete")
        # The upload the client could not abort stays on the server, invisible to readers, until a lifecycle
        # rule (AbortIncompleteMultipartUpload) or an operator removes it.
        s3 = boto3_client("s3", plain_s3.endpoint)
        uploads = await asyncio.to_thread(s3.list_multipart_uploads, Bucket=bucket)
        assert len(uploads.get("Uploads", [])) == 1
    finally:
        await direct.close()
        await relayed.close()


async def test_s3_server_killed_mid_upload_gives_a_named_error_quickly() -> None:
    """moto keeps its objects in memory, so what a crash does to stored objects cannot be observed with it
    (the contract's failed-write test covers an upload that never completes); what is checked here is that
    the writer and later readers get a clear error in bounded time instead of hanging or failing silently."""
    server = S3Server().start()
    storage = _plain_storage(server.endpoint, unique_bucket())
    first_part_sent = asyncio.Event()
    try:
        await storage.put_bytes("result", b"complete")

        async def kill_after_first_part() -> None:
            await first_part_sent.wait()
            await asyncio.to_thread(server.kill)

        killer = asyncio.create_task(kill_after_first_part())
        started = time.monotonic()
        with pytest.raises(ObjectStorageUnavailable) as writing:
            await storage.put("result", multipart_stream(first_part_sent))
        await killer
        with pytest.raises(ObjectStorageUnavailable) as reading:
            await storage.get_bytes("result")
        elapsed = time.monotonic() - started

        assert str(writing.value).startswith(f"S3 at {server.endpoint} is unreachable while writing 'result'")
        assert str(reading.value).startswith(f"S3 at {server.endpoint} is unreachable while reading 'result'")
        cause = str(writing.value).lower()
        assert any(word in cause for word in ("refused", "reset", "aborted")), "the cause is named"
        assert elapsed < 10, f"took {elapsed:.1f}s to report a dead server"
    finally:
        await storage.close()
        server.stop()
