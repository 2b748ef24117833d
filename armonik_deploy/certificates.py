"""A private certificate authority and the certificates it signs, kept across deployments.

Upstream ArmoniK's Terraform creates, per service, an RSA 4096 key, a self-signed CA and certificates signed by
it (`tls_private_key`, `tls_self_signed_cert`, `tls_locally_signed_cert`), written under
`generated/certificates/`. This module does the same with `cryptography`, for any service: a server
certificate is a name and the host names and addresses clients use to reach it (its subject alternative
names); a client certificate is a name (mTLS).

Files in the folder (PEM; keys are PKCS#8, unencrypted, mode 0600; certificates 0644):

    ca.crt, ca.key                  the authority (clients trust ca.crt)
    <service>.crt, <service>.key    a server certificate (extendedKeyUsage serverAuth; also clientAuth for
                                    an identity with `client_auth`, e.g. a database member that presents
                                    the same certificate to its peers)
    <client>.crt, <client>.key      a client certificate (extendedKeyUsage clientAuth), e.g. client.crt

`ensure_certificates` is idempotent, because a redeploy must not invalidate what clients already hold: a
file set that is still usable is kept. The authority is regenerated when a file is missing or unreadable, its
key does not match it, or it expires within `renew_before_days`; a leaf certificate also when it is not signed
by the current authority, its names or usages changed, or its key size changed. A new authority re-signs every
leaf.

Key size: 4096 bits by default, as upstream; `key_size` lowers it (2048 generates ten times faster).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_VALIDITY_DAYS = 365
DEFAULT_RENEW_BEFORE_DAYS = 30
DEFAULT_KEY_SIZE = 4096
#: Certificates start this much in the past, so that a client whose clock is a little behind accepts them.
CLOCK_SKEW = dt.timedelta(minutes=5)
CA_NAME = "ca"
ORGANIZATION = "ArmoniK"

_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_DNS_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class CertificateError(ValueError):
    """A certificate cannot be made as asked (bad name, bad host, unwritable folder); the message says why."""


@dataclass(frozen=True, slots=True)
class ServerIdentity:
    """A service to certify: `name` gives the file names; `hosts` the DNS names and IP addresses clients
    connect to (each becomes a subject alternative name, which is what TLS clients check; a DNS name may be a
    wildcard `*.<domain>`, covering one label, e.g. each pod under a headless Service).

    `client_auth`: the certificate also authenticates its holder as a client (clientAuth next to
    serverAuth), for a service whose instances connect to each other with the certificate they serve with,
    as MongoDB's replica-set members do."""

    name: str
    hosts: Sequence[str]
    client_auth: bool = False

    @property
    def usages(self) -> tuple[x509.ObjectIdentifier, ...]:
        """The extended key usages of its certificate."""
        if self.client_auth:
            return (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH)
        return (ExtendedKeyUsageOID.SERVER_AUTH,)

    @property
    def dns_names(self) -> list[str]:
        return sorted({h.lower() for h in self.hosts if _as_ip(h) is None})

    @property
    def ip_addresses(self) -> list[IpAddress]:
        return sorted({ip for ip in map(_as_ip, self.hosts) if ip is not None}, key=lambda a: (a.version, a))


@dataclass(frozen=True, slots=True)
class KeyPair:
    """A certificate file and its private key file."""

    certificate: Path
    key: Path


@dataclass(frozen=True, slots=True)
class Certificates:
    """What `ensure_certificates` left in `folder`."""

    folder: Path
    ca: KeyPair
    servers: dict[str, KeyPair] = field(default_factory=dict)
    clients: dict[str, KeyPair] = field(default_factory=dict)
    #: Names (`ca`, services, clients) whose files this call (re)generated; empty when everything was kept.
    regenerated: tuple[str, ...] = ()

    def digest(self) -> str:
        """A short hash of every certificate: it changes exactly when a process using them must reload them."""
        pairs = [self.ca, *self.servers.values(), *self.clients.values()]
        blob = b"".join(pair.certificate.read_bytes() for pair in pairs)
        return hashlib.sha256(blob).hexdigest()[:16]


# -- names ---------------------------------------------------------------------------------------------------
def _as_ip(host: str) -> IpAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _check_host(service: str, host: str) -> None:
    if _as_ip(host) is not None:
        return
    labels = host.rstrip(".").split(".")
    wildcard_ok = labels[0] == "*" and len(labels) > 1
    if not host or not all(_DNS_LABEL.fullmatch(label) for label in labels[1 if wildcard_ok else 0 :]):
        raise CertificateError(f"certificate {service}: {host!r} is neither a DNS name nor an IP address")


def _check_file_name(name: str, kind: str) -> None:
    if not _FILE_NAME.fullmatch(name) or name == CA_NAME:
        raise CertificateError(
            f"{kind} name {name!r}: expected 1-63 letters, digits, '-', '_' or '.', not {CA_NAME!r}"
        )


def _subject_alt_names(identity: ServerIdentity) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in identity.dns_names]
    names += [x509.IPAddress(ip) for ip in identity.ip_addresses]
    return names


