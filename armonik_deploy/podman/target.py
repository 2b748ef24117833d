"""`armonik-deploy deploy|status|destroy --target podman`: the Kubernetes target's objects, run by podman.

Deploy: read the parameters and versions, make or keep the certificates (as the Kubernetes target does), render
the objects, build the images that are missing (`--base` or `ARMONIK_BASE_IMAGE` names the base), translate
and apply them (`translate`, `run`), wait for the control plane's port on the host, and write the outputs
(`armonik-output.json`, `armonik-cli.yaml`) with the host's endpoint. Everything of it lives under
`<generated>/podman/` (rendered manifests, credentials, certificates, the ConfigMap and Secret files).
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from armonik_deploy.images.build import build, images_of, missing, stand_ins
from armonik_deploy.images.engine import Engine, EngineError, find_engine
from armonik_deploy.kubernetes.apply import Endpoint, make_certificates, write_kubernetes_outputs
from armonik_deploy.kubernetes.context import CONTROL_PLANE_IMAGE, Context, Credentials
from armonik_deploy.kubernetes.ingress import service_name as ingress_service
from armonik_deploy.kubernetes.operators import operator_urls
from armonik_deploy.kubernetes.render import (
    CERTIFICATES_FOLDER,
    load_credentials,
    render,
    save_credentials,
    write,
)
from armonik_deploy.parameters import Parameters, Versions, load_parameters, load_versions
from armonik_deploy.podman import run
from armonik_deploy.podman.host_services import reach_host, relay_pod
from armonik_deploy.podman.translate import Network, Translation, local_image, translate
from armonik_deploy.tls import read_ingress_tls

FOLDER = "podman"
READY_TIMEOUT = 120.0


@dataclass(slots=True)
class Deployed:
    url: str
    output: Path
    cli: Path
    changes: run.Changes
    built: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def prefix_of(params: Parameters, generated: Path) -> str:
    """Names of this deployment's objects: the namespace and a digest of its generated folder, so that two
    deployments from two folders never share a container."""
    digest = hashlib.sha256(str(generated.resolve()).encode()).hexdigest()[:6]
    return f"{params.namespace}-{digest}"


def _engine(generated: Path) -> Engine:
    return find_engine(generated.resolve() / FOLDER)


def _ours(engine: Engine) -> Callable[[str], bool]:
    def available(image: str) -> bool:
        return engine.image_exists(local_image(image))

    return available


def _wait_port(host: str, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host, port), timeout=2).close()
            return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"the control plane does not answer on {host}:{port} after {timeout:.0f} s")


def deploy(
    parameters: Path,
    versions: Path,
    generated: Path,
    *,
    base: str | None = None,
    timeout: float | None = None,
) -> Deployed:
    params = load_parameters(parameters)
    the_versions = load_versions(versions)
    folder = generated.resolve() / FOLDER
    engine = _engine(generated)
    prefix = prefix_of(params, generated)
    gateway = run.ensure_network(engine, prefix, prefix)
    params, forwards = reach_host(params, parameters, gateway)
    tls = read_ingress_tls(params, parameters)
    certificates = make_certificates(params, tls, folder / CERTIFICATES_FOLDER)
    credentials = load_credentials(folder)
    rendered = render(
        params,
        the_versions,
        parameters,
        credentials=credentials,
        certificates=folder / CERTIFICATES_FOLDER,
    )
    save_credentials(folder, credentials)
    write(rendered, folder / "manifests")
    ours = images_of(the_versions)
    built = build(engine, missing(engine, ours), base=base or os.environ.get("ARMONIK_BASE_IMAGE") or None)
    network = Network(prefix, gateway, params.local.host)
    translation = translate(rendered.manifests, prefix, network, _ours(engine), stand_ins(ours))
    if forwards:
        relay_image = next(i.reference for i in ours if i.name == CONTROL_PLANE_IMAGE)
        translation.relays.append(relay_pod(prefix, relay_image, gateway, forwards))
    changes = run.apply(engine, translation, prefix, folder / "files")
    port = _control_plane_port(params, translation)
    _wait_port(params.local.host, port, timeout or READY_TIMEOUT)
    endpoint = Endpoint(params.local.host, port, "podman: published on the host")
    urls = _ingress_urls(params, translation, tls.tls, the_versions, parameters, folder / CERTIFICATES_FOLDER)
    output, cli = write_kubernetes_outputs(generated.resolve(), endpoint, tls, certificates, urls)
    return Deployed(
        endpoint.url(tls.tls),
        output,
        cli,
        changes,
        [b.image.reference for b in built],
        [*rendered.warnings, *translation.warnings],
    )


def _ingress_urls(
    params: Parameters,
    translation: Translation,
    tls: bool,
    versions: Versions,
    file: Path,
    certificates: Path,
) -> dict[str, str | None] | None:
    """The outputs' URLs of the operators' pages when the ingress runs (its nginx image is here)."""
    ports = translation.services.get(ingress_service(params)) if params.ingress is not None else None
    if not ports or "Deployment/ingress" in translation.skipped:
        return None
    ctx = Context(params, versions, file, Credentials(), certificates)
    return operator_urls(ctx, Endpoint(params.local.host, ports[0], "podman").url(tls))


def _control_plane_port(params: Parameters, translation: Translation) -> int:
    ports = translation.services.get(params.control_plane.name)
    if not ports:
        raise EngineError(f"no Service {params.control_plane.name} was published")
    return ports[0]


def status(parameters: Path, generated: Path) -> list[run.ContainerStatus]:
    params = load_parameters(parameters)
    return run.status(_engine(generated), prefix_of(params, generated))


def destroy(parameters: Path, generated: Path, *, purge: bool = False) -> list[str]:
    params = load_parameters(parameters)
    prefix = prefix_of(params, generated)
    return run.destroy(_engine(generated), prefix, prefix, purge=purge)
