"""The `Authenticator__*` settings (upstream's names), read without importing what uses them.

Upstream's options: `RequireAuthentication`, `RequireAuthorization` (only meaningful with authentication),
`CNHeader`, `FingerprintHeader`, `ImpersonationUsernameHeader`, `ImpersonationIdHeader`. Upstream reads the
certificate headers from its ingress (nginx) on every call, since nginx terminates TLS; this control plane
terminates TLS itself, so it takes the identity from the connection's client certificate and accepts the headers
only from a proxy it trusts, which two settings of our own name:

- `Authenticator__TrustedCommonNames`: comma-separated CNs; a peer presenting (mTLS) a certificate with one of
  them may name the caller in the headers (ArmoniK.Infra's `authentication.trusted_common_names`).
- `Authenticator__ProxySecret`: for a proxy on a plain-TCP local port (no certificate to present): a caller
  sending this secret in the `X-ArmoniK-Proxy-Secret` header is trusted. Compared in constant time; empty: off.
- `Authenticator__CacheSeconds`: how long a loaded copy of the users, roles and certificates is used before it is
  read again (default 10 s): a change made by the init job reaches a running control plane within that time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from armonik_core.config import ConfigurationError, Environment

PROXY_SECRET_HEADER = "x-armonik-proxy-secret"


@dataclass(frozen=True, slots=True)
class AuthSettings:
    require_authentication: bool = False
    require_authorization: bool = False
    cn_header: str = "x-certificate-client-cn"  # gRPC metadata keys are lower case
    fingerprint_header: str = "x-certificate-client-fingerprint"  # gRPC metadata keys are lower case
    impersonation_username_header: str = "x-impersonate-username"  # gRPC metadata keys are lower case
    impersonation_id_header: str = "x-impersonate-id"  # gRPC metadata keys are lower case
    trusted_common_names: frozenset[str] = frozenset()
    proxy_secret: str = field(default="", repr=False)  # never in a log line
    cache_seconds: float = 10.0

    @property
    def authorization(self) -> bool:
        """Upstream checks permissions only for authenticated users."""
        return self.require_authentication and self.require_authorization

    @staticmethod
    def from_env(env: Environment) -> AuthSettings:
        authentication = env.get_bool("Authenticator__RequireAuthentication", False)
        authorization = env.get_bool("Authenticator__RequireAuthorization", False)
        if authorization and not authentication:
            raise ConfigurationError(
                "Authenticator__RequireAuthorization=true needs Authenticator__RequireAuthentication=true: "
                "permissions are checked for authenticated users only"
            )
        cache = env.get_float("Authenticator__CacheSeconds", 10.0)
        if cache < 0:
            raise ConfigurationError("Authenticator__CacheSeconds must not be negative")
        defaults = AuthSettings()
        names = env.get("Authenticator__TrustedCommonNames", "")
        return AuthSettings(
            require_authentication=authentication,
            require_authorization=authorization,
            cn_header=_header(env, "Authenticator__CNHeader", defaults.cn_header),
            fingerprint_header=_header(env, "Authenticator__FingerprintHeader", defaults.fingerprint_header),
            impersonation_username_header=_header(
                env, "Authenticator__ImpersonationUsernameHeader", defaults.impersonation_username_header
            ),
            impersonation_id_header=_header(
                env, "Authenticator__ImpersonationIdHeader", defaults.impersonation_id_header
            ),
            trusted_common_names=frozenset(n.strip() for n in names.split(",") if n.strip()),
            proxy_secret=env.get("Authenticator__ProxySecret", "").strip(),
            cache_seconds=cache,
        )


def _header(env: Environment, key: str, default: str) -> str:
    """gRPC metadata keys are lower case; an empty value keeps upstream's default header."""
    return (env.get(key, "").strip() or default).lower()
