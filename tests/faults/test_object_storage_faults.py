"""Object stores that fail: each fault is produced for real on a real server, and the adapter must raise a
named error (`ObjectStorageError`, or `ObjectStorageUnavailable` when the server could not be reached) that
says which backend at which address failed doing what to which key, and lose nothing already stored.

S3 runs on moto servers of their own (authentication switched on, killed, or behind a relay the test cuts),
so the session's shared server is never disturbed. Redis faults that need a server configuration (a memory
limit, a user without write permission) run on a private `redis-server` started for this module, so the shared
Redis is never reconfigured.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import boto3
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from redis.asyncio import Redis

from armonik_core.adapters.objects.errors import ObjectStorageError, ObjectStorageUnavailable
from armonik_core.adapters.objects.redis import RedisObjectStorage, RedisSettings
from armonik_core.adapters.objects.s3 import S3ObjectStorage, S3Settings
from armonik_core.config import ConfigurationError, Environment
from tests.contract.backends.service import in_ci, require_service
from tests.s3_server import ACCESS_KEY, SECRET_KEY, S3Server
from tests.support import free_port

MIB = 1 << 20
#: Fail fast: one retry, 10 ms later (the defaults, 5 retries 500 ms apart, are for production).
RETRIES, PAUSE_MS = 1, 10


async def stream(*parts: bytes, fault: asyncio.Event | None = None) -> AsyncIterator[bytes]:
    """Yield `parts`; before the last one, set `fault` and give the test's fault a moment to happen."""
    for index, part in enumerate(parts):
        if index == len(parts) - 1 and fault is not None:
            fault.set()
            await asyncio.sleep(0.2)
        yield part


def multipart_stream(fault: asyncio.Event) -> AsyncIterator[bytes]:
    """7 MiB in three chunks, so that the fault happens after the first 5 MiB part was uploaded (the
    second chunk makes the part full with more to come) and before the last part."""
    return stream(b"a" * (5 * MIB), b"b" * MIB, b"c" * MIB, fault=fault)


# ---------------------------------------------------------------------------------------------------- S3


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


@pytest.fixture(scope="module")
def authenticating_s3() -> Iterator[AuthenticatingS3]:
    server = S3Server().start()
    try:
        iam = boto3.client(
            "iam",
            endpoint_url=server.endpoint,
            region_name="us-east-1",
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )
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


def _bucket() -> str:
    return f"faults-{uuid.uuid4().hex[:12]}"


async def test_s3_read_only_credentials_refuse_writes_and_keep_the_object(
    authenticating_s3: AuthenticatingS3,
) -> None:
    bucket = _bucket()
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
    bucket = _bucket()
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
    bucket = _bucket()
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
        s3 = boto3.client(
            "s3",
            endpoint_url=plain_s3.endpoint,
            region_name="us-east-1",
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )
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
    storage = _plain_storage(server.endpoint, _bucket())
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


# ------------------------------------------------------------------------------------------------- Redis


@dataclass
class PrivateRedis:
    """A redis-server of this module's own, on a free port, keeping nothing on disk."""

    port: int
    process: subprocess.Popen[bytes]

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def admin(self) -> Redis:
        return Redis(host="127.0.0.1", port=self.port)

    def storage(self, prefix: str, user: str = "", password: str = "") -> RedisObjectStorage:
        return RedisObjectStorage(
            RedisSettings(
                endpoint_url=self.endpoint,
                instance_name=prefix,
                max_retry=RETRIES,
                ms_after_retry=PAUSE_MS,
                user=user,
                password=password,
            )
        )


