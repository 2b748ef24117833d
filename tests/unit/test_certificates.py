"""The generated authority and certificates: chains that verify, names, usages, sizes, validity, file modes,
and a second run that keeps what is still usable and renews what is not.

Keys are 2048 bits here (ten times faster to generate than upstream's 4096) except in the test of the default
size. One set is generated per module and copied into each test that modifies files.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import DNSName, IPAddress, PolicyBuilder, Store, VerificationError

from armonik_deploy.certificates import (
    CertificateError,
    Certificates,
    ServerIdentity,
    ensure_certificates,
    signed_by,
)
from tests.support import key_pair_files

KEY_SIZE = 2048
CONTROL_PLANE = ServerIdentity("control-plane", ["localhost", "127.0.0.1", "::1", "cp.armonik.svc"])
MONGODB = ServerIdentity("mongodb", ["mongodb.armonik.svc.cluster.local", "10.43.0.7"])


def ensure(folder: Path, **kwargs: object) -> Certificates:
    arguments: dict[str, object] = {
        "servers": [CONTROL_PLANE, MONGODB],
        "clients": ["client"],
        "key_size": KEY_SIZE,
        **kwargs,
    }
    return ensure_certificates(folder, **arguments)  # type: ignore[arg-type]


def certificate(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return ensure(tmp_path_factory.mktemp("certificates") / "certificates")


@pytest.fixture
def copy(generated: Certificates, tmp_path: Path) -> Iterator[Path]:
    """A private copy of the module's set, to modify."""
    folder = tmp_path / "certificates"
    shutil.copytree(generated.folder, folder)
    yield folder


# -- what is generated -----------------------------------------------------------------------------------------
def test_files_and_returned_paths(generated: Certificates) -> None:
    folder = generated.folder
    assert sorted(p.name for p in folder.iterdir()) == key_pair_files(
        "ca", "client", "control-plane", "mongodb"
    )
    assert generated.ca.certificate == folder / "ca.crt" and generated.ca.key == folder / "ca.key"
    assert generated.servers["mongodb"].certificate == folder / "mongodb.crt"
    assert generated.clients["client"].key == folder / "client.key"
    assert generated.regenerated == ("ca", "control-plane", "mongodb", "client")
    for path in folder.glob("*.crt"):
        assert path.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----\n")
    for path in folder.glob("*.key"):
        assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----\n")


def test_keys_are_readable_by_their_owner_only_whatever_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        made = ensure_certificates(tmp_path, [CONTROL_PLANE], ["client"], key_size=KEY_SIZE)
    finally:
        os.umask(previous)
    for pair in (made.ca, made.servers["control-plane"], made.clients["client"]):
        assert stat.S_IMODE(pair.key.stat().st_mode) == 0o600
        assert stat.S_IMODE(pair.certificate.stat().st_mode) == 0o644
    assert not list(tmp_path.glob(".*.tmp"))


def test_the_authority_is_a_self_signed_ca_for_end_entities_only(generated: Certificates) -> None:
    ca = certificate(generated.ca.certificate)
    assert ca.issuer == ca.subject and signed_by(ca, ca)
    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
    assert not usage.value.digital_signature and not usage.value.key_encipherment


def test_every_leaf_is_signed_by_the_authority(generated: Certificates) -> None:
    ca = certificate(generated.ca.certificate)
    public = ca.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    for pair in [*generated.servers.values(), *generated.clients.values()]:
        leaf = certificate(pair.certificate)
        assert leaf.issuer == ca.subject
        assert leaf.signature_hash_algorithm is not None
        # raises InvalidSignature if the authority's key did not sign it
        public.verify(
            leaf.signature, leaf.tbs_certificate_bytes, padding.PKCS1v15(), leaf.signature_hash_algorithm
        )
        assert signed_by(leaf, ca)
        assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        key = serialization.load_pem_private_key(pair.key.read_bytes(), password=None)
        assert key.public_key() == leaf.public_key()


def test_the_chain_verifies_for_each_name_the_server_certificate_covers(generated: Certificates) -> None:
    store = Store([certificate(generated.ca.certificate)])
    leaf = certificate(generated.servers["control-plane"].certificate)
    for name in (
        IPAddress(ipaddress.ip_address("127.0.0.1")),
        IPAddress(ipaddress.ip_address("::1")),
        DNSName("localhost"),
        DNSName("cp.armonik.svc"),
    ):
        chain = PolicyBuilder().store(store).build_server_verifier(name).verify(leaf, [])
        assert chain[-1] == certificate(generated.ca.certificate)
    for wrong in (DNSName("other.example"), IPAddress(ipaddress.ip_address("10.0.0.1"))):
        with pytest.raises(VerificationError):
            PolicyBuilder().store(store).build_server_verifier(wrong).verify(leaf, [])


