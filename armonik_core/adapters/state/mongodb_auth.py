"""Users, roles and certificates in MongoDB, in upstream's collections and document shapes:

- `RoleData`: `{_id: ObjectId, RoleName, Permissions: [str]}`
- `UserData`: `{_id: ObjectId, Username, Roles: [role _id]}`
- `AuthData`: `{_id: ObjectId, UserId: user _id, Cn, Fingerprint: str | null}`

which is what ArmoniK.Infra's `authentication-in-database` job writes, so a database initialised by either reads
the same. The pymongo calls run in a thread (they block); the tables are small and read once per cache period.
"""

from __future__ import annotations

import asyncio
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, IndexModel

from armonik_core.domain.auth import AuthTables, CertificateEntry

ROLES, USERS, CERTIFICATES = "RoleData", "UserData", "AuthData"


class MongoAuthStore:
    def __init__(self, database: Any, owned_client: Any = None) -> None:
        """`database`: a pymongo (or mongomock) database; `owned_client` is closed with the store."""
        self._db = database
        self._client = owned_client

    async def load(self) -> tuple[AuthTables, dict[str, str]]:
        return await asyncio.to_thread(self._load)

    def _load(self) -> tuple[AuthTables, dict[str, str]]:
        roles = {d["_id"]: (d["RoleName"], list(d.get("Permissions") or [])) for d in self._db[ROLES].find()}
        users = {
            d["_id"]: (d["Username"], [roles[r][0] for r in d.get("Roles") or [] if r in roles])
            for d in self._db[USERS].find()
        }
        certificates = [
            CertificateEntry(users[d["UserId"]][0], d["Cn"], d.get("Fingerprint") or None)
            for d in self._db[CERTIFICATES].find()
            if d.get("UserId") in users
        ]
        tables = AuthTables(dict(roles.values()), dict(users.values()), certificates)
        return tables, {name: str(uid) for uid, (name, _) in users.items()}

    async def replace(self, tables: AuthTables) -> None:
        await asyncio.to_thread(self._replace, tables)

    def _replace(self, tables: AuthTables) -> None:
        """Drop and insert, as upstream's job does (a reader may briefly see partial tables: the control plane
        then refuses until its next read, never grants more)."""
        role_ids = {name: ObjectId() for name in tables.roles}
        user_ids = {name: ObjectId() for name in tables.users}
        for name in (CERTIFICATES, USERS, ROLES):
            self._db[name].delete_many({})
        if tables.roles:
            self._db[ROLES].insert_many(
                [{"_id": role_ids[n], "RoleName": n, "Permissions": p} for n, p in tables.roles.items()]
            )
        if tables.users:
            self._db[USERS].insert_many(
                [
                    {"_id": user_ids[n], "Username": n, "Roles": [role_ids[r] for r in rs if r in role_ids]}
                    for n, rs in tables.users.items()
                ]
            )
        certificates = [
            {"UserId": user_ids[c.username], "Cn": c.cn, "Fingerprint": c.fingerprint}
            for c in tables.certificates
            if c.username in user_ids
        ]
        if certificates:
            self._db[CERTIFICATES].insert_many(certificates)
        self._db[CERTIFICATES].create_indexes([IndexModel([("Cn", ASCENDING), ("Fingerprint", ASCENDING)])])

    async def close(self) -> None:
        if self._client is not None:
            self._client.close()
