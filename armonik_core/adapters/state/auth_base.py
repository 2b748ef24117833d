"""Where users, roles and certificates are kept: beside the state, in the same database.

The control plane reads the whole of them (a few rows per user) into memory and answers every call from that
copy, so the store is read once per cache period, never per call; the init step replaces them from the
deployment's authentication data. Each state backend has its own module (`sqlite_auth`, `mongodb_auth`).
"""

from __future__ import annotations

from typing import Protocol

from armonik_core.domain.auth import AuthTables


class AuthStore(Protocol):
    async def load(self) -> tuple[AuthTables, dict[str, str]]:
        """The tables, and each user's id (as upstream's `X-Impersonate-Id` names them)."""

    async def replace(self, tables: AuthTables) -> None:
        """Make the stored tables exactly `tables`, in one transaction where the backend has them."""

    async def close(self) -> None: ...
