"""Users, roles and certificates in the SQLite state database (tables `auth_roles`, `auth_users`,
`auth_certificates`, upstream's `RoleData`, `UserData`, `AuthData`).

They use a connection of their own to the state's file rather than the state store's engine: they are read a
few times a minute and written by the init step, never on a task's path, so they need none of the engine's
batching, and the state store stays unaware of them. SQLite's write-ahead log lets this connection write while
the control plane runs.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

from armonik_core.domain.auth import AuthTables, CertificateEntry

DDL = """
CREATE TABLE IF NOT EXISTS auth_roles (
    role_id INTEGER PRIMARY KEY,
    role_name TEXT NOT NULL UNIQUE,
    permissions TEXT NOT NULL            -- JSON list of permission strings
);
CREATE TABLE IF NOT EXISTS auth_users (
    user_id INTEGER PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    roles TEXT NOT NULL                  -- JSON list of role_id
);
CREATE TABLE IF NOT EXISTS auth_certificates (
    auth_id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL,
    cn TEXT NOT NULL,
    fingerprint TEXT                     -- NULL: every certificate with this CN
);
CREATE UNIQUE INDEX IF NOT EXISTS auth_certificates_key ON auth_certificates (cn, IFNULL(fingerprint, ''));
"""


class SqliteAuthStore:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = asyncio.Lock()
        self._conn: sqlite3.Connection | None = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False, timeout=30.0)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(DDL)
            self._conn = conn
        return self._conn

    async def load(self) -> tuple[AuthTables, dict[str, str]]:
        async with self._lock:
            return await asyncio.to_thread(self._load)

    def _load(self) -> tuple[AuthTables, dict[str, str]]:
        conn = self._connection()
        conn.execute("BEGIN")
        try:
            roles = {
                rid: (name, json.loads(perms))
                for rid, name, perms in conn.execute("SELECT * FROM auth_roles")
            }
            users = {
                uid: (name, json.loads(rs)) for uid, name, rs in conn.execute("SELECT * FROM auth_users")
            }
            certs = conn.execute(
                "SELECT user_id, cn, fingerprint FROM auth_certificates ORDER BY auth_id"
            ).fetchall()
        finally:
            conn.execute("COMMIT")
        tables = AuthTables(
            roles={name: perms for name, perms in roles.values()},
            users={name: [roles[r][0] for r in rs if r in roles] for name, rs in users.values()},
            certificates=[CertificateEntry(users[u][0], cn, fp) for u, cn, fp in certs if u in users],
        )
        return tables, {name: str(uid) for uid, (name, _) in users.items()}

    async def replace(self, tables: AuthTables) -> None:
        async with self._lock:
            await asyncio.to_thread(self._replace, tables)

    def _replace(self, tables: AuthTables) -> None:
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            for table in ("auth_certificates", "auth_users", "auth_roles"):
                conn.execute(f"DELETE FROM {table}")  # noqa: S608 - names from the list above
            role_ids = {}
            for name, permissions in tables.roles.items():
                cur = conn.execute(
                    "INSERT INTO auth_roles (role_name, permissions) VALUES (?, ?)",
                    (name, json.dumps(permissions)),
                )
                role_ids[name] = cur.lastrowid
            user_ids = {}
            for name, roles in tables.users.items():
                ids = [role_ids[r] for r in roles if r in role_ids]
                cur = conn.execute(
                    "INSERT INTO auth_users (username, roles) VALUES (?, ?)", (name, json.dumps(ids))
                )
                user_ids[name] = cur.lastrowid
            conn.executemany(
                "INSERT INTO auth_certificates (user_id, cn, fingerprint) VALUES (?, ?, ?)",
                [
                    (user_ids[c.username], c.cn, c.fingerprint)
                    for c in tables.certificates
                    if c.username in user_ids
                ],
            )
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    async def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
