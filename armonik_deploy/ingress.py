"""The local target's ingress: its settings from the parameters, and the URLs it gives the outputs.

Upstream's `ingress` block sets the HTTP port (`http_port`, 5000) and CORS (`cors_allowed_host`); `admin_gui`
names a GUI build for the local target (`dist`, a `dist/admin/browser` folder, relative to the parameters
file), or, without `dist`, the build is taken from upstream's GUI image (`dockerhubaneo/armonik_admin_app`,
tag from `admin_gui.tag` or versions.tfvars.json) where podman or docker has it or can pull it, into
`<generated>/admin-gui/<tag>/` (armonik_deploy.admin_gui, at deploy time); `environment_description` becomes
`/static/environment.json` and each entry of `static` a file of `/static/`, as upstream's ConfigMap does.
Without a build, `/admin/` goes to the project's console.

The outputs then name `admin_app_url` (`/admin/`), `grafana_url` (the metrics-over-time view, `/monitoring/`)
and `seq_web_url` (the log search, `/logs/`), all on the ingress.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from armonik_deploy.parameters import EnvironmentDescription, Parameters, ParametersError, Versions

DEFAULT_HTTP_PORT = 5000
ADMIN_GUI_IMAGE = "dockerhubaneo/armonik_admin_app"
ADMIN_GUI_FOLDER = "admin-gui"


@dataclass(frozen=True, slots=True)
class IngressUrls:
    admin_app_url: str
    grafana_url: str | None
    seq_web_url: str


def http_port(params: Parameters, file: Path) -> int:
    raw = (params.ingress or {}).get("http_port", DEFAULT_HTTP_PORT)
    if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= 65535:
        raise ParametersError(file, "ingress.http_port", f"{raw!r} is not a port number (1-65535)")
    if raw == params.control_plane.port:
        raise ParametersError(file, "ingress.http_port", f"{raw} is already control_plane.port")
    return raw


def admin_gui_dist(params: Parameters, file: Path) -> str | None:
    dist = (params.admin_gui or {}).get("dist")
    if not dist:
        return None
    path = (file.resolve().parent / str(dist)).resolve()
    if not path.is_dir() or not any((child / "index.html").is_file() for child in path.iterdir()):
        raise ParametersError(
            file,
            "admin_gui.dist",
            f"not an Admin GUI build (a folder with one folder per locale, each with index.html): {path}",
        )
    return str(path)


def admin_gui_image(params: Parameters, versions: Versions | None) -> str | None:
    """Upstream's GUI image to take the build from: `admin_gui` without `dist`, and a tag for the image."""
    given = params.admin_gui
    if given is None or given.get("dist"):
        return None
    image = str(given.get("image") or ADMIN_GUI_IMAGE)
    tag = versions.tag_of(image, given.get("tag")) if versions else given.get("tag")
    return f"{image}:{tag}" if tag else None


def admin_gui_folder(generated: Path, image: str) -> Path:
    """Where the build taken from `image` is kept (one folder per tag: a new tag is taken again)."""
    return generated / ADMIN_GUI_FOLDER / re.sub(r"[^A-Za-z0-9_.-]", "_", image.rpartition(":")[2])


def static_files(params: Parameters) -> dict[str, Any]:
    """`/static/<name>` -> content: upstream's `static` entries and `environment.json`."""
    description = params.environment_description or EnvironmentDescription()
    return {**params.static, "environment.json": asdict(description)}


def ingress_env(
    params: Parameters,
    file: Path,
    *,
    host: str,
    control_plane_url: str,
    generated: Path,
    metrics_url: str | None,
    gui_image: str | None = None,
) -> dict[str, str]:
    """The ingress's own `Ingress__*` settings (the TLS client settings are added by the plan)."""
    env = {
        "Ingress__Host": host,
        "Ingress__Port": str(http_port(params, file)),
        "ControlPlane__Endpoint": control_plane_url,
        "Ingress__Static": json.dumps(static_files(params), sort_keys=True),
        "Ingress__LogsDirectory": str(generated / "logs"),
    }
    cors = (params.ingress or {}).get("cors_allowed_host")
    if cors:
        env["Ingress__CorsAllowedOrigins"] = str(cors)
    dist = admin_gui_dist(params, file)
    if dist:
        env["Ingress__AdminGuiDirectory"] = dist
    elif gui_image:
        env["Ingress__AdminGuiDirectory"] = str(admin_gui_folder(generated, gui_image))
    if metrics_url:
        env["Ingress__MetricsUrl"] = metrics_url
    return env


def ingress_urls(base: str, metrics: bool) -> IngressUrls:
    return IngressUrls(
        admin_app_url=f"{base}/admin/",
        grafana_url=f"{base}/monitoring/" if metrics else None,
        seq_web_url=f"{base}/logs/",
    )
