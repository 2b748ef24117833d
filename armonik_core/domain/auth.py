"""Users, roles and certificates as the state stores keep them (upstream's `RoleData`, `UserData`, `AuthData`),
with names instead of ids; see armonik_core.control_plane.auth.users for their meaning and their JSON form."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class CertificateEntry:
    username: str
    cn: str
    fingerprint: str | None = None


@dataclass(slots=True)
class AuthTables:
    """Role name -> permissions, user name -> role names, and certificates (in load order)."""

    roles: dict[str, list[str]] = field(default_factory=dict)
    users: dict[str, list[str]] = field(default_factory=dict)
    certificates: list[CertificateEntry] = field(default_factory=list)

    def merged(self, other: AuthTables) -> AuthTables:
        """`other` over this: a role, user or certificate (CN + fingerprint) of `other` replaces this one's."""
        keys = {(c.cn, c.fingerprint) for c in other.certificates}
        return AuthTables(
            {**self.roles, **other.roles},
            {**self.users, **other.users},
            [c for c in self.certificates if (c.cn, c.fingerprint) not in keys] + other.certificates,
        )
