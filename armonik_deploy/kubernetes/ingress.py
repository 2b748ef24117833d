"""The ingress on Kubernetes: nginx in front of the browser-facing services, and the project's gRPC-Web ingress
in the same pod, as upstream's nginx ingress is in front of Core.

nginx (upstream's `nginxinc/nginx-unprivileged`) serves `/static/` from a ConfigMap (`environment.json` from
`environment_description`, and the `static` entries), routes the operators' pages (`/admin/`, `/grafana/`,
`/seq/`) to their Services, and everything else (gRPC-Web calls, the console) to the gRPC-Web container
(`python -m armonik_core.ingress`, from the control plane's image) on the pod's loopback.

With `ingress.tls`, nginx serves HTTPS with the certificate of the Secret `armonik-ingress` (ArmoniK.Infra's
name: `tls.crt`, `tls.key`, and with mTLS `ca.crt`, the authorities of client certificates: the deployment's,
then `custom_client_ca_file`'s), for the ingress Service's names and localhost. With `ingress.mtls` it asks
every browser for a certificate, answers 403 to a request without a verified one (`/healthz`, the probe's,
excepted), and passes the certificate's CN (from `$ssl_client_s_dn`) and SHA-1 fingerprint
(`$ssl_client_fingerprint`) on in `X-Certificate-Client-CN` / `-Fingerprint`, as upstream's does; a browser's
own headers of those names never get through (nginx sets them, or clears them without mTLS). The gRPC-Web
container then takes the caller from those headers (`Ingress__TrustProxyIdentityHeaders`, believed on
loopback only) and reaches the control plane with its own client certificate (Secret `armonik-ingress-client`,
CN `armonik-ingress`), the CN the control plane trusts as a proxy when authentication is on.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from armonik_deploy.authentication import INGRESS_PROXY
from armonik_deploy.certificates import ServerIdentity, ensure_certificates
from armonik_deploy.kubernetes import objects
from armonik_deploy.kubernetes.context import Context, RenderError
from armonik_deploy.kubernetes.settings import CERTIFICATES_PATH, LOG, Settings, service_names
from armonik_deploy.parameters import EnvironmentDescription, Parameters, ParametersError
from armonik_deploy.tls import read_ingress_tls

Manifest = objects.Manifest
NGINX_PORT = 8080
GRPC_WEB_PORT = 8081
#: The Secret of nginx's certificate (and of the client authorities under mTLS), and its mount.
SERVER_SECRET = "armonik-ingress"
NGINX_CERTIFICATES = "/etc/nginx/certificates"
#: The gRPC-Web container's Secret: the authority to check the control plane with, its own client certificate.
CLIENT_SECRET = "armonik-ingress-client"
REQUIRED = (
    "a client certificate is required: this ingress checks client certificates (ingress.mtls = true); "
    "install a certificate signed by the deployment's authority in the browser and open the page again"
)


def http_port(ctx: Context) -> int:
    port = (ctx.params.ingress or {}).get("http_port", 5000)
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise RenderError(f"{ctx.file}: ingress.http_port: {port!r} is not a port number")
    return port


def service_name(params: Parameters) -> str:
    return str((params.ingress or {}).get("name", "ingress"))


def _location(path: str, body: str, check: str) -> str:
    return f"  location {path} {{\n{check}{body}  }}\n"


def nginx_conf(routes: list[tuple[str, str]], settings: Settings) -> str:
    """`routes`: (path, upstream URL) of the operators' pages, before the catch-all to the gRPC-Web container."""
    check = (
        f'    if ($ssl_client_verify != SUCCESS) {{\n      return 403 "{REQUIRED}\\n";\n    }}\n'
        if settings.mtls
        else ""
    )
    if settings.mtls:
        identity = (
            "    proxy_set_header X-Certificate-Client-CN $armonik_client_cn;\n"
            "    proxy_set_header X-Certificate-Client-Fingerprint $ssl_client_fingerprint;\n"
        )
    else:  # nobody's certificate to pass on: a browser cannot pass itself off as a trusted proxy
        identity = (
            '    proxy_set_header X-Certificate-Client-CN "";\n'
            '    proxy_set_header X-Certificate-Client-Fingerprint "";\n'
        )
    head = f"  listen {NGINX_PORT}{' ssl' if settings.tls else ''};\n  client_max_body_size 0;\n"
    if settings.tls:
        head += (
            f"  ssl_certificate {NGINX_CERTIFICATES}/tls.crt;\n"
            f"  ssl_certificate_key {NGINX_CERTIFICATES}/tls.key;\n"
        )
    if settings.mtls:
        # optional, so that a browser without one gets the page saying what to do rather than a failed handshake
        head += f"  ssl_client_certificate {NGINX_CERTIFICATES}/ca.crt;\n  ssl_verify_client optional;\n"
    locations = [
        '  location = /healthz {\n    default_type text/plain;\n    return 200 "Healthy\\n";\n  }\n',
        _location("/static/", "    alias /static/;\n    default_type application/json;\n", check),
        *(_location(path, f"    proxy_pass {upstream};\n", check) for path, upstream in routes),
        _location(
            "/",
            f"    proxy_pass http://127.0.0.1:{GRPC_WEB_PORT};\n"
            "    proxy_http_version 1.1;\n    proxy_buffering off;\n    proxy_read_timeout 1h;\n" + identity,
            check,
        ),
    ]
    # the CN of the client certificate's subject (RFC 2253: `CN=user-admin,O=ArmoniK`)
    cn_map = (
        'map $ssl_client_s_dn $armonik_client_cn {\n  default "";\n  "~(^|,)CN=(?<cn>[^,]+)" $cn;\n}\n'
        if settings.mtls
        else ""
    )
    return cn_map + "server {\n" + head + "".join(locations) + "}\n"