@contextlib.contextmanager
def redis_server(port: int, *arguments: str) -> Iterator[subprocess.Popen[bytes]]:
    """A redis-server process keeping nothing on disk, once it accepts connections on `port` (which
    `arguments` tell it to listen on, with `--port` or `--tls-port`)."""
    binary = shutil.which("redis-server")
    if binary is None:
        message = "redis-server is not installed"
        if in_ci():
            pytest.fail(f"{message}; CI must have it")
        pytest.skip(message)
    command = [binary, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", *arguments]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"redis-server {' '.join(arguments)} did not start") from None
                time.sleep(0.05)
        yield process
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture(scope="module")
def private_redis() -> Iterator[PrivateRedis]:
    port = free_port()
    with redis_server(port, "--port", str(port)) as process:
        yield PrivateRedis(port, process)


async def close(client: Redis) -> None:
    await client.aclose()  # type: ignore[attr-defined]  # the installed types-redis stubs predate aclose


def _prefix() -> str:
    return f"faults-{uuid.uuid4().hex[:12]}"


async def test_redis_unreachable_gives_a_named_error() -> None:
    port = free_port()  # nothing listens there
    storage = RedisObjectStorage(
        RedisSettings(
            endpoint_url=f"127.0.0.1:{port}", timeout_ms=2000, max_retry=RETRIES, ms_after_retry=PAUSE_MS
        )
    )
    try:
        started = time.monotonic()
        with pytest.raises(ObjectStorageUnavailable) as writing:
            await storage.put_bytes("result", b"data")
        with pytest.raises(ObjectStorageUnavailable) as reading:
            await storage.get_bytes("result")
        with pytest.raises(ObjectStorageUnavailable):
            await storage.size("result")

        assert str(writing.value).startswith(
            f"Redis at 127.0.0.1:{port} is unreachable while writing 'result'"
        )
        assert str(reading.value).startswith(
            f"Redis at 127.0.0.1:{port} is unreachable while reading 'result'"
        )
        assert time.monotonic() - started < 10
    finally:
        await storage.close()


async def test_redis_out_of_memory_refuses_the_write_and_keeps_the_object(
    private_redis: PrivateRedis,
) -> None:
    prefix = _prefix()
    storage = private_redis.storage(prefix)
    admin = private_redis.admin()
    try:
        await storage.put_bytes("result", b"complete")
        used = int((await admin.info("memory"))["used_memory"])
        await admin.config_set("maxmemory-policy", "noeviction")
        await admin.config_set("maxmemory", str(used + 3 * MIB))
        try:
            with pytest.raises(ObjectStorageError) as large:
                await storage.put("result", stream(*[bytes([index]) * MIB for index in range(8)]))
            await admin.config_set("maxmemory", str(used + 64 * 1024))
            with pytest.raises(ObjectStorageError) as small:
                await storage.put_bytes("result", b"x" * 200_000)
        finally:
            await admin.config_set("maxmemory", "0")

        for caught in (large, small):
            assert not isinstance(caught.value, ObjectStorageUnavailable)
            message = str(caught.value)
            assert message.startswith(
                f"Redis at {private_redis.endpoint} refused writing 'result': OutOfMemoryError"
            ), message
        assert await storage.get_bytes("result") == b"complete"
        leftovers = [name async for name in admin.scan_iter(match=f"{prefix}:chunk:*")]
        assert leftovers == [], "the chunks of the refused write were not removed"
    finally:
        await storage.close()
        await close(admin)


async def test_redis_user_without_write_permission_is_refused(private_redis: PrivateRedis) -> None:
    prefix = _prefix()
    admin = private_redis.admin()
    owner = private_redis.storage(prefix)
    await admin.acl_setuser(
        "reader",
        enabled=True,
        passwords=["+reader-secret"],
        keys=["*"],
        categories=["+@read", "+@connection"],
    )
    reader = private_redis.storage(prefix, user="reader", password="reader-secret")
    try:
        await owner.put_bytes("result", b"complete")

        with pytest.raises(ObjectStorageError) as caught:
            await reader.put_bytes("result", b"overwritten")

        assert not isinstance(caught.value, ObjectStorageUnavailable)
        assert str(caught.value).startswith(f"Redis at {private_redis.endpoint} refused writing 'result'")
        assert "permission" in str(caught.value).lower()
        assert await reader.get_bytes("result") == b"complete"
    finally:
        await reader.close()
        await owner.close()
        await admin.acl_deluser("reader")
        await close(admin)


async def test_redis_wrong_password_is_refused_not_unreachable(private_redis: PrivateRedis) -> None:
    storage = private_redis.storage(_prefix(), user="nobody", password="not-the-password")
    try:
        with pytest.raises(ObjectStorageError) as caught:
            await storage.put_bytes("result", b"data")

        assert not isinstance(caught.value, ObjectStorageUnavailable)
        assert str(caught.value).startswith(f"Redis at {private_redis.endpoint} refused writing 'result'")
    finally:
        await storage.close()


async def test_redis_reader_of_a_replaced_object_is_told_not_given_mixed_data() -> None:
    """On the shared Redis: a large object replaced while a reader streams it. The reader must not receive
    the start of one version followed by the rest of another."""
    settings = RedisSettings.from_env(Environment())
    host, port, _ = settings.address()
    require_service("Redis", host, port)
    storage = RedisObjectStorage(RedisSettings(endpoint_url=settings.endpoint_url, instance_name=_prefix()))
    try:
        await storage.put_bytes("result", b"1" * (3 * MIB))
        reading = storage.get("result", MIB)
        first = await anext(reading)

        await storage.put_bytes("result", b"2" * (3 * MIB))

        with pytest.raises(ObjectStorageError, match="replaced or deleted while being read"):
            async for _ in reading:
                pass
        assert first == b"1" * MIB
        assert await storage.get_bytes("result") == b"2" * (3 * MIB)
    finally:
        await storage.delete(["result"])
        await storage.close()


# --------------------------------------------------------------------------------------------------- TLS


@dataclass
class Certificates:
    """A CA of the test's own and a server certificate it issued (PEM files)."""

    ca: Path
    certificate: Path
    key: Path


def issue_certificates(directory: Path, *, ips: list[str], names: list[str]) -> Certificates:
    """A throwaway CA and a server certificate for `ips` and DNS `names`, as a deployment generates them."""
    now = datetime.now(timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ArmoniK test CA (untrusted)")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    alternative_names: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    alternative_names += [x509.DNSName(name) for name in names]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, (names or ips)[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(alternative_names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    files = Certificates(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    files.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.certificate.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return files


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Certificates]]:
    """A Redis serving TLS only, with a certificate issued for another name than 127.0.0.1 (upstream's
    deployment has the same quirk, hence its `AllowHostMismatch` setting)."""
    files = issue_certificates(tmp_path_factory.mktemp("redis-tls"), ips=[], names=["redis.armonik.test"])
    port = free_port()
    tls = ["--tls-cert-file", str(files.certificate), "--tls-key-file", str(files.key)]
    tls += ["--tls-ca-cert-file", str(files.ca), "--tls-auth-clients", "no"]
    with redis_server(port, "--port", "0", "--tls-port", str(port), *tls):
        yield f"127.0.0.1:{port}", files


