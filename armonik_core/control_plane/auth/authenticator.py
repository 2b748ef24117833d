"""The check every client call goes through: who is calling, which user that is, and whether the user may call
the method. A plain function of (method, metadata, peer certificate), so that the gRPC interceptor and a
gRPC-Web front end run the same check.

Identity, in order (see settings.py for why headers need a trusted proxy):
1. the `X-Certificate-Client-CN` and `-Fingerprint` headers, when the caller is a trusted proxy (its mTLS
   certificate's CN is in `Authenticator__TrustedCommonNames`, or it sent `Authenticator__ProxySecret`);
2. else the client certificate of the connection (mTLS); headers from anyone else are ignored, as upstream's
   nginx ignores them from a client whose CN it does not trust.
Then the certificate table gives the user (exact CN + fingerprint first, then an entry with the CN alone), then
impersonation (`X-Impersonate-Username` / `X-Impersonate-Id`) as upstream: the caller needs
`General:Impersonate:<Role>` for every role of the user impersonated, and becomes that user. Failures are
UNAUTHENTICATED; a missing permission is PERMISSION_DENIED; each message says what is missing.

Speed: users are read from the store into memory (`Directory`) and read again in the background every
`Authenticator__CacheSeconds`; the outcome of each (identity, headers) pair is cached until then. A call costs a
dictionary lookup, never a database read.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

import grpc

from armonik_core.adapters.state.auth_base import AuthStore
from armonik_core.control_plane.auth.identity import Identity, normalize_fingerprint
from armonik_core.control_plane.auth.permissions import IMPERSONATE, METHOD_PERMISSIONS, all_permissions
from armonik_core.control_plane.auth.settings import PROXY_SECRET_HEADER, AuthSettings
from armonik_core.control_plane.auth.users import Directory, User
from armonik_core.domain.auth import AuthTables

log = logging.getLogger("armonik.control_plane.auth")

#: Who every call runs as when authentication is off (upstream's answer: every permission).
ANONYMOUS = User.of("Anonymous", (), all_permissions())
#: An unknown certificate reads the store again at most this often (a user just registered gets in at once).
MISS_RELOAD_SECONDS = 1.0
CACHE_LIMIT = 4096


class AuthError(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _unauthenticated(message: str) -> AuthError:
    return AuthError(grpc.StatusCode.UNAUTHENTICATED, message)


@dataclass(frozen=True, slots=True)
class _Key:
    peer: Identity | None
    trusted: bool
    cn: str
    fingerprint: str
    impersonate_id: str
    impersonate_username: str


class Authenticator:
    def __init__(self, settings: AuthSettings, store: AuthStore | None) -> None:
        self.settings = settings
        self._store = store
        self._directory = Directory(AuthTables())
        self._loaded_at = -1e9
        self._refresh: asyncio.Task[None] | None = None
        self._cache: dict[_Key, User] = {}

    @property
    def enabled(self) -> bool:
        return self.settings.require_authentication

    async def start(self) -> None:
        if self.enabled:
            await self._reload()

    async def close(self) -> None:
        if self._refresh is not None:
            self._refresh.cancel()
        if self._store is not None:
            await self._store.close()

    async def _reload(self) -> None:
        if self._store is None:
            return
        tables, ids = await self._store.load()
        self._directory = Directory(tables, ids)
        self._cache = {}
        self._loaded_at = time.monotonic()

    async def _background_reload(self) -> None:
        try:
            await self._reload()
        except Exception:  # the previous copy stays in use; the next call tries again
            log.warning("cannot read the users, roles and certificates; the copy in memory stays in use")
            self._loaded_at = time.monotonic()

    def _maybe_refresh(self) -> None:
        stale = time.monotonic() - self._loaded_at > self.settings.cache_seconds
        if stale and (self._refresh is None or self._refresh.done()):
            self._refresh = asyncio.get_running_loop().create_task(self._background_reload())

    # -- the check -----------------------------------------------------------------------------------------------
    async def authenticate(self, method: str, metadata: Mapping[str, str], peer: Identity | None) -> User:
        """The user `method` runs as, or AuthError. `metadata`: lower-case header names -> first value;
        `peer`: the connection's verified client certificate (None without mTLS)."""
        if not self.enabled:
            return ANONYMOUS
        self._maybe_refresh()
        key = self._key(metadata, peer)
        user = self._cache.get(key)
        if user is None:
            user = await self._resolve(key)
            if len(self._cache) >= CACHE_LIMIT:
                self._cache.clear()
            self._cache[key] = user
        permission = METHOD_PERMISSIONS.get(method)
        if self.settings.authorization and permission is not None and permission not in user.granted:
            raise AuthError(
                grpc.StatusCode.PERMISSION_DENIED, f"user {user.username} lacks permission {permission}"
            )
        return user

    def _key(self, metadata: Mapping[str, str], peer: Identity | None) -> _Key:
        s = self.settings
        return _Key(
            peer,
            self._trusted(metadata, peer),
            metadata.get(s.cn_header, "").strip(),
            normalize_fingerprint(metadata.get(s.fingerprint_header, "")),
            metadata.get(s.impersonation_id_header, "").strip(),
            metadata.get(s.impersonation_username_header, "").strip(),
        )

    def _trusted(self, metadata: Mapping[str, str], peer: Identity | None) -> bool:
        if peer is not None and peer.cn in self.settings.trusted_common_names:
            return True
        secret = self.settings.proxy_secret
        given = metadata.get(PROXY_SECRET_HEADER, "")
        return bool(secret) and bool(given) and hmac.compare_digest(given.encode(), secret.encode())

    def _identity(self, key: _Key) -> Identity:
        s = self.settings
        if key.cn and key.fingerprint and key.trusted:
            return Identity(key.cn, key.fingerprint)
        if key.peer is not None:
            return key.peer
        if key.cn or key.fingerprint:
            raise _unauthenticated(
                f"no client certificate, and the {s.cn_header} / {s.fingerprint_header} headers are accepted only "
                "from a trusted proxy (a client certificate with a CN in Authenticator__TrustedCommonNames, or "
                "the proxy secret)"
            )
        raise _unauthenticated(
            "no client certificate or trusted proxy header: authentication is required; connect with mTLS and a "
            "registered client certificate"
        )

    async def _resolve(self, key: _Key) -> User:
        identity = self._identity(key)
        user = self._directory.by_certificate(identity)
        if user is None and time.monotonic() - self._loaded_at > MISS_RELOAD_SECONDS:
            await self._reload()
            user = self._directory.by_certificate(identity)
        if user is None:
            raise _unauthenticated(f"{identity.describe()} is not registered")
        if key.impersonate_id or key.impersonate_username:
            user = self._impersonate(user, key)
        return user

    def _impersonate(self, user: User, key: _Key) -> User:
        if IMPERSONATE not in user.granted:
            raise _unauthenticated(
                f"user {user.username} cannot impersonate: it lacks permission {IMPERSONATE}"
            )
        # Upstream: the id has priority over the name.
        if key.impersonate_id:
            target, named = self._directory.by_id(key.impersonate_id), f"id {key.impersonate_id}"
        else:
            target, named = self._directory.by_username(key.impersonate_username), key.impersonate_username
        if target is None:
            raise _unauthenticated(f"user being impersonated ({named}) does not exist")
        missing = [r for r in target.roles if r not in user.impersonable_roles()]
        if missing:
            needed = ", ".join(f"{IMPERSONATE}:{r}" for r in missing)
            raise _unauthenticated(
                f"user {user.username} may not impersonate {target.username}: it lacks {needed}"
            )
        log.info("impersonation", extra={"user": user.username, "impersonated": target.username})
        return target
