"""Users, roles and certificates: upstream's data model, its `authentication_datafile` JSON, and the lookups.

Upstream keeps three tables (MongoDB collections `RoleData`, `UserData`, `AuthData`):
role (id, `RoleName`, `Permissions`), user (id, `Username`, `Roles` as role ids) and certificate (id, `UserId`,
`Cn`, `Fingerprint`; a null fingerprint matches every certificate with that CN, and an entry with the exact
fingerprint wins over it). ArmoniK.Infra's `authentication_datafile` gives the same with names instead of ids:

    {"roles_list": [{"RoleName": "...", "Permissions": ["Sessions:ListSessions", ...]}],
     "users_list": [{"Username": "...", "Roles": ["..."]}],
     "certificates_list": [{"Username": "...", "Cn": "...", "Fingerprint": "..."}]}

`AuthTables` is that content with names (what the stores save and load); `Directory` is a loaded copy indexed
for the lookups the authenticator makes on every call.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from armonik_core.config import ConfigurationError
from armonik_core.control_plane.auth.identity import Identity, normalize_fingerprint
from armonik_core.control_plane.auth.permissions import IMPERSONATE, base_permission
from armonik_core.domain.auth import AuthTables, CertificateEntry


def check_tables(tables: AuthTables, where: str) -> None:
    """Every user's roles and every certificate's user exist (upstream's init drops such entries silently; a
    deployment here says which)."""
    for user, roles in tables.users.items():
        for role in roles:
            if role not in tables.roles:
                raise ConfigurationError(
                    f"{where}: user {user!r} has the role {role!r}, which is not defined"
                )
    for cert in tables.certificates:
        if cert.username not in tables.users:
            raise ConfigurationError(
                f"{where}: certificate CN={cert.cn} names the unknown user {cert.username!r}"
            )


def _list(data: Mapping[str, Any], key: str, where: str) -> list[Mapping[str, Any]]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ConfigurationError(f"{where}: {key} must be a list of objects")
    return value


def _text(entry: Mapping[str, Any], key: str, where: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"{where}: every entry needs a non-empty {key} (got {entry!r})")
    return value.strip()


def _strings(entry: Mapping[str, Any], key: str, where: str) -> list[str]:
    value = entry.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigurationError(f"{where}: {key} must be a list of strings (got {entry!r})")
    return list(value)


def parse_datafile(text: str, where: str) -> AuthTables:
    """Upstream's authentication JSON (see the module's docstring)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"{where}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigurationError(
            f"{where}: expected an object with roles_list, users_list, certificates_list"
        )
    roles = {
        _text(r, "RoleName", where): _strings(r, "Permissions", where)
        for r in _list(data, "roles_list", where)
    }
    for permissions in roles.values():
        for permission in permissions:
            if not 2 <= len(permission.split(":")) <= 3:
                raise ConfigurationError(f"{where}: {permission!r} is not Service:Method[:Target]")
    users = {
        _text(u, "Username", where): _strings(u, "Roles", where) for u in _list(data, "users_list", where)
    }
    certificates = []
    for c in _list(data, "certificates_list", where):
        fingerprint = c.get("Fingerprint")
        if fingerprint is not None and not isinstance(fingerprint, str):
            raise ConfigurationError(f"{where}: Fingerprint must be a string or null (got {c!r})")
        certificates.append(
            CertificateEntry(
                _text(c, "Username", where),
                _text(c, "Cn", where),
                normalize_fingerprint(fingerprint) if fingerprint and fingerprint.strip() else None,
            )
        )
    return AuthTables(roles, users, certificates)


def to_datafile(tables: AuthTables) -> dict[str, Any]:
    return {
        "roles_list": [{"RoleName": n, "Permissions": p} for n, p in tables.roles.items()],
        "users_list": [{"Username": n, "Roles": r} for n, r in tables.users.items()],
        "certificates_list": [
            {"Username": c.username, "Cn": c.cn, "Fingerprint": c.fingerprint} for c in tables.certificates
        ],
    }


@dataclass(frozen=True, slots=True)
class User:
    """What a call runs as: the user, their roles and the permissions of those roles."""

    username: str
    roles: tuple[str, ...]
    permissions: tuple[str, ...]
    user_id: str = ""
    #: `Service:Method` of every permission (what the authorization check looks up).
    granted: frozenset[str] = frozenset()

    @staticmethod
    def of(username: str, roles: Iterable[str], permissions: Iterable[str], user_id: str = "") -> User:
        perms = tuple(permissions)
        return User(username, tuple(roles), perms, user_id, frozenset(base_permission(p) for p in perms))

    def impersonable_roles(self) -> frozenset[str]:
        """Targets of `General:Impersonate:<Role>`."""
        head = IMPERSONATE + ":"
        return frozenset(p[len(head) :] for p in self.permissions if p.startswith(head))


class Directory:
    """A loaded copy of the tables, indexed: certificate -> user, user name or id -> user."""

    def __init__(self, tables: AuthTables, user_ids: Mapping[str, str] | None = None) -> None:
        ids = dict(user_ids or {})
        self._users = {
            name: User.of(name, roles, _permissions(tables.roles, roles), ids.get(name, name))
            for name, roles in tables.users.items()
        }
        self._by_id = {u.user_id: u for u in self._users.values()}
        self._exact: dict[tuple[str, str], User] = {}
        self._by_cn: dict[str, User] = {}
        for cert in tables.certificates:
            user = self._users.get(cert.username)
            if user is None:
                continue
            if cert.fingerprint:
                self._exact[(cert.cn, cert.fingerprint)] = user
            else:
                self._by_cn[cert.cn] = user

    def by_certificate(self, identity: Identity) -> User | None:
        """The entry with this CN and fingerprint, else the entry with this CN and no fingerprint."""
        return self._exact.get((identity.cn, identity.fingerprint)) or self._by_cn.get(identity.cn)

    def by_username(self, username: str) -> User | None:
        return self._users.get(username)

    def by_id(self, user_id: str) -> User | None:
        return self._by_id.get(user_id)


def _permissions(roles: Mapping[str, list[str]], names: Iterable[str]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for name in names:
        for permission in roles.get(name, []):
            seen[permission] = None
    return tuple(seen)