def _certificates(ctx: Context, settings: Settings) -> list[Manifest]:
    """The Secrets of nginx's certificate and of the gRPC-Web container's (none without TLS)."""
    if not settings.tls:
        return []
    try:
        tls = read_ingress_tls(ctx.params, ctx.file)
    except ParametersError as exc:
        raise RenderError(str(exc)) from None
    hosts = [*service_names(service_name(ctx.params), ctx.ns), "localhost", "127.0.0.1"]
    certs = ensure_certificates(
        ctx.certificates,
        [ServerIdentity("ingress", hosts)],
        [INGRESS_PROXY] if settings.mtls else [],
        validity_days=tls.certificate_validity_days,
        key_size=tls.certificate_key_size,
    )
    server = certs.servers["ingress"]
    server_files = {"tls.crt": server.certificate.read_bytes(), "tls.key": server.key.read_bytes()}
    client_files = {"ca.crt": certs.ca.certificate.read_bytes()}
    if settings.mtls:
        server_files["ca.crt"] = settings.client_ca
        own = certs.clients[INGRESS_PROXY]
        client_files |= {"tls.crt": own.certificate.read_bytes(), "tls.key": own.key.read_bytes()}
    return [
        objects.secret(SERVER_SECRET, ctx.ns, "ingress", binary=server_files, kind="kubernetes.io/tls"),
        objects.secret(CLIENT_SECRET, ctx.ns, "ingress", binary=client_files),
    ]


def _grpc_web_env(ctx: Context, settings: Settings) -> dict[str, str]:
    cp = ctx.params.control_plane
    scheme = "https" if settings.tls else "http"
    env = {
        "Ingress__Host": "127.0.0.1",
        "Ingress__Port": str(GRPC_WEB_PORT),
        "ControlPlane__Endpoint": f"{scheme}://{ctx.host(cp.name)}:{cp.port}",
    }
    given = ctx.params.ingress or {}
    if given.get("cors_allowed_host"):
        env["Ingress__CorsAllowedOrigins"] = str(given["cors_allowed_host"])
    if settings.tls:
        env["ControlPlane__Tls__CaFile"] = f"{CERTIFICATES_PATH}/ca.crt"
    if settings.mtls:
        env["ControlPlane__Tls__ClientCertificateFile"] = f"{CERTIFICATES_PATH}/tls.crt"
        env["ControlPlane__Tls__ClientKeyFile"] = f"{CERTIFICATES_PATH}/tls.key"
        env["Ingress__TrustProxyIdentityHeaders"] = "true"
    return env


