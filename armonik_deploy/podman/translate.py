"""Rendered Kubernetes objects -> podman pods, containers, volumes and files.

Generic over what the renderer produces: every Deployment becomes `replicas` podman pods (one per replica, named
`<prefix>-<deployment>-<i>`, whose containers share one network namespace, that of the pod's infra container,
as a Kubernetes pod's do: the ingress' proxy and gRPC-Web server, or an agent and its worker on TCP channels,
reach each other on localhost), every Job a container run to completion before them, every ConfigMap and Secret
the environment (envFrom, env valueFrom) or read-only files (volumes) of the containers that name them, every
PersistentVolumeClaim a named volume kept across deployments, every emptyDir a volume of its pod, and every
Service a name (`<svc>`, `<svc>.<ns>`, `<svc>.<ns>.svc[.cluster.local]`) that resolves to the gateway of the
deployment's own podman network, where the Service's port is published and forwarded to the target container.
The same ports are published on the host address, so that clients on the host reach the Services too, except
those that the NetworkPolicies open only to other pods (`armonik_deploy.podman.policy`).

Not translated: probes, resource limits (cgroup controllers are often not delegated on such machines),
preStop hooks (containers are stopped agent first), and objects of other kinds (ScaledObject, charts):
`Translation.skipped` names them. A Deployment whose image is neither one of ours nor present locally is
skipped with a warning (no registry is assumed), so an observability Deployment does not block the rest, unless
the project builds a stand-in for it (`stand_ins`: the ingress' nginx), which then runs in its place.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from armonik_deploy.podman.policy import open_to_host

Manifest = Mapping[str, Any]
LABEL = "io.armonik.podman.deployment"
SPEC_LABEL = "io.armonik.podman.spec"
TRANSLATED = {
    "Deployment",
    "Job",
    "ConfigMap",
    "Secret",
    "Service",
    "PersistentVolumeClaim",
    "Namespace",
    "NetworkPolicy",
}


@dataclass(frozen=True, slots=True)
class FileSet:
    """A ConfigMap or Secret volume: files written under the deployment's folder and bind-mounted read-only."""

    name: str
    files: dict[str, bytes]
    owner: tuple[int, int]
    mode: int


@dataclass(slots=True)
class Container:
    name: str
    image: str
    args: list[str]


