"""Opening the authenticator of a control plane from its settings, and the interceptors it installs."""

from __future__ import annotations

import grpc

from armonik_core.adapters import factory
from armonik_core.config import ConfigurationError, ControlPlaneSettings
from armonik_core.control_plane.auth.authenticator import Authenticator
from armonik_core.control_plane.auth.interceptor import AuthInterceptor
from armonik_core.control_plane.auth.settings import AuthSettings


def auth_settings(settings: ControlPlaneSettings) -> AuthSettings:
    """The `Authenticator__*` settings, checked against the port's TLS: an identity comes from a client
    certificate (mTLS) or from a trusted proxy, so authentication without either could admit nobody."""
    auth = AuthSettings.from_env(settings.environment)
    mtls = settings.tls is not None and settings.tls.mtls
    if auth.require_authentication and not mtls and not auth.proxy_secret:
        raise ConfigurationError(
            "Authenticator__RequireAuthentication=true needs client certificates: authentication is by "
            "certificate, so set ControlPlane__Tls__ClientCaFile (mTLS), or Authenticator__ProxySecret for a "
            "trusted proxy in front of a plain port"
        )
    return auth


async def open_authenticator(settings: ControlPlaneSettings) -> Authenticator:
    auth = auth_settings(settings)
    store = (
        factory.open_auth_store(settings.environment, settings.table_storage, settings.data_directory)
        if auth.require_authentication
        else None
    )
    authenticator = Authenticator(auth, store)
    try:
        await authenticator.start()
    except BaseException:
        await authenticator.close()
        raise
    return authenticator


def interceptors(authenticator: Authenticator) -> list[grpc.aio.ServerInterceptor]:
    """None when authentication is off: a call then pays nothing for it."""
    return [AuthInterceptor(authenticator)] if authenticator.enabled else []
