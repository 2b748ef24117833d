"""Redis over TLS and S3 over HTTPS, on servers of this module's own with certificates it issues: the
deployment's authority is trusted, an untrusted certificate is refused with a named error."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from armonik_core.adapters.objects.errors import ObjectStorageError, ObjectStorageUnavailable
from armonik_core.adapters.objects.redis import RedisObjectStorage
from armonik_core.adapters.objects.s3 import S3ObjectStorage
from armonik_core.config import Environment
from tests.faults.object_storage_support import MIB, redis_server, stream, unique_bucket, unique_prefix
from tests.s3_server import ACCESS_KEY, SECRET_KEY, S3Server
from tests.support import free_port


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
        Environment({"Redis__MaxRetry": "0", "Redis__InstanceName": unique_prefix(), **variables})
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
    return S3ObjectStorage.from_env(Environment({"S3__BucketName": unique_bucket(), **settings, **variables}))


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
