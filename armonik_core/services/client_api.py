"""The client services of the official API: their proto modules, and the name upstream gives each.

The control plane's permissions (`Sessions:CancelSession`, ...) and the ingress's gRPC-Web routes are both
derived from these descriptors, so the two cannot disagree about which services a client reaches; the agents'
services and the legacy Submitter are not among them.
"""

from __future__ import annotations

from types import ModuleType

from armonik.protogen.client import (
    applications_service_pb2,
    auth_service_pb2,
    events_service_pb2,
    health_checks_service_pb2,
    partitions_service_pb2,
    results_service_pb2,
    sessions_service_pb2,
    tasks_service_pb2,
    versions_service_pb2,
)

#: (proto module, upstream's service name in permissions: `HealthChecks`, not the proto's `HealthChecksService`).
CLIENT_SERVICES: tuple[tuple[ModuleType, str], ...] = (
    (sessions_service_pb2, "Sessions"),
    (tasks_service_pb2, "Tasks"),
    (results_service_pb2, "Results"),
    (applications_service_pb2, "Applications"),
    (events_service_pb2, "Events"),
    (auth_service_pb2, "Authentication"),
    (partitions_service_pb2, "Partitions"),
    (versions_service_pb2, "Versions"),
    (health_checks_service_pb2, "HealthChecks"),
)
