"""The permission catalogue against the proto descriptors: every client method has its permission, named as
upstream names it, and the built-in roles and datafile parsing follow upstream."""

from __future__ import annotations

import json

import pytest
from armonik.protogen.client import health_checks_service_pb2, sessions_service_pb2

from armonik_core.config import ConfigurationError
from armonik_core.control_plane.auth.init import read_tables
from armonik_core.control_plane.auth.permissions import (
    GET_CURRENT_USER,
    METHOD_PERMISSIONS,
    all_permissions,
    builtin_roles,
)
from armonik_core.control_plane.auth.users import parse_datafile
from armonik_core.services.client_api import CLIENT_SERVICES

UPSTREAM_SERVICE_NAMES = {
    "Sessions": "Sessions",
    "Tasks": "Tasks",
    "Results": "Results",
    "Events": "Events",
    "Partitions": "Partitions",
    "Applications": "Applications",
    "Versions": "Versions",
    "HealthChecksService": "HealthChecks",
    "Authentication": "Authentication",
}


def descriptor_methods() -> list[tuple[str, str, str]]:
    found = []
    for module, _ in CLIENT_SERVICES:
        for service in module.DESCRIPTOR.services_by_name.values():
            found += [(service.full_name, service.name, m.name) for m in service.methods]
    return found


def test_every_client_method_has_its_upstream_permission() -> None:
    methods = descriptor_methods()
    assert {name for _, name, _ in methods} == set(UPSTREAM_SERVICE_NAMES)
    assert len(METHOD_PERMISSIONS) == len(methods)
    for full, service, method in methods:
        path = f"/{full}/{method}"
        expected = None if path == GET_CURRENT_USER else f"{UPSTREAM_SERVICE_NAMES[service]}:{method}"
        assert METHOD_PERMISSIONS[path] == expected


def test_names_that_upstream_uses() -> None:
    perms = all_permissions()
    assert "HealthChecks:CheckHealth" in perms and "HealthChecksService:CheckHealth" not in perms
    assert "Sessions:CancelSession" in perms and "General:Impersonate" in perms
    assert "Authentication:GetCurrentUser" not in perms
    assert len(perms) == len(set(perms))
    service = health_checks_service_pb2.DESCRIPTOR.services_by_name["HealthChecksService"]
    assert METHOD_PERMISSIONS[f"/{service.full_name}/CheckHealth"] == "HealthChecks:CheckHealth"
    sessions = sessions_service_pb2.DESCRIPTOR.services_by_name["Sessions"]
    assert len([m for m in sessions.methods]) == len([p for p in perms if p.startswith("Sessions:")])


def test_builtin_roles_cover_only_known_permissions() -> None:
    known = set(all_permissions())
    roles = builtin_roles()
    for name in ("Submitter", "Monitoring"):
        current = {p for p in roles[name] if not p.startswith("Submitter:")}
        assert current <= known, current - known
    monitoring = set(roles["Monitoring"])
    assert not any(
        p.split(":")[1].startswith(("Create", "Cancel", "Delete", "Purge", "Submit")) for p in monitoring
    )
    assert set(all_permissions()) <= set(roles["Admin"])


def test_the_datafile_in_upstreams_format(tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = {
        "roles_list": [{"RoleName": "Reader", "Permissions": ["Sessions:ListSessions"]}],
        "users_list": [{"Username": "alice", "Roles": ["Reader", "Monitoring"]}],
        "certificates_list": [
            {"Username": "alice", "Cn": "alice", "Fingerprint": "AB:CD:EF"},
            {"Username": "alice", "Cn": "alice2"},
        ],
    }
    path = tmp_path / "auth.json"
    path.write_text(json.dumps(data))
    tables = read_tables(str(path))
    assert tables.roles["Reader"] == ["Sessions:ListSessions"] and "Submitter" in tables.roles
    assert [(c.cn, c.fingerprint) for c in tables.certificates] == [("alice", "abcdef"), ("alice2", None)]
    with pytest.raises(ConfigurationError, match="role 'Ghost'"):
        path.write_text(json.dumps({**data, "users_list": [{"Username": "bob", "Roles": ["Ghost"]}]}))
        read_tables(str(path))
    with pytest.raises(ConfigurationError, match="not Service:Method"):
        parse_datafile(json.dumps({"roles_list": [{"RoleName": "X", "Permissions": ["Oops"]}]}), "f")
    with pytest.raises(ConfigurationError, match="not valid JSON"):
        parse_datafile("{", "f")
