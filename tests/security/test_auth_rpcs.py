"""With authentication and authorization required, every RPC of every client service is checked before its
handler runs: refused without an identity and with an unknown certificate (UNAUTHENTICATED), allowed to each
built-in role exactly for its permissions (PERMISSION_DENIED otherwise), impersonation only behind
`General:Impersonate:<Role>`, and certificate headers believed only from a trusted proxy."""

from __future__ import annotations

import grpc
import pytest
from armonik.protogen.client.auth_service_pb2_grpc import AuthenticationStub
from armonik.protogen.common.auth_common_pb2 import GetCurrentUserRequest

from armonik_core.control_plane.auth.permissions import builtin_roles
from tests.security.conftest import PROXY_SECRET, AuthPki, AuthPlane
from tests.security.rpcs import REFUSALS, Rpc, call, client_rpcs

RPCS = client_rpcs()
#: Upstream's service names in permissions (the proto's HealthChecksService is `HealthChecks`).
SERVICE_NAMES = {"HealthChecksService": "HealthChecks"}


def permission_of(rpc: Rpc) -> str | None:
    if (rpc.service, rpc.name) == ("Authentication", "GetCurrentUser"):
        return None  # authenticated callers only, no permission (upstream's IgnoreAuthorization)
    return f"{SERVICE_NAMES.get(rpc.service, rpc.service)}:{rpc.name}"


def current_user(
    channel: grpc.Channel, metadata: list[tuple[str, str]] | None = None
) -> tuple[str, list[str], list[str]]:
    user = (
        AuthenticationStub(channel)
        .GetCurrentUser(GetCurrentUserRequest(), metadata=metadata, timeout=10)
        .user
    )
    return user.username, list(user.roles), list(user.permissions)


def unauthenticated(channel: grpc.Channel, metadata: list[tuple[str, str]] | None = None) -> str:
    with pytest.raises(grpc.RpcError) as caught:
        current_user(channel, metadata)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED, caught.value
    details: str = caught.value.details()
    return details


# -- no identity, unknown certificate -----------------------------------------------------------------------------
def test_every_rpc_is_refused_without_an_identity(secret_plane: AuthPlane) -> None:
    with secret_plane.channel() as channel:
        for rpc in RPCS:
            outcome = call(channel, rpc)
            assert outcome.code == grpc.StatusCode.UNAUTHENTICATED, (str(rpc), outcome)
            assert "no client certificate or trusted proxy header" in outcome.details


def test_every_rpc_is_refused_with_an_unknown_certificate(auth_plane: AuthPlane, auth_pki: AuthPki) -> None:
    fp = auth_pki.fingerprint("stranger")
    with auth_plane.channel("stranger") as channel:
        for rpc in RPCS:
            outcome = call(channel, rpc)
            assert outcome.code == grpc.StatusCode.UNAUTHENTICATED, (str(rpc), outcome)
            assert f"certificate CN=stranger fingerprint={fp} is not registered" in outcome.details


def test_a_client_without_a_certificate_does_not_get_past_the_handshake(auth_plane: AuthPlane) -> None:
    with auth_plane.channel() as channel, pytest.raises(grpc.RpcError) as caught:
        current_user(channel)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


# -- each role: exactly its permissions ---------------------------------------------------------------------------
def check_role(plane: AuthPlane, user: str, role: str) -> None:
    granted = {":".join(p.split(":")[:2]) for p in builtin_roles()[role]}
    with plane.channel(user) as channel:
        name, roles, permissions = current_user(channel)
        assert (name, roles, sorted(permissions)) == (user, [role], sorted(builtin_roles()[role]))
        for rpc in RPCS:
            permission = permission_of(rpc)
            outcome = call(channel, rpc)
            if permission is None or permission in granted:
                assert outcome.code not in REFUSALS, (user, str(rpc), outcome)
            else:
                assert outcome.code == grpc.StatusCode.PERMISSION_DENIED, (user, str(rpc), outcome)
                assert outcome.details == f"user {user} lacks permission {permission}"


def test_the_admin_role_may_call_every_rpc(auth_plane: AuthPlane) -> None:
    check_role(auth_plane, "admin", "Admin")