def test_a_chain_does_not_verify_against_another_authority(generated: Certificates, tmp_path: Path) -> None:
    other = ensure_certificates(tmp_path, [], [], key_size=KEY_SIZE)
    store = Store([certificate(other.ca.certificate)])
    leaf = certificate(generated.servers["control-plane"].certificate)
    with pytest.raises(VerificationError):
        PolicyBuilder().store(store).build_server_verifier(DNSName("localhost")).verify(leaf, [])
    assert not signed_by(leaf, certificate(other.ca.certificate))


def test_subject_alternative_names_are_exactly_the_hosts_given(generated: Certificates) -> None:
    for identity in (CONTROL_PLANE, MONGODB):
        leaf = certificate(generated.servers[identity.name].certificate)
        names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert sorted(names.get_values_for_type(x509.DNSName)) == identity.dns_names
        assert set(names.get_values_for_type(x509.IPAddress)) == set(identity.ip_addresses)
    assert CONTROL_PLANE.dns_names == ["cp.armonik.svc", "localhost"]
    assert CONTROL_PLANE.ip_addresses == [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]


def test_extended_key_usages_separate_servers_from_clients(generated: Certificates) -> None:
    def usages(path: Path) -> list[x509.ObjectIdentifier]:
        return list(certificate(path).extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)

    assert usages(generated.servers["control-plane"].certificate) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert usages(generated.clients["client"].certificate) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    store = Store([certificate(generated.ca.certificate)])
    client = certificate(generated.clients["client"].certificate)
    verified = PolicyBuilder().store(store).build_client_verifier().verify(client, [])
    assert verified.chain[0] == client
    with pytest.raises(VerificationError):  # a client certificate cannot serve
        PolicyBuilder().store(store).build_server_verifier(DNSName("localhost")).verify(client, [])
    server = certificate(generated.servers["control-plane"].certificate)
    with pytest.raises(VerificationError):  # nor a server certificate authenticate a client
        PolicyBuilder().store(store).build_client_verifier().verify(server, [])


def test_a_client_auth_identity_serves_and_authenticates_as_a_client(tmp_path: Path) -> None:
    """A replica-set member's certificate: both usages, so that it verifies as the server of each of its
    names (a wildcard covering one label: each member under the Service) and as a client of its peers."""
    member = ServerIdentity("mongodb", ["rs0.db.svc", "*.rs0.db.svc", "localhost"], client_auth=True)
    made = ensure_certificates(tmp_path, [member], key_size=KEY_SIZE)
    leaf = certificate(made.servers["mongodb"].certificate)
    usage = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    store = Store([certificate(made.ca.certificate)])
    for name in ("rs0.db.svc", "rs0-0.rs0.db.svc", "localhost"):
        PolicyBuilder().store(store).build_server_verifier(DNSName(name)).verify(leaf, [])
    for outside in ("a.rs0-0.rs0.db.svc", "rs0.other.svc"):
        with pytest.raises(VerificationError):
            PolicyBuilder().store(store).build_server_verifier(DNSName(outside)).verify(leaf, [])
    assert PolicyBuilder().store(store).build_client_verifier().verify(leaf, []).chain[0] == leaf


def test_changing_the_usages_renews_that_certificate_only(copy: Path) -> None:
    member = ServerIdentity(MONGODB.name, MONGODB.hosts, client_auth=True)
    again = ensure(copy, servers=[CONTROL_PLANE, member])
    assert again.regenerated == ("mongodb",)
    assert ensure(copy, servers=[CONTROL_PLANE, member]).regenerated == ()
    assert ensure(copy).regenerated == ("mongodb",)  # and back to a server certificate


def test_key_sizes(generated: Certificates, tmp_path: Path) -> None:
    for path in generated.folder.glob("*.key"):
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == KEY_SIZE
    default = ensure_certificates(tmp_path)  # the authority alone: a 4096-bit key takes a second or more
    public = certificate(default.ca.certificate).public_key()
    assert isinstance(public, rsa.RSAPublicKey) and public.key_size == 4096


def test_validity(generated: Certificates, tmp_path: Path) -> None:
    now = dt.datetime.now(dt.timezone.utc)
    ca = certificate(generated.ca.certificate)
    assert now - dt.timedelta(minutes=10) < ca.not_valid_before_utc <= now
    assert abs(ca.not_valid_after_utc - (now + dt.timedelta(days=365))) < dt.timedelta(minutes=5)
    for path in generated.folder.glob("*.crt"):
        leaf = certificate(path)
        assert leaf.not_valid_before_utc >= ca.not_valid_before_utc
        assert leaf.not_valid_after_utc <= ca.not_valid_after_utc
    short = ensure_certificates(tmp_path, [CONTROL_PLANE], key_size=KEY_SIZE, validity_days=40)
    expires = certificate(short.servers["control-plane"].certificate).not_valid_after_utc
    assert abs(expires - (now + dt.timedelta(days=40))) < dt.timedelta(minutes=5)