def _client_uri(name: str) -> x509.GeneralName:
    """A client's subject alternative name: RFC 5280 verifiers (cryptography's among them) require one."""
    return x509.UniformResourceIdentifier(f"urn:armonik:client:{name}")


# -- files ---------------------------------------------------------------------------------------------------
def _write(path: Path, data: bytes, mode: int) -> None:
    """Replace `path` atomically; the data is never readable with wider permissions than `mode`."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)  # O_CREAT's mode is filtered by the umask, and ignored for an existing file
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    os.replace(temporary, path)


def _store(pair: KeyPair, certificate: x509.Certificate, key: rsa.RSAPrivateKey) -> None:
    pem_key = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _write(pair.key, pem_key, 0o600)
    _write(pair.certificate, certificate.public_bytes(serialization.Encoding.PEM), 0o644)


def _load(pair: KeyPair) -> tuple[x509.Certificate, rsa.RSAPrivateKey] | None:
    """The certificate and key of `pair`, or None when either is missing, unreadable or they do not match."""
    try:
        certificate = x509.load_pem_x509_certificate(pair.certificate.read_bytes())
        key = serialization.load_pem_private_key(pair.key.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return None
    if not isinstance(key, rsa.RSAPrivateKey) or key.public_key() != certificate.public_key():
        return None
    return certificate, key


# -- checks on existing certificates ----------------------------------------------------------------------------
def _expires_soon(certificate: x509.Certificate, renew_before: dt.timedelta, now: dt.datetime) -> bool:
    return certificate.not_valid_after_utc - renew_before <= now or certificate.not_valid_before_utc > now


def signed_by(certificate: x509.Certificate, ca: x509.Certificate) -> bool:
    """Whether `ca` issued `certificate`: same issuer name, and a signature its public key verifies."""
    if certificate.issuer != ca.subject:
        return False
    public = ca.public_key()
    if not isinstance(public, rsa.RSAPublicKey) or certificate.signature_hash_algorithm is None:
        return False
    try:
        public.verify(
            certificate.signature,
            certificate.tbs_certificate_bytes,
            padding.PKCS1v15(),
            certificate.signature_hash_algorithm,
        )
    except InvalidSignature:
        return False
    return True


def _names_of(certificate: x509.Certificate) -> tuple[set[str], set[IpAddress]]:
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set(), set()
    dns = {n.lower() for n in san.get_values_for_type(x509.DNSName)}
    ips = {
        ip
        for ip in san.get_values_for_type(x509.IPAddress)
        if isinstance(ip, (ipaddress.IPv4Address, ipaddress.IPv6Address))  # not a name-constraint network
    }
    return dns, ips


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        return bool(certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _usages_of(certificate: x509.Certificate) -> set[x509.ObjectIdentifier]:
    try:
        return set(certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        return set()


# -- making certificates ----------------------------------------------------------------------------------------
def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _new_key(key_size: int) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=key_size)


#: KeyUsage's flags, all False but those a certificate's kind sets.
_KEY_USAGES = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
    "encipher_only",
    "decipher_only",
)


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    key: rsa.RSAPrivateKey,
    validity: tuple[dt.datetime, dt.datetime],
    ca: bool,
) -> x509.CertificateBuilder:
    """What an authority and an end-entity certificate start from: names, key, validity, and the constraints
    that keep each to its role (an authority signs certificates only, an end entity signs and enciphers)."""
    allowed = {"key_cert_sign", "crl_sign"} if ca else {"digital_signature", "key_encipherment"}
    usage = x509.KeyUsage(**{flag: flag in allowed for flag in _KEY_USAGES})
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(validity[0])
        .not_valid_after(validity[1])
        .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
        .add_extension(usage, critical=True)
    )


def make_ca(
    validity_days: int, key_size: int, now: dt.datetime
) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    """A self-signed authority that can sign end-entity certificates only (path length 0)."""
    key = _new_key(key_size)
    subject = _name(f"ArmoniK Root CA (NonTrusted) {now:%Y-%m-%d %H:%M:%S}")
    validity = (now - CLOCK_SKEW, now + dt.timedelta(days=validity_days))
    certificate = (
        _builder(subject, subject, key, validity, ca=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return certificate, key


def make_leaf(
    ca: tuple[x509.Certificate, rsa.RSAPrivateKey],
    common_name: str,
    usages: Sequence[x509.ObjectIdentifier],
    alt_names: Sequence[x509.GeneralName],
    validity_days: int,
    key_size: int,
    now: dt.datetime,
) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    """An end-entity certificate for `usages` (serverAuth, clientAuth or both), signed by `ca`, never
    outliving it."""
    ca_certificate, ca_key = ca
    key = _new_key(key_size)
    not_after = min(now + dt.timedelta(days=validity_days), ca_certificate.not_valid_after_utc)
    validity = (max(now - CLOCK_SKEW, ca_certificate.not_valid_before_utc), not_after)
    builder = (
        _builder(_name(common_name), ca_certificate.subject, key, validity, ca=False)
        .add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(alt_names)), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


# -- the whole set ----------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Policy:
    validity_days: int
    renew_before: dt.timedelta
    key_size: int
    now: dt.datetime


def _ensure_ca(folder: Path, policy: _Policy) -> tuple[tuple[x509.Certificate, rsa.RSAPrivateKey], bool]:
    pair = KeyPair(folder / f"{CA_NAME}.crt", folder / f"{CA_NAME}.key")
    loaded = _load(pair)
    if loaded is not None:
        # The key size is not checked: changing it must not invalidate the authority clients hold.
        certificate, _ = loaded
        if (
            _is_ca(certificate)
            and signed_by(certificate, certificate)
            and not _expires_soon(certificate, policy.renew_before, policy.now)
        ):
            return loaded, False
    made = make_ca(policy.validity_days, policy.key_size, policy.now)
    _store(pair, *made)
    return made, True


def _leaf_usable(
    loaded: tuple[x509.Certificate, rsa.RSAPrivateKey] | None,
    ca: x509.Certificate,
    usages: Sequence[x509.ObjectIdentifier],
    identity: ServerIdentity | None,
    policy: _Policy,
) -> bool:
    if loaded is None:
        return False
    certificate, key = loaded
    if (
        not signed_by(certificate, ca)
        or key.key_size != policy.key_size
        or _usages_of(certificate) != set(usages)
    ):
        return False
    if _expires_soon(certificate, policy.renew_before, policy.now):
        return False
    if identity is None:
        return True
    return _names_of(certificate) == (set(identity.dns_names), set(identity.ip_addresses))


def _ensure_leaf(
    folder: Path,
    ca: tuple[x509.Certificate, rsa.RSAPrivateKey],
    name: str,
    identity: ServerIdentity | None,
    policy: _Policy,
) -> tuple[KeyPair, bool]:
    pair = KeyPair(folder / f"{name}.crt", folder / f"{name}.key")
    usages = identity.usages if identity else (ExtendedKeyUsageOID.CLIENT_AUTH,)
    if _leaf_usable(_load(pair), ca[0], usages, identity, policy):
        return pair, False
    alt_names = _subject_alt_names(identity) if identity else [_client_uri(name)]
    made = make_leaf(ca, name, usages, alt_names, policy.validity_days, policy.key_size, policy.now)
    _store(pair, *made)
    return pair, True


def _check_request(servers: Sequence[ServerIdentity], clients: Iterable[str], policy: _Policy) -> None:
    if policy.validity_days <= policy.renew_before.days:
        raise CertificateError(
            f"validity of {policy.validity_days} days: must exceed the renewal margin "
            f"({policy.renew_before.days} days), or every deployment would renew the certificates"
        )
    if policy.key_size < 2048:
        raise CertificateError(f"key size {policy.key_size}: at least 2048 bits")
    seen: set[str] = set()
    for name, kind in [*((s.name, "service") for s in servers), *((c, "client") for c in clients)]:
        _check_file_name(name, kind)
        if name in seen:
            raise CertificateError(f"{kind} name {name!r} is used twice (it names the files)")
        seen.add(name)
    for server in servers:
        if not server.hosts:
            raise CertificateError(f"certificate {server.name}: give at least one host name or address")
        for host in server.hosts:
            _check_host(server.name, host)


def ensure_certificates(
    folder: Path,
    servers: Sequence[ServerIdentity] = (),
    clients: Sequence[str] = (),
    *,
    validity_days: int = DEFAULT_VALIDITY_DAYS,
    renew_before_days: int = DEFAULT_RENEW_BEFORE_DAYS,
    key_size: int = DEFAULT_KEY_SIZE,
    now: dt.datetime | None = None,
) -> Certificates:
    """The authority, a server certificate per identity and a client certificate per name, in `folder`:
    kept when still usable, (re)generated otherwise (see the module's docstring)."""
    policy = _Policy(
        validity_days, dt.timedelta(days=renew_before_days), key_size, now or dt.datetime.now(dt.timezone.utc)
    )
    _check_request(servers, clients, policy)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        ca, ca_made = _ensure_ca(folder, policy)
        regenerated = [CA_NAME] if ca_made else []
        made_servers: dict[str, KeyPair] = {}
        for server in servers:
            made_servers[server.name], fresh = _ensure_leaf(folder, ca, server.name, server, policy)
            regenerated += [server.name] if fresh else []
        made_clients: dict[str, KeyPair] = {}
        for client in clients:
            made_clients[client], fresh = _ensure_leaf(folder, ca, client, None, policy)
            regenerated += [client] if fresh else []
    except OSError as exc:
        raise CertificateError(f"cannot write certificates in {folder}: {exc.strerror or exc}") from None
    return Certificates(
        folder=folder,
        ca=KeyPair(folder / f"{CA_NAME}.crt", folder / f"{CA_NAME}.key"),
        servers=made_servers,
        clients=made_clients,
        regenerated=tuple(regenerated),
    )
