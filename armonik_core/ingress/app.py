"""The ingress's routes, as one Starlette application.

- `POST /armonik.api.grpc.v1.<pkg>.<Service>/<Method>`: gRPC-Web, forwarded to the control plane (grpcweb.py);
- `GET /static/<name>`: `environment.json`, `gui_configuration` (static.py);
- `/admin/...`: an Admin GUI build, or a page saying how to get one (static.py); `/` goes there;
- `/console/`: the project's console (`armonik_graph.console`, also a process of its own): sessions, tasks,
  results, partitions and applications, actions, the live graph of a session; it reads through the official API
  on a blocking channel of its own to the same control plane, with the same TLS settings;
- `/monitoring/`: metrics over time (monitoring.py); `/logs/`: a search over the JSON logs (logsearch.py);
- `/healthz`, `/liveness`, `/readiness`: the ingress's health; readiness also asks the control plane's
  `HealthChecksService`, as the GUI does.

Under mTLS (`Ingress__Tls__ClientCaFile`) every route but the health endpoints needs a verified client
certificate, whose identity the gRPC-Web proxy and the console pass on to the control plane (https.py); so
does a request through a TLS-terminating proxy in front, whose identity headers are then believed
(`Ingress__TrustProxyIdentityHeaders`).

CORS is Starlette's middleware: preflights from the origins in `Ingress__CorsAllowedOrigins` are answered with
the headers gRPC-Web clients send (`content-type`, `x-grpc-web`, `x-user-agent`, `grpc-timeout`,
`authorization`) and expose the status headers.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import grpc
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route

from armonik_core.ingress.caller import CALLER, CallerMetadata
from armonik_core.ingress.grpcweb import EXPOSED_HEADERS, GrpcWebProxy
from armonik_core.ingress.https import ClientIdentity
from armonik_core.ingress.logsearch import LogSearch
from armonik_core.ingress.methods import client_methods
from armonik_core.ingress.monitoring import MetricsHistory
from armonik_core.ingress.settings import IngressSettings
from armonik_core.ingress.static import AdminGui, StaticFiles
from armonik_core.tls import aio_channel, sync_channel
from armonik_graph.console.app import create_app as create_console
from armonik_graph.source import ApiSource

CHECK_HEALTH = "/armonik.api.grpc.v1.health_checks.HealthChecksService/CheckHealth"
#: Statuses of a control plane that is up but does not let the ingress itself in.
ANSWERED = frozenset({grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED})
ALLOWED_HEADERS = ["content-type", "x-grpc-web", "x-user-agent", "grpc-timeout", "authorization"]
#: The channel carries what the control plane accepts: no message size of its own.
CHANNEL_OPTIONS = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]


def build_app(settings: IngressSettings, channel: grpc.aio.Channel | None = None) -> Starlette:
    """The application; `channel` (to the control plane) is opened from the settings when not given."""
    methods = client_methods()
    proxy = GrpcWebProxy(channel, methods, settings.identity_headers)
    history = MetricsHistory(settings.metrics_url, settings.metrics_interval, settings.metrics_history)
    logs = LogSearch(settings.logs_directory)
    admin = AdminGui(settings.admin_gui_directory)
    static = StaticFiles(settings.static)
    # Blocking (the SDK's clients are): not bound to an event loop, so made here; it connects on first use.
    console_channel = sync_channel(settings.control_plane, settings.tls, CHANNEL_OPTIONS)
    # Each call carries the browser's identity; graphs followed for one viewer are not shown to another.
    console = create_console(
        ApiSource(grpc.intercept_channel(console_channel, CallerMetadata(settings.identity_headers))),
        viewer=CALLER.get,
    )

    async def healthy(request: Request) -> Response:
        return PlainTextResponse("Healthy\n")

    async def ready(request: Request) -> Response:
        """Ready when the control plane answers its health check (an empty request message); under
        authentication it answers the ingress's own identity UNAUTHENTICATED, which is an answer too."""
        try:
            await proxy.channel.unary_unary(CHECK_HEALTH)(b"", timeout=2.0)
        except grpc.aio.AioRpcError as error:
            if error.code() not in ANSWERED:
                return PlainTextResponse(f"Unhealthy: control plane: {error.code().name}\n", 503)
        return PlainTextResponse("Healthy\n")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # A grpc.aio channel belongs to the event loop it is made on: uvicorn's, so made here.
        own = proxy.open(lambda: aio_channel(settings.control_plane, settings.tls, CHANNEL_OPTIONS))
        history.start()
        try:
            yield
        finally:
            await history.stop()
            await run_in_threadpool(console.state.graphs.stop)
            console_channel.close()
            if own:
                await proxy.close()

    routes = [
        Route("/", lambda request: RedirectResponse("/admin/", 302)),
        Route("/healthz", healthy),
        Route("/liveness", healthy),
        Route("/readiness", ready),
        Route("/static/{name:path}", static.handle, methods=["GET", "HEAD"]),
        Route("/admin", lambda request: RedirectResponse("/admin/", 301)),
        Route("/admin/{path:path}", admin.handle, methods=["GET", "HEAD"]),
        Route("/console", lambda request: RedirectResponse("/console/", 301)),
        Mount("/console", app=console),
        Route("/monitoring/", history.page),
        Route("/monitoring/api/series", history.series),
        Route("/logs/", logs.page),
        Route("/logs/api/search", logs.api),
        *(Route(path, proxy.handle, methods=["POST"]) for path in methods),
        Route("/{service:str}/{method:str}", proxy.handle, methods=["POST"]),
    ]
    # The first is the outermost: preflights (which carry no certificate) are answered before the check.
    middleware = [
        Middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["POST", "GET", "OPTIONS"],
            allow_headers=ALLOWED_HEADERS,
            expose_headers=[h.strip() for h in EXPOSED_HEADERS.split(",")],
            max_age=1728000,
        )
    ]
    middleware.append(
        Middleware(
            ClientIdentity,
            required=bool(settings.server_tls and settings.server_tls.mtls) or settings.trust_proxy_headers,
            from_headers=settings.identity_headers if settings.trust_proxy_headers else None,
        )
    )
    return Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
