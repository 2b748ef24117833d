"""Settings of the ingress, from `Section__Key` environment variables.

- `Ingress__Host`, `Ingress__Port` (5000): where the ingress listens (HTTP/1.1, the browser's side);
- `Ingress__Tls__CertificateFile`, `Ingress__Tls__KeyFile`: HTTPS with this certificate (the deployment's
  `ingress` certificate); with `Ingress__Tls__ClientCaFile`, browsers must present a certificate signed by
  those authorities, whose identity is passed on to the control plane (https.py);
- `Authenticator__CNHeader`, `Authenticator__FingerprintHeader`: the headers that identity goes in (upstream's
  `X-Certificate-Client-CN` / `-Fingerprint` by default), as the control plane reads them;
- `Ingress__TrustProxyIdentityHeaders` (false): a TLS-terminating proxy in front (nginx in the same pod on
  Kubernetes) checks the browsers' certificates and sets those headers itself; the ingress takes the identity
  from them and refuses requests without. Only with a loopback `Ingress__Host`: a port others can reach would
  let them name anyone;
- `ControlPlane__Endpoint`: the control plane's client port (`host:port`, `https://host:port` with TLS),
  with `ControlPlane__Tls__CaFile` and, when the control plane asks for client certificates, the ingress's
  own `ControlPlane__Tls__ClientCertificateFile` / `ClientKeyFile` (the deployment's certificate with CN
  `armonik-ingress`, the name to list as a trusted proxy);
- `Ingress__CorsAllowedOrigins`: comma-separated origins allowed to call gRPC-Web from another origin (`*` for
  any); empty (the default) allows none, so a page of another site cannot drive the control plane from a
  user's browser. Upstream's nginx allows `*` unless `ingress.cors_allowed_host` says otherwise;
- `Ingress__Static`: a JSON object, file name -> content, served under `/static/` (`environment.json`,
  `gui_configuration`, as upstream's ConfigMap holds them);
- `Ingress__AdminGuiDirectory`: an Admin GUI build (`dist/admin/browser`: one folder per locale);
- `Ingress__LogsDirectory`: the deployment's JSON log files (`<process>.log`) searched by `/logs/`;
- `Ingress__MetricsUrl`: the metrics exporter's `/metrics`, sampled for `/monitoring/`;
  `Ingress__MetricsInterval` (seconds, 5) and `Ingress__MetricsHistory` (samples kept, 720).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from armonik_core.config import ConfigurationError, Environment
from armonik_core.control_plane.auth.settings import AuthSettings
from armonik_core.tls import ClientTlsSettings, ServerTlsSettings

LOOPBACK = ("127.0.0.1", "::1", "localhost")


def _optional_path(env: Environment, key: str) -> Path | None:
    raw = env.get(key, "").strip()
    return Path(raw) if raw else None


def _static(env: Environment) -> dict[str, object]:
    raw = env.get("Ingress__Static", "").strip()
    if not raw:
        return {}
    try:
        files = json.loads(raw)
    except ValueError as exc:
        raise ConfigurationError(f"Ingress__Static: not JSON: {exc}") from None
    if not isinstance(files, dict):
        raise ConfigurationError("Ingress__Static: expected an object of file name -> content")
    return files


@dataclass(slots=True)
class IngressSettings:
    host: str = "127.0.0.1"
    port: int = 5000
    control_plane: str = "127.0.0.1:5001"
    tls: ClientTlsSettings | None = None
    #: HTTPS on the browser's side (None: plain HTTP); with a client CA, mTLS.
    server_tls: ServerTlsSettings | None = None
    identity_headers: tuple[str, str] = ("x-certificate-client-cn", "x-certificate-client-fingerprint")
    trust_proxy_headers: bool = False
    cors_origins: tuple[str, ...] = ()
    static: dict[str, object] = field(default_factory=dict)
    admin_gui_directory: Path | None = None
    logs_directory: Path | None = None
    metrics_url: str | None = None
    metrics_interval: float = 5.0
    metrics_history: int = 720
    log_level: str = "INFO"
    environment: Environment = field(default_factory=lambda: Environment({}))

    @staticmethod
    def from_env(environ: Mapping[str, str] | None = None) -> IngressSettings:
        env = Environment(environ)
        port = env.get_int("Ingress__Port", 5000)
        if not 0 <= port <= 65535:
            raise ConfigurationError(f"Ingress__Port={port}: not a port number")
        endpoint = env.get("ControlPlane__Endpoint", "127.0.0.1:5001")
        interval = env.get_float("Ingress__MetricsInterval", 5.0)
        if interval <= 0:
            raise ConfigurationError(f"Ingress__MetricsInterval={interval}: must be positive")
        history = env.get_int("Ingress__MetricsHistory", 720)
        if history < 1:
            raise ConfigurationError(f"Ingress__MetricsHistory={history}: must be at least 1")
        origins = tuple(o.strip().rstrip("/") for o in env.get("Ingress__CorsAllowedOrigins", "").split(","))
        auth = AuthSettings.from_env(env)
        host = env.get("Ingress__Host", "127.0.0.1")
        trust = env.get_bool("Ingress__TrustProxyIdentityHeaders", False)
        if trust and host not in LOOPBACK:
            raise ConfigurationError(
                f"Ingress__TrustProxyIdentityHeaders=true with Ingress__Host={host}: identity headers are "
                "believed only from a proxy on the same machine; listen on 127.0.0.1"
            )
        return IngressSettings(
            host=host,
            port=port,
            control_plane=endpoint,
            tls=ClientTlsSettings.from_env(env, endpoint),
            server_tls=ServerTlsSettings.from_env(env, "Ingress"),
            identity_headers=(auth.cn_header, auth.fingerprint_header),
            trust_proxy_headers=trust,
            cors_origins=tuple(o for o in origins if o),
            static=_static(env),
            admin_gui_directory=_optional_path(env, "Ingress__AdminGuiDirectory"),
            logs_directory=_optional_path(env, "Ingress__LogsDirectory"),
            metrics_url=env.get("Ingress__MetricsUrl", "").strip() or None,
            metrics_interval=interval,
            metrics_history=history,
            log_level=env.log_level(),
            environment=env,
        )
