"""The init step's part for authentication: write the users, roles and certificates of upstream's
`authentication_datafile` JSON, with the built-in roles, into the state's database.

`InitServices__Authentication__DataFile` names the file, or `InitServices__Authentication__Data` holds its
content (a Kubernetes ConfigMap); both ours: upstream passes the same content to a mongosh script in its
`authentication-in-database` job. The stored tables become exactly the built-in roles plus the
file's content (a role of the file replaces a built-in one of the same name), as upstream's job drops and
refills its collections.
"""

from __future__ import annotations

from pathlib import Path

from armonik_core.adapters import factory
from armonik_core.config import ConfigurationError, ControlPlaneSettings
from armonik_core.control_plane.auth.permissions import builtin_roles
from armonik_core.control_plane.auth.users import check_tables, parse_datafile
from armonik_core.domain.auth import AuthTables

DATAFILE = "InitServices__Authentication__DataFile"
DATA = "InitServices__Authentication__Data"


def read_tables(path: str) -> AuthTables:
    where = f"{DATAFILE}={path!r}"
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigurationError(f"{where}: cannot read the file ({exc.strerror or exc})") from None
    return tables_of(text, where)


def tables_of(text: str, where: str) -> AuthTables:
    tables = AuthTables(roles=builtin_roles()).merged(parse_datafile(text, where))
    check_tables(tables, where)
    return tables


async def write_authentication(settings: ControlPlaneSettings) -> AuthTables | None:
    """The tables written, or None when no data file is set."""
    path = settings.environment.get(DATAFILE, "").strip()
    inline = settings.environment.get(DATA, "").strip()
    if not path and not inline:
        return None
    tables = read_tables(path) if path else tables_of(inline, DATA)
    store = factory.open_auth_store(settings.environment, settings.table_storage, settings.data_directory)
    try:
        await store.replace(tables)
    finally:
        await store.close()
    return tables