@dataclass(slots=True)
class Pod:
    """One replica of a Deployment (or a Job's run): its containers in order, and a hash of their specs."""

    name: str
    kind: str
    containers: list[Container]
    volumes: list[str] = field(default_factory=list)
    #: `podman pod create` options: the network, names and published ports its containers share.
    options: list[str] = field(default_factory=list)

    @property
    def spec_hash(self) -> str:
        text = json.dumps(
            [self.options, [[c.name, c.image, c.args] for c in self.containers]], sort_keys=True
        )
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(slots=True)
class Translation:
    jobs: list[Pod] = field(default_factory=list)
    pods: list[Pod] = field(default_factory=list)
    #: Pods the Jobs need, started before them (the relay to the host's services: `host_services`).
    relays: list[Pod] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    files: list[FileSet] = field(default_factory=list)
    #: Service name -> (port, host port) published.
    services: dict[str, list[int]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Network:
    """Where the deployment's containers live: the podman network, its gateway, and the host address."""

    name: str
    gateway: str
    host: str


class TranslationError(ValueError):
    """A rendered object refers to something that was not rendered (a ConfigMap, a Secret, a port)."""


def secret_data(manifest: Manifest) -> dict[str, bytes]:
    data = {k: base64.b64decode(v) for k, v in (manifest.get("data") or {}).items()}
    data |= {k: str(v).encode() for k, v in (manifest.get("stringData") or {}).items()}
    return data


def local_image(image: str) -> str:
    """A name without a registry is one of this machine's images (`localhost/`), as podman names them."""
    first = image.split("/", 1)[0]
    if "/" in image and ("." in first or ":" in first or first == "localhost"):
        return image
    return f"localhost/{image}"


def repository(image: str) -> str:
    """`image` without its tag (a registry's port, `host:5000/name`, is not a tag)."""
    name, colon, tag = image.rpartition(":")
    return name if colon and "/" not in tag else image


class _Translator:
    def __init__(
        self,
        manifests: Sequence[Manifest],
        prefix: str,
        network: Network,
        ours: Callable[[str], bool],
        stand_ins: Mapping[str, str],
    ):
        self.prefix = prefix
        self.network = network
        self.ours = ours
        self.stand_ins = stand_ins
        #: Image named by a container -> the image podman runs (its local name, or a stand-in's).
        self.runs: dict[str, str] = {}
        self.configmaps = {
            m["metadata"]["name"]: dict(m.get("data") or {}) for m in _kind(manifests, "ConfigMap")
        }
        self.secrets = {m["metadata"]["name"]: secret_data(m) for m in _kind(manifests, "Secret")}
        self.services = _kind(manifests, "Service")
        self.policies = _kind(manifests, "NetworkPolicy")
        self.namespace = next((m["metadata"]["name"] for m in _kind(manifests, "Namespace")), "default")
        self.out = Translation()
        self.out.skipped = [
            f"{m['kind']}/{m['metadata']['name']}" for m in manifests if m["kind"] not in TRANSLATED
        ]
        self.hosts = sorted({h for s in self.services for h in self._names(s["metadata"]["name"])})

    def _names(self, service: str) -> list[str]:
        ns = self.namespace
        return [service, f"{service}.{ns}", f"{service}.{ns}.svc", f"{service}.{ns}.svc.cluster.local"]

    # -- environment ----------------------------------------------------------------------------------------
    def _source(self, kind: str, name: str) -> Mapping[str, Any]:
        table: Mapping[str, Mapping[str, Any]] = self.configmaps if kind == "configMap" else self.secrets
        if name not in table:
            raise TranslationError(f"{kind} {name!r} is referred to but not rendered")
        return table[name]

    def _env(self, container: Manifest, pod_name: str) -> dict[str, str]:
        env: dict[str, str] = {}
        for source in container.get("envFrom") or []:
            for kind in ("configMap", "secret"):
                ref = source.get(f"{kind}Ref")
                if ref:
                    values = self._source(kind, ref["name"])
                    env |= {k: v.decode() if isinstance(v, bytes) else str(v) for k, v in values.items()}
        for item in container.get("env") or []:
            env[item["name"]] = self._env_value(item, pod_name)
        return env

    def _env_value(self, item: Manifest, pod_name: str) -> str:
        if "value" in item:
            return str(item["value"])
        source = item.get("valueFrom") or {}
        if "fieldRef" in source:
            path = source["fieldRef"]["fieldPath"]
            return {"metadata.name": pod_name, "metadata.namespace": self.namespace}.get(path, "")
        for kind in ("configMap", "secret"):
            ref = source.get(f"{kind}KeyRef")
            if ref:
                value = self._source(kind, ref["name"])[ref["key"]]
                return value.decode() if isinstance(value, bytes) else str(value)
        raise TranslationError(f"env {item['name']}: unsupported source {sorted(source)}")

    # -- volumes --------------------------------------------------------------------------------------------
    def _volume_source(self, volume: Manifest, pod_name: str, owner: tuple[int, int]) -> tuple[str, str]:
        """(source, options) of `-v source:path:options` for a pod's volume."""
        if "persistentVolumeClaim" in volume:
            name = f"{self.prefix}-{volume['persistentVolumeClaim']['claimName']}"
            if name not in self.out.volumes:
                self.out.volumes.append(name)
            return name, "U"
        if "emptyDir" in volume:
            return f"{pod_name}-{volume['name']}", "U"
        for kind, key in (("secret", "secretName"), ("configMap", "name")):
            if kind in volume:
                ref = volume[kind][key]
                data = self._source(kind, ref)
                files = {k: v if isinstance(v, bytes) else str(v).encode() for k, v in data.items()}
                name = f"{kind.lower()}-{ref}"
                mode = int(volume[kind].get("defaultMode", 0o444))
                if all(f.name != name for f in self.out.files):
                    self.out.files.append(FileSet(name, files, owner, mode))
                return f"@files/{name}", "ro"
        raise TranslationError(f"volume {volume['name']}: unsupported source")

    # -- containers -----------------------------------------------------------------------------------------
    def _container(
        self, pod: Manifest, container: Manifest, pod_name: str, restart: str, grace: int
    ) -> Container:
        security = pod.get("securityContext") or {}
        user, group = int(security.get("runAsUser", 0)), int(security.get("runAsGroup", 0))
        args = [
            "--name",
            f"{pod_name}-{container['name']}",
            "--restart",
            restart,
            "--stop-timeout",
            str(grace),
        ]
        if "runAsUser" in security:
            args += ["--user", f"{user}:{group}"]
        if "fsGroup" in security:
            args += ["--group-add", str(security["fsGroup"])]
        context = container.get("securityContext") or {}
        for cap in (context.get("capabilities") or {}).get("drop") or []:
            args += ["--cap-drop", cap]
        if context.get("allowPrivilegeEscalation") is False:
            args += ["--security-opt", "no-new-privileges"]
        for key, value in sorted(self._env(container, pod_name).items()):
            args += ["--env", f"{key}={value}"]
        volumes = {v["name"]: v for v in pod.get("volumes") or []}
        for mount in container.get("volumeMounts") or []:
            source, options = self._volume_source(volumes[mount["name"]], pod_name, (user, group))
            if mount.get("readOnly") and options != "ro":
                options = f"{options},ro"
            args += ["--volume", f"{source}:{mount['mountPath']}:{options}"]
        if container.get("command"):
            args += ["--entrypoint", json.dumps(container["command"])]
        return Container(
            container["name"], self.runs[container["image"]], [*args, "@image", *container.get("args", [])]
        )

    def _network(self) -> list[str]:
        """The deployment's network, and the Services' names resolving to its gateway."""
        hosts = [a for host in self.hosts for a in ("--add-host", f"{host}:{self.network.gateway}")]
        return ["--network", self.network.name, *hosts]

    def _publish(self, workload: Manifest, pod_spec: Manifest) -> list[str]:
        """`--publish` options of the Service ports that select the workload's pods (see the module's notes)."""
        published: list[str] = []
        labels = workload["spec"]["template"]["metadata"].get("labels") or {}
        for service in self.services:
            selector = service["spec"].get("selector") or {}
            if not selector or any(labels.get(k) != v for k, v in selector.items()):
                continue
            for port in service["spec"].get("ports") or []:
                target = self._target_port(pod_spec, port)
                if target is None:
                    raise TranslationError(f"Service {service['metadata']['name']}: no container port {port}")
                index, container_port = target
                declared = pod_spec["containers"][index].get("ports") or []
                port_name = next(
                    (p.get("name") for p in declared if p["containerPort"] == container_port), None
                )
                addresses = [self.network.gateway]
                if open_to_host(self.policies, labels, container_port, port_name):
                    addresses.append(self.network.host)
                for address in addresses:
                    published[:0] = ["--publish", f"{address}:{port['port']}:{container_port}"]
                self.out.services.setdefault(service["metadata"]["name"], []).append(int(port["port"]))
        return published

    @staticmethod
    def _target_port(pod_spec: Manifest, port: Manifest) -> tuple[int, int] | None:
        target = port.get("targetPort", port["port"])
        for index, container in enumerate(pod_spec["containers"]):
            for declared in container.get("ports") or []:
                if target in (declared.get("name"), declared["containerPort"]):
                    return index, int(declared["containerPort"])
        return None

    def workload(self, manifest: Manifest) -> None:
        name = manifest["metadata"]["name"]
        spec = manifest["spec"]
        pod_spec = spec["template"]["spec"]
        images = [c["image"] for c in pod_spec.get("initContainers", []) + pod_spec["containers"]]
        absent = [i for i in images if not self._resolve(i, f"{manifest['kind']}/{name}")]
        if absent:
            self.out.warnings.append(
                f"{manifest['kind']}/{name} not run: image {', '.join(absent)} is not here"
            )
            self.out.skipped.append(f"{manifest['kind']}/{name}")
            return
        grace = int(pod_spec.get("terminationGracePeriodSeconds", 30))
        if manifest["kind"] == "Job":
            pod_name = f"{self.prefix}-job-{name}"
            containers = [self._container(pod_spec, c, pod_name, "no", grace) for c in pod_spec["containers"]]
            for container in containers:  # run on their own, one after the other
                container.args[:0] = self._network()
            self.out.jobs.append(Pod(pod_name, "Job", containers))
            return
        for replica in range(int(spec.get("replicas", 1))):
            pod_name = f"{self.prefix}-{name}-{replica}"
            containers = [
                self._container(pod_spec, c, pod_name, "always", grace) for c in pod_spec["containers"]
            ]
            options = self._network() + (self._publish(manifest, pod_spec) if replica == 0 else [])
            empty = [f"{pod_name}-{v['name']}" for v in pod_spec.get("volumes") or [] if "emptyDir" in v]
            self.out.pods.append(Pod(pod_name, "Deployment", containers, empty, options))

    def _resolve(self, image: str, workload: str) -> bool:
        """Whether `image`, or its stand-in, is here (and which one runs: `self.runs`)."""
        if image in self.runs:
            return True
        if self.ours(image):
            self.runs[image] = local_image(image)
            return True
        stand_in = self.stand_ins.get(repository(image))
        if stand_in is None or not self.ours(stand_in):
            return False
        self.runs[image] = stand_in
        self.out.warnings.append(f"{workload}: image {image} is not here, {stand_in} runs in its place")
        return True


def _kind(manifests: Sequence[Manifest], kind: str) -> list[Manifest]:
    return [m for m in manifests if m["kind"] == kind]


def translate(
    manifests: Sequence[Manifest],
    prefix: str,
    network: Network,
    ours: Callable[[str], bool],
    stand_ins: Mapping[str, str] | None = None,
) -> Translation:
    """The podman objects of `manifests`; `ours(image)` says whether an image can run here, `stand_ins` maps
    an upstream image's name (without tag) to the image that runs in its place when it cannot."""
    translator = _Translator(manifests, prefix, network, ours, stand_ins or {})
    for manifest in manifests:
        if manifest["kind"] in ("Deployment", "Job"):
            translator.workload(manifest)
    return translator.out