def manifests(ctx: Context, settings: Settings, routes: list[tuple[str, str]]) -> list[Manifest]:
    """The ingress's objects (none when `ingress` is null)."""
    if ctx.params.ingress is None:
        return []
    given = ctx.params.ingress
    cp = ctx.params.control_plane
    description = ctx.params.environment_description or EnvironmentDescription()
    static = {
        **{k: json.dumps(v) for k, v in ctx.params.static.items()},
        "environment.json": json.dumps(asdict(description)),
    }
    grpc_web: dict[str, Any] = {
        "name": "grpc-web",
        "image": ctx.image(cp.image, cp.tag, "control_plane"),
        "imagePullPolicy": "IfNotPresent",
        "command": ["python", "-m", "armonik_core.ingress"],
        "envFrom": [{"configMapRef": {"name": LOG}}],
        "env": objects.env_list(_grpc_web_env(ctx, settings)),
        "readinessProbe": objects.http_probe("/healthz", GRPC_WEB_PORT, period=10, failures=3),
        "securityContext": objects.container_security(),
    }
    volumes: list[dict[str, Any]] = [
        {"name": "static", "configMap": {"name": "ingress-static"}},
        {"name": "nginx", "configMap": {"name": "ingress-nginx"}},
    ]
    nginx_mounts = [
        {"name": "static", "mountPath": "/static", "readOnly": True},
        {"name": "nginx", "mountPath": "/etc/nginx/conf.d", "readOnly": True},
    ]
    if settings.tls:
        grpc_web["volumeMounts"] = [
            {"name": "certificates", "mountPath": CERTIFICATES_PATH, "readOnly": True}
        ]
        nginx_mounts.append({"name": "server-certificate", "mountPath": NGINX_CERTIFICATES, "readOnly": True})
        volumes += [
            {"name": "certificates", "secret": {"secretName": CLIENT_SECRET}},
            {"name": "server-certificate", "secret": {"secretName": SERVER_SECRET}},
        ]
    port_name = "https" if settings.tls else "http"
    probe = objects.http_probe("/healthz", port_name, period=10, failures=3)
    if settings.tls:
        probe["httpGet"]["scheme"] = "HTTPS"
    nginx = {
        "name": "nginx",
        "image": ctx.image(given.get("image", "nginxinc/nginx-unprivileged"), given.get("tag"), "ingress"),
        "imagePullPolicy": "IfNotPresent",
        "ports": objects.container_ports(**{port_name: NGINX_PORT}),
        "volumeMounts": nginx_mounts,
        "readinessProbe": probe,
        # unprivileged (port 8080, files under /tmp): no capability needed, as upstream's image
        "securityContext": objects.container_security(),
    }
    pod_labels = objects.labels("ingress")
    pod = {"containers": [nginx, grpc_web], "volumes": volumes, "securityContext": objects.pod_security()}
    return [
        *_certificates(ctx, settings),
        objects.config_map("ingress-static", ctx.ns, "ingress", static),
        objects.config_map(
            "ingress-nginx", ctx.ns, "ingress", {"default.conf": nginx_conf(routes, settings)}
        ),
        objects.deployment("ingress", ctx.ns, pod_labels, pod, replicas=int(given.get("replicas", 1))),
        objects.service(
            service_name(ctx.params),
            ctx.ns,
            pod_labels,
            [(port_name, http_port(ctx), port_name)],
            given.get("service_type", "LoadBalancer"),
        ),
    ]