# -- idempotence and renewal -----------------------------------------------------------------------------------
def test_a_second_run_keeps_every_file(copy: Path) -> None:
    before = contents(copy)
    again = ensure(copy)
    assert again.regenerated == ()
    assert contents(copy) == before


def test_changed_names_renew_that_certificate_only(copy: Path) -> None:
    before = contents(copy)
    moved = ServerIdentity("mongodb", ["mongodb.other.svc", "10.43.0.8"])
    again = ensure(copy, servers=[CONTROL_PLANE, moved])
    assert again.regenerated == ("mongodb",)
    after = contents(copy)
    assert [name for name in before if before[name] != after[name]] == ["mongodb.crt", "mongodb.key"]
    leaf = certificate(again.servers["mongodb"].certificate)
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["mongodb.other.svc"]
    assert signed_by(leaf, certificate(again.ca.certificate))


def test_a_missing_or_damaged_file_renews_its_certificate_only(copy: Path) -> None:
    (copy / "control-plane.key").unlink()
    (copy / "client.crt").write_text("not a certificate")
    before = contents(copy)
    again = ensure(copy)
    assert again.regenerated == ("control-plane", "client")
    assert contents(copy)["ca.crt"] == before["ca.crt"]
    assert contents(copy)["mongodb.crt"] == before["mongodb.crt"]


def test_a_key_of_another_certificate_is_replaced(copy: Path) -> None:
    shutil.copy(copy / "mongodb.key", copy / "control-plane.key")
    assert ensure(copy).regenerated == ("control-plane",)


def test_a_new_authority_resigns_every_leaf(copy: Path) -> None:
    (copy / "ca.key").unlink()
    again = ensure(copy)
    assert again.regenerated == ("ca", "control-plane", "mongodb", "client")
    ca = certificate(again.ca.certificate)
    for path in copy.glob("*.crt"):
        assert signed_by(certificate(path), ca)


def test_everything_is_renewed_within_thirty_days_of_expiry(copy: Path) -> None:
    expiry = certificate(copy / "ca.crt").not_valid_after_utc
    assert ensure(copy, now=expiry - dt.timedelta(days=31)).regenerated == ()
    soon = expiry - dt.timedelta(days=29)
    renewed = ensure(copy, now=soon)
    assert renewed.regenerated == ("ca", "control-plane", "mongodb", "client")
    ca = certificate(renewed.ca.certificate)
    assert ca.not_valid_after_utc > soon + dt.timedelta(days=300)
    leaf = certificate(renewed.servers["control-plane"].certificate)
    store = Store([ca])
    PolicyBuilder().store(store).time(soon).build_server_verifier(DNSName("localhost")).verify(leaf, [])


def test_the_digest_changes_exactly_when_a_certificate_does(copy: Path) -> None:
    first = ensure(copy).digest()
    assert ensure(copy).digest() == first
    (copy / "client.key").unlink()
    assert ensure(copy).digest() != first


# -- bad requests ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("servers", "clients", "message"),
    [
        ([ServerIdentity("cp", ["bad host!"])], [], "neither a DNS name nor an IP address"),
        ([ServerIdentity("cp", [])], [], "at least one host"),
        ([ServerIdentity("ca", ["localhost"])], [], "service name 'ca'"),
        ([ServerIdentity("../x", ["localhost"])], [], "service name"),
        ([ServerIdentity("cp", ["localhost"])], ["cp"], "used twice"),
    ],
)
def test_bad_requests_are_refused_with_the_reason(
    tmp_path: Path, servers: list[ServerIdentity], clients: list[str], message: str
) -> None:
    with pytest.raises(CertificateError, match=message.replace("(", r"\(")):
        ensure_certificates(tmp_path / "certificates", servers, clients, key_size=KEY_SIZE)
    assert not (tmp_path / "certificates").exists()


def test_a_validity_within_the_renewal_margin_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CertificateError, match="must exceed the renewal margin"):
        ensure_certificates(tmp_path, [CONTROL_PLANE], validity_days=30, key_size=KEY_SIZE)


def test_an_unwritable_folder_is_a_certificate_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(CertificateError, match="cannot write certificates in"):
        ensure_certificates(blocker / "certificates", [CONTROL_PLANE], key_size=KEY_SIZE)
