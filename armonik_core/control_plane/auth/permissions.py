"""The permission of every client RPC, named as upstream ArmoniK names them, and the built-in roles.

Upstream (ArmoniK.Core's `ServicesPermissions`) names a permission `<Service>:<Method>`, where the service is
the short name of its gRPC service class: `Sessions`, `Tasks`, `Results`, `Events`, `Partitions`,
`Applications`, `Versions`, `HealthChecks` (not the proto's `HealthChecksService`) and `Authentication`;
`General:Impersonate` is the one permission that is no RPC. `Authentication:GetCurrentUser` needs an
authenticated caller but no permission (upstream's `[IgnoreAuthorization]`), so that a user can always read who
they are. A role's permission may carry a third part, `Service:Method:Target`; only the first two decide what
it grants, and for `General:Impersonate:<Role>` the target is the role the holder may impersonate.

The catalogue is derived from the proto descriptors of the services this control plane serves, so a method
added to the API gets a permission without being listed here. Upstream also serves the legacy `Submitter`
service (`Submitter:*` permissions); this control plane does not, so the anonymous user's list (authentication
off) names the permissions of the services served; the built-in roles keep upstream's `Submitter:*` entries,
which grant nothing here.
"""

from __future__ import annotations

from armonik_core.services.client_api import CLIENT_SERVICES

IMPERSONATE = "General:Impersonate"
GET_CURRENT_USER = "/armonik.api.grpc.v1.auth.Authentication/GetCurrentUser"

#: Methods an authenticated caller may call without a permission.
NO_PERMISSION = frozenset({GET_CURRENT_USER})


def _catalogue() -> dict[str, str | None]:
    methods: dict[str, str | None] = {}
    for module, name in CLIENT_SERVICES:
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                path = f"/{service.full_name}/{method.name}"
                methods[path] = None if path in NO_PERMISSION else f"{name}:{method.name}"
    return methods


#: Full gRPC method path (`/armonik.api.grpc.v1.sessions.Sessions/CancelSession`) -> permission, or None for a
#: method that needs authentication only. A path absent from it is not a client service's.
METHOD_PERMISSIONS: dict[str, str | None] = _catalogue()


def all_permissions() -> list[str]:
    """Every permission, in the order of the services above then `General:Impersonate` (what the anonymous
    user holds when authentication is off)."""
    return [p for p in METHOD_PERMISSIONS.values() if p is not None] + [IMPERSONATE]


def base_permission(permission: str) -> str:
    """`Service:Method` of `Service:Method[:Target]`."""
    return ":".join(permission.split(":", 2)[:2])


# -- built-in roles (ArmoniK.Infra's authentication-builtin-roles) ------------------------------------------------
_SUBMITTER_LEGACY = [
    "Submitter:GetServiceConfiguration",
    "Submitter:CancelSession",
    "Submitter:CancelTasks",
    "Submitter:CreateSession",
    "Submitter:CreateSmallTasks",
    "Submitter:CreateLargeTasks",
    "Submitter:CountTasks",
    "Submitter:TryGetResultStream",
    "Submitter:WaitForCompletion",
    "Submitter:TryGetTaskOutput",
    "Submitter:WaitForAvailability",
    "Submitter:GetTaskStatus",
    "Submitter:GetResultStatus",
    "Submitter:ListTasks",
    "Submitter:ListSessions",
]
_MONITORING_LEGACY = [
    "Submitter:GetServiceConfiguration",
    "Submitter:CountTasks",
    "Submitter:GetTaskStatus",
    "Submitter:GetResultStatus",
    "Submitter:ListTasks",
    "Submitter:ListSessions",
]
_MONITORING = [
    "Sessions:GetSession",
    "Sessions:ListSessions",
    "Tasks:GetTask",
    "Tasks:ListTasks",
    "Tasks:GetResultIds",
    "Tasks:CountTasksByStatus",
    "Tasks:ListTasksDetailed",
    "Results:GetOwnerTaskId",
    "Results:ListResults",
    "Results:GetServiceConfiguration",
    "Results:GetResult",
    "Applications:ListApplications",
    "Events:GetEvents",
    "Partitions:GetPartition",
    "Partitions:ListPartitions",
    "Versions:ListVersions",
    "HealthChecks:CheckHealth",
]
_SUBMITTER = [
    "Sessions:CancelSession",
    "Sessions:GetSession",
    "Sessions:ListSessions",
    "Sessions:CreateSession",
    "Sessions:PauseSession",
    "Sessions:CloseSession",
    "Sessions:PurgeSession",
    "Sessions:DeleteSession",
    "Sessions:ResumeSession",
    "Sessions:StopSubmission",
    "Tasks:GetTask",
    "Tasks:ListTasks",
    "Tasks:GetResultIds",
    "Tasks:CancelTasks",
    "Tasks:CountTasksByStatus",
    "Tasks:ListTasksDetailed",
    "Tasks:SubmitTasks",
    "Results:GetOwnerTaskId",
    "Results:ListResults",
    "Results:CreateResultsMetaData",
    "Results:CreateResults",
    "Results:DeleteResultsData",
    "Results:DownloadResultData",
    "Results:GetServiceConfiguration",
    "Results:UploadResultData",
    "Results:GetResult",
    "Results:ImportResultsData",
    "Applications:ListApplications",
    "Events:GetEvents",
    IMPERSONATE,
    "Partitions:GetPartition",
    "Partitions:ListPartitions",
    "Versions:ListVersions",
    "HealthChecks:CheckHealth",
]

SUBMITTER_ROLE = "Submitter"
MONITORING_ROLE = "Monitoring"
#: Ours, not upstream's: every permission, and the impersonation of the other built-in roles.
ADMIN_ROLE = "Admin"


def builtin_roles() -> dict[str, list[str]]:
    """Role name -> permissions: upstream's Submitter and Monitoring, plus an admin holding everything."""
    admin = all_permissions() + [f"{IMPERSONATE}:{r}" for r in (SUBMITTER_ROLE, MONITORING_ROLE, ADMIN_ROLE)]
    return {
        SUBMITTER_ROLE: _SUBMITTER_LEGACY + _SUBMITTER,
        MONITORING_ROLE: _MONITORING_LEGACY + _MONITORING,
        ADMIN_ROLE: admin,
    }