def _redis_from_env(**variables: str) -> RedisObjectStorage:
    return RedisObjectStorage.from_env(
        Environment({"Redis__MaxRetry": "0", "Redis__InstanceName": _prefix(), **variables})
    )


async def test_redis_over_tls_with_the_deployments_ca(tls_redis: tuple[str, Certificates]) -> None:
    endpoint, files = tls_redis
    storage = _redis_from_env(
        Redis__EndpointUrl=endpoint,
        Redis__Ssl="true",
        Redis__CaPath=str(files.ca),
        Redis__AllowHostMismatch="true",
    )
    try:
        await storage.put("result", stream(b"a" * MIB, b"b" * MIB))

        assert await storage.get_bytes("result") == b"a" * MIB + b"b" * MIB
    finally:
        await storage.delete(["result"])
        await storage.close()


@pytest.mark.parametrize(
    ("trust", "cause"),
    [("no CA", "certificate verify failed"), ("CA, host checked", "match")],
)
async def test_redis_untrusted_certificate_is_refused(
    tls_redis: tuple[str, Certificates], trust: str, cause: str
) -> None:
    endpoint, files = tls_redis
    variables = {"Redis__EndpointUrl": endpoint, "Redis__Ssl": "true"}
    if trust != "no CA":
        variables["Redis__CaPath"] = str(files.ca)  # right CA, but the name is not 127.0.0.1
    storage = _redis_from_env(**variables)
    try:
        with pytest.raises(ObjectStorageError) as caught:
            await storage.put_bytes("result", b"data")

        assert not isinstance(caught.value, ObjectStorageUnavailable), "a retry would not help"
        assert str(caught.value).startswith(f"Redis at {endpoint} refused writing 'result'")
        assert cause in str(caught.value)
    finally:
        await storage.close()


