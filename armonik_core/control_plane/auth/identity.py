"""Who is calling: a certificate's common name (CN) and fingerprint.

The fingerprint is the one upstream's ingress (nginx, `$ssl_client_fingerprint`) passes in
`X-Certificate-Client-Fingerprint` and ArmoniK.Infra stores (`sha1_fingerprint`): the SHA-1 of the certificate's
DER encoding, in hexadecimal. It is compared in lower case without separators, so `AB:CD:...` from another tool
matches too. The certificate of a TLS connection comes from gRPC's auth context (`x509_pem_cert`); its parse is
cached per certificate, since a client reuses one connection and one certificate for many calls.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID


@dataclass(frozen=True, slots=True)
class Identity:
    cn: str
    fingerprint: str

    def describe(self) -> str:
        return f"certificate CN={self.cn} fingerprint={self.fingerprint}"


def normalize_fingerprint(value: str) -> str:
    return value.strip().replace(":", "").lower()


def fingerprint_of(certificate: x509.Certificate) -> str:
    """SHA-1 of the DER encoding, lower-case hexadecimal (as nginx and ArmoniK.Infra give it)."""
    return hashlib.sha1(certificate.public_bytes(Encoding.DER), usedforsecurity=False).hexdigest()


def common_name_of(certificate: x509.Certificate) -> str:
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    value = names[0].value if names else ""
    return value.decode() if isinstance(value, bytes) else value


@lru_cache(maxsize=1024)
def identity_of_pem(pem: bytes) -> Identity | None:
    try:
        certificate = x509.load_pem_x509_certificate(pem)
    except ValueError:
        return None
    return Identity(common_name_of(certificate), fingerprint_of(certificate))


def peer_identity(auth_context: Mapping[str, Sequence[bytes]]) -> Identity | None:
    """The verified client certificate of a gRPC connection (mTLS), None without one. gRPC puts the peer's
    certificate in the auth context only once it verified it against the server's client authorities."""
    pems = auth_context.get("x509_pem_cert")
    return identity_of_pem(bytes(pems[0])) if pems else None