def test_the_submitter_role_may_call_exactly_its_rpcs(auth_plane: AuthPlane) -> None:
    check_role(auth_plane, "submitter", "Submitter")


def test_the_monitoring_role_may_call_exactly_its_rpcs(auth_plane: AuthPlane) -> None:
    # registered by CN alone (no fingerprint), as upstream allows
    check_role(auth_plane, "monitoring", "Monitoring")


def test_a_user_without_roles_may_only_ask_who_it_is(auth_plane: AuthPlane) -> None:
    with auth_plane.channel("plain") as channel:
        assert current_user(channel) == ("nobody", [], [])
        for rpc in RPCS:
            outcome = call(channel, rpc)
            if permission_of(rpc) is None:
                assert outcome.code == grpc.StatusCode.OK
            else:
                assert outcome.code == grpc.StatusCode.PERMISSION_DENIED, (str(rpc), outcome)


# -- impersonation ------------------------------------------------------------------------------------------------
def test_impersonation_needs_general_impersonate_for_every_role_of_the_target(auth_plane: AuthPlane) -> None:
    with auth_plane.channel("impersonator") as channel:
        assert current_user(channel, [("x-impersonate-username", "monitoring")])[:2] == (
            "monitoring",
            ["Monitoring"],
        )
        refused = unauthenticated(channel, [("x-impersonate-username", "submitter")])
        assert (
            refused
            == "user impersonator may not impersonate submitter: it lacks General:Impersonate:Submitter"
        )
        assert "does not exist" in unauthenticated(channel, [("x-impersonate-username", "ghost")])
        # the impersonated user's permissions apply, not the impersonator's
        outcome = call(
            channel,
            next(r for r in RPCS if r.name == "CreateSession"),
            [("x-impersonate-username", "monitoring")],
        )
        assert outcome.details == "user monitoring lacks permission Sessions:CreateSession"
    with auth_plane.channel("monitoring") as channel:
        refused = unauthenticated(channel, [("x-impersonate-username", "nobody")])
        assert refused == "user monitoring cannot impersonate: it lacks permission General:Impersonate"
    with auth_plane.channel("admin") as channel:
        assert current_user(channel, [("x-impersonate-username", "submitter")])[0] == "submitter"
    with auth_plane.channel("submitter") as channel:
        # upstream's Submitter role holds General:Impersonate with no role: only users without roles
        assert current_user(channel, [("x-impersonate-username", "nobody")])[0] == "nobody"
        assert "lacks General:Impersonate:Monitoring" in unauthenticated(
            channel, [("x-impersonate-username", "monitoring")]
        )


# -- proxies ------------------------------------------------------------------------------------------------------
def headers(pki: AuthPki, user: str) -> list[tuple[str, str]]:
    return [("x-certificate-client-cn", user), ("x-certificate-client-fingerprint", pki.fingerprint(user))]


def test_certificate_headers_are_believed_from_a_trusted_proxy_only(
    auth_plane: AuthPlane, auth_pki: AuthPki
) -> None:
    with auth_plane.channel("proxy") as channel:
        assert current_user(channel, headers(auth_pki, "submitter"))[0] == "submitter"
        assert "CN=stranger" in unauthenticated(channel, headers(auth_pki, "stranger"))
        # without headers the proxy is itself, and it is not a user
        assert "CN=proxy" in unauthenticated(channel)
    with auth_plane.channel("stranger") as channel:  # not trusted: its headers are ignored
        assert "CN=stranger" in unauthenticated(channel, headers(auth_pki, "admin"))
    with auth_plane.channel("monitoring") as channel:
        assert current_user(channel, headers(auth_pki, "admin"))[0] == "monitoring"


def test_a_local_proxy_is_trusted_by_its_secret(secret_plane: AuthPlane, auth_pki: AuthPki) -> None:
    with secret_plane.channel() as channel:
        secret = [("x-armonik-proxy-secret", PROXY_SECRET)]
        assert current_user(channel, secret + headers(auth_pki, "admin"))[0] == "admin"
        wrong = [("x-armonik-proxy-secret", PROXY_SECRET[:-1] + "x")]
        assert "trusted proxy" in unauthenticated(channel, wrong + headers(auth_pki, "admin"))
        assert "trusted proxy" in unauthenticated(channel, headers(auth_pki, "admin"))
