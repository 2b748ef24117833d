"""The init job of the local target: write the partitions, and the users, roles and certificates when
authentication data is given (`InitServices__Authentication__DataFile`), into the state database, then exit.

Upstream runs a one-shot `init` Job before the control plane (`InitServices__*` settings); here the supervisor
runs this module before the other processes and at every redeploy, so that a partition added to the parameters
reaches a running control plane without restarting it. It reads the same settings as the control plane
(`Components__TableStorage`, `Embedded__DataDirectory` or `MongoDB__*`,
`InitServices__Partitioning__Partitions__<i>`); SQLite's locking lets it write while the control plane runs.
"""

from __future__ import annotations

import asyncio
import sys

from armonik_core.adapters import factory
from armonik_core.config import ConfigurationError, ControlPlaneSettings
from armonik_core.control_plane.auth.init import write_authentication
from armonik_core.domain.auth import AuthTables


async def run(settings: ControlPlaneSettings) -> AuthTables | None:
    state = factory.open_state_store(
        settings.environment,
        settings.table_storage,
        settings.data_directory,
        settings.sqlite_synchronous,
        outbox=settings.queue_storage != "memory",
    )
    try:
        await state.upsert_partitions(settings.partitions)
    finally:
        await state.close()
    return await write_authentication(settings)


def main() -> None:
    try:
        settings = ControlPlaneSettings.from_env()
    except ConfigurationError as exc:
        print(f"armonik init: invalid configuration: {exc}", file=sys.stderr)
        sys.exit(2)
    try:
        auth = asyncio.run(run(settings))
    except ConfigurationError as exc:
        print(f"armonik init: invalid authentication data: {exc}", file=sys.stderr)
        sys.exit(2)
    names = ", ".join(p.partition_id for p in settings.partitions)
    where = settings.data_directory if settings.table_storage == "sqlite" else settings.table_storage
    print(f"armonik init: partitions {names} written to {where}", flush=True)
    if auth is not None:
        print(
            f"armonik init: {len(auth.users)} users, {len(auth.roles)} roles, {len(auth.certificates)} certificates "
            f"written to {where}",
            flush=True,
        )


if __name__ == "__main__":
    main()
