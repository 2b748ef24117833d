"""The Authentication service: GetCurrentUser answers who the call runs as, as upstream's GrpcAuthService does.

- authentication off: `Anonymous`, no roles, every permission;
- authentication on, authorization off: the user's name, no roles, every permission (nothing is checked);
- both on: the user's name, roles and the permissions of those roles (after impersonation: the impersonated
  user's).
"""

from __future__ import annotations

import grpc
from armonik.protogen.client.auth_service_pb2_grpc import AuthenticationServicer
from armonik.protogen.common import auth_common_pb2

from armonik_core.control_plane.auth.interceptor import current_user
from armonik_core.control_plane.auth.permissions import all_permissions
from armonik_core.control_plane.auth.settings import AuthSettings
from armonik_core.control_plane.errors import unary


class AuthenticationService(AuthenticationServicer):
    def __init__(self, settings: AuthSettings) -> None:
        self._settings = settings

    @unary
    async def GetCurrentUser(
        self, request: auth_common_pb2.GetCurrentUserRequest, context: grpc.aio.ServicerContext
    ) -> auth_common_pb2.GetCurrentUserResponse:
        s = self._settings
        if not s.require_authentication:
            user = auth_common_pb2.User(username="Anonymous", roles=[], permissions=all_permissions())
        elif not s.authorization:
            user = auth_common_pb2.User(
                username=current_user().username, roles=[], permissions=all_permissions()
            )
        else:
            who = current_user()
            user = auth_common_pb2.User(
                username=who.username, roles=list(who.roles), permissions=list(who.permissions)
            )
        return auth_common_pb2.GetCurrentUserResponse(user=user)
