"""`armonik-ingress`: serve gRPC-Web, the Admin GUI and the operators' pages until SIGTERM or SIGINT.

uvicorn runs the Starlette application on the event loop the other processes use (uvloop where available);
its own signal handling stops it cleanly (in-flight requests finish, streams are cancelled).
"""

from __future__ import annotations

import logging
import os
import sys

import uvicorn
from uvicorn.protocols.http.auto import AutoHTTPProtocol

from armonik_core import logs
from armonik_core.ingress.app import build_app
from armonik_core.ingress.https import peer_certificate_protocol, uvicorn_tls_options
from armonik_core.ingress.settings import IngressSettings
from armonik_core.process import event_loop_choice, settings_or_exit

log = logging.getLogger("armonik.ingress")


def main() -> None:
    settings = settings_or_exit(IngressSettings.from_env, "armonik-ingress")
    logs.configure("ingress", settings.log_level)
    loop = "uvloop" if event_loop_choice(os.environ) == "uvloop" else "asyncio"
    log.info(
        "ingress listening",
        extra={
            "address": f"{settings.host}:{settings.port}",
            "scheme": "https" if settings.server_tls else "http",
            "client_certificates": bool(settings.server_tls and settings.server_tls.mtls),
            "control_plane": settings.control_plane,
        },
    )
    config = uvicorn.Config(
        build_app(settings),
        http=peer_certificate_protocol(AutoHTTPProtocol),
        **uvicorn_tls_options(settings.server_tls),
        host=settings.host,
        port=settings.port,
        loop=loop,
        log_config=None,  # uvicorn's loggers go through the JSON handler configured above
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    server.run()
    if not server.started:
        sys.exit(1)


if __name__ == "__main__":
    main()
