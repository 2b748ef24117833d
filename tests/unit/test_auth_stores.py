"""Users, roles and certificates round-trip through the SQLite tables and the MongoDB collections (upstream's
`RoleData`, `UserData`, `AuthData` shapes), and the lookups follow upstream (an exact fingerprint before a CN-only
entry)."""

from __future__ import annotations

from pathlib import Path

import mongomock

from armonik_core.adapters.state.mongodb_auth import MongoAuthStore
from armonik_core.adapters.state.sqlite_auth import SqliteAuthStore
from armonik_core.control_plane.auth.identity import Identity
from armonik_core.control_plane.auth.users import Directory
from armonik_core.domain.auth import AuthTables, CertificateEntry

TABLES = AuthTables(
    roles={
        "Reader": ["Sessions:ListSessions"],
        "Writer": ["Sessions:CreateSession", "General:Impersonate:Reader"],
    },
    users={"alice": ["Reader"], "bob": ["Reader", "Writer"]},
    certificates=[CertificateEntry("alice", "shared", None), CertificateEntry("bob", "shared", "abc")],
)


def check_directory(tables: AuthTables, ids: dict[str, str]) -> None:
    assert tables.roles == TABLES.roles and tables.users == TABLES.users
    assert sorted(tables.certificates, key=str) == sorted(TABLES.certificates, key=str)
    directory = Directory(tables, ids)
    assert directory.by_certificate(Identity("shared", "abc")).username == "bob"  # type: ignore[union-attr]
    assert directory.by_certificate(Identity("shared", "other")).username == "alice"  # type: ignore[union-attr]
    assert directory.by_certificate(Identity("nobody", "abc")) is None
    bob = directory.by_username("bob")
    assert bob is not None and bob.impersonable_roles() == {"Reader"}
    assert directory.by_id(ids["alice"]).username == "alice"  # type: ignore[union-attr]


async def test_sqlite_tables(tmp_path: Path) -> None:
    store = SqliteAuthStore(tmp_path / "state.db")
    await store.replace(TABLES)
    await store.replace(TABLES)  # the init step runs at every deploy
    check_directory(*await store.load())
    await store.close()


async def test_mongodb_collections_in_upstreams_shapes() -> None:
    db = mongomock.MongoClient()["ArmoniK"]
    store = MongoAuthStore(db)
    await store.replace(TABLES)
    check_directory(*await store.load())
    role = db["RoleData"].find_one({"RoleName": "Reader"})
    user = db["UserData"].find_one({"Username": "alice"})
    cert = db["AuthData"].find_one({"Fingerprint": "abc"})
    assert role is not None and user is not None and cert is not None
    assert user["Roles"] == [role["_id"]]
    assert cert["Cn"] == "shared" and cert["UserId"] == db["UserData"].find_one({"Username": "bob"})["_id"]  # type: ignore[index]