@pytest.fixture(scope="module")
def tls_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[S3Server, Certificates]]:
    files = issue_certificates(tmp_path_factory.mktemp("s3-tls"), ips=["127.0.0.1"], names=["localhost"])
    server = S3Server(tls=(files.certificate, files.key), ca_file=files.ca).start()
    yield server, files
    server.stop()


def _s3_from_env(**variables: str) -> S3ObjectStorage:
    settings = {"S3__Login": ACCESS_KEY, "S3__Password": SECRET_KEY, "S3__MaxRetry": "0"}
    return S3ObjectStorage.from_env(Environment({"S3__BucketName": _bucket(), **settings, **variables}))


async def test_s3_over_https_with_the_deployments_ca(tls_s3: tuple[S3Server, Certificates]) -> None:
    server, files = tls_s3
    storage = _s3_from_env(S3__EndpointUrl=server.endpoint, S3__CaPath=str(files.ca))
    try:
        await storage.put("result", stream(b"a" * (5 * MIB), b"b"))

        assert server.endpoint.startswith("https://")
        assert await storage.get_bytes("result") == b"a" * (5 * MIB) + b"b"
    finally:
        await storage.close()


async def test_s3_untrusted_certificate_is_refused(tls_s3: tuple[S3Server, Certificates]) -> None:
    server, _ = tls_s3
    storage = _s3_from_env(S3__EndpointUrl=server.endpoint)  # the system's CAs do not know the test's CA
    try:
        with pytest.raises(ObjectStorageError) as caught:
            await storage.put_bytes("result", b"data")

        assert not isinstance(caught.value, ObjectStorageUnavailable), "a retry would not help"
        assert str(caught.value).startswith(f"S3 at {server.endpoint} refused writing 'result'")
        assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value)
    finally:
        await storage.close()


# -------------------------------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"S3__EndpointUrl": "ftp://127.0.0.1:9000"}, "S3__EndpointUrl"),
        ({"S3__EndpointUrl": "http://127.0.0.1:9000/bucket"}, "S3__EndpointUrl"),
        ({"S3__CaPath": "/nonexistent/ca.pem"}, "S3__CaPath"),
        ({"S3__MustForcePathStyle": "maybe"}, "S3__MustForcePathStyle"),
        ({"S3__DegreeOfParallelism": "0"}, "S3__DegreeOfParallelism"),
    ],
)
def test_bad_s3_settings_name_the_variable(variables: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigurationError, match=named):
        S3Settings.from_env(Environment(variables))


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"Redis__EndpointUrl": "127.0.0.1:port"}, "Redis__EndpointUrl"),
        ({"Redis__EndpointUrl": "http://127.0.0.1:6379"}, "Redis__EndpointUrl"),
        ({"Redis__Timeout": "30s"}, "Redis__Timeout"),
        ({"Redis__CaPath": "/nonexistent/chain.pem"}, "Redis__CaPath"),
        ({"Redis__Ssl": "yes please"}, "Redis__Ssl"),
    ],
)
def test_bad_redis_settings_name_the_variable(variables: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigurationError, match=named):
        RedisSettings.from_env(Environment(variables))


def test_settings_use_upstream_names_case_insensitively() -> None:
    s3 = S3Settings.from_env(
        Environment(
            {
                "S3__ENDPOINTURL": "https://minio:9000",
                "s3__bucketname": "results",
                "S3__Login": "user",
                "S3__Password": "secret",
                "S3__Region": "eu-west-3",
                "S3__MustForcePathStyle": "false",
            }
        )
    )
    redis = RedisSettings.from_env(
        Environment(
            {"Redis__EndpointUrl": "rediss://cache:6380", "REDIS__INSTANCENAME": "Prod", "Redis__User": "u"}
        )
    )

    assert (s3.endpoint_url, s3.bucket_name, s3.login, s3.password) == (
        "https://minio:9000",
        "results",
        "user",
        "secret",
    )
    assert (s3.region, s3.must_force_path_style) == ("eu-west-3", False)
    assert redis.address() == ("cache", 6380, True)
    assert (redis.instance_name, redis.user, redis.timeout_ms) == ("Prod", "u", 30_000)
    assert S3Settings.from_env(Environment({})).endpoint_url == "http://127.0.0.1:9000"
    assert RedisSettings.from_env(Environment({})).address() == ("127.0.0.1", 6379, False)
