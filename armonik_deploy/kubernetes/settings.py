"""How settings reach the pods: ConfigMaps and Secrets of `Section__Key` variables, read with `envFrom`.

As upstream's aggregates (Infra's `*-configmap.tf`), one ConfigMap per kind of settings, each container
reading the ones that concern it, later ones winning:

    log-configmap               Serilog__MinimumLevel, configurations.log              every process
    core-configmap              storage choice and addresses, configurations.core     control plane, agents,
                                                                                      exporter, init job
    control-plane-configmap     listen address, default partition, partitions, TLS,   control plane
                                configurations.control
    polling-configmap           shared cache folder, control plane endpoint, TLS,     polling agents
                                configurations.compute then .polling
    worker-configmap            configurations.compute then .worker                    workers
    metrics-exporter-configmap  listen address, configurations.metrics, extra_conf    metrics exporter
    init-configmap              partitions, configurations.jobs                        init job

Per-partition settings (partition id, agent id, the agent's and worker's channel addresses) are in the
containers' own `env`, as upstream adds them per partition. Credentials are never in a ConfigMap: each storage
service has a Secret of its `Section__Key` credentials (`MongoDB__User`, `Amqp__Password`, ...) that the core
processes read with `envFrom` and the service's own pod with `secretKeyRef`.

The storage choice reuses `armonik_deploy.storage.storage_env` (the local target's mapping of the `mongodb`,
`rabbitmq`, `activemq`, `redis` and `minio` blocks to `Components__*` variables), given the in-cluster
addresses of the services the renderer deploys instead of the blocks' local ones; a block that gives the address
of a service running outside the deployment (`running_services`) is used as the local target uses it, and no
service is deployed for it. MongoDB serves TLS only
(see `services.mongodb`): the core processes connect with `MongoDB__Tls` and trust the deployment's authority,
`MongoDB__CAFile`, from the Secret `mongodb-ca` mounted at `/mongodb/certs` (`Settings.mongodb_tls`).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from armonik_deploy.certificates import ServerIdentity, ensure_certificates
from armonik_deploy.kubernetes import gateway, objects
from armonik_deploy.kubernetes.auth import authentication_env
from armonik_deploy.kubernetes.context import Context, RenderError
from armonik_deploy.parameters import Parameters, ParametersError, env_strings, fragment_env
from armonik_deploy.plan import PARTITIONS_PREFIX, partition_json
from armonik_deploy.storage import ADDRESS_KEYS, names_running_service, storage_env
from armonik_deploy.tls import read_ingress_tls

#: Where the PersistentVolumeClaim of the embedded backends (SQLite state, file queue, objects) is mounted.
DATA_PATH = "/armonik/data"
DATA_CLAIM = "armonik-data"
#: The control plane's container port (upstream's 1080); the Service maps `control_plane.port` to it.
CONTROL_PLANE_PORT = 1080
METRICS_PORT = 1080
CACHE_PATH = "/cache"
CERTIFICATES_PATH = "/certificates"
MONGODB_CLUSTER = "mongodb-db-ps"
MONGODB_USER = "application_user"
#: The replica set's certificate, authority and key (Percona's `secrets.ssl` and `secrets.sslInternal`).
MONGODB_TLS_SECRET = f"{MONGODB_CLUSTER}-ssl"
#: The authority alone, for the core processes (none of them needs the replica set's key).
MONGODB_CA_SECRET = "mongodb-ca"
MONGODB_CA_PATH = "/mongodb/certs"

LOG, CORE, CONTROL, POLLING, WORKER, METRICS, INIT = (
    "log-configmap",
    "core-configmap",
    "control-plane-configmap",
    "polling-configmap",
    "worker-configmap",
    "metrics-exporter-configmap",
    "init-configmap",
)
SERVER_TLS_SECRET = "control-plane-tls"
CLIENT_TLS_SECRET = "polling-agent-tls"

_SECRET_SUFFIXES = ("__User", "__Password", "__Login", "__ConnectionString")
#: Variable section -> the Secret holding that service's credentials.
_CREDENTIAL_SECRETS = {
    "MongoDB": "mongodb-credentials",
    "Redis": "redis-credentials",
    "S3": "minio-credentials",
}


@dataclass(slots=True)
class Settings:
    """The rendered settings objects and what containers need to know about them."""

    manifests: list[objects.Manifest] = field(default_factory=list)
    #: Secrets of storage credentials every core process reads.
    credential_secrets: list[str] = field(default_factory=list)
    #: Whether an embedded backend is used, hence the data claim mounted in core pods.
    embedded: bool = False
    tls: bool = False
    mtls: bool = False
    #: With mTLS, the authorities client certificates are checked against (the control plane's and nginx's).
    client_ca: bytes = b""
    #: MongoDB serves TLS: the core pods mount MONGODB_CA_SECRET at MONGODB_CA_PATH.
    mongodb_tls: bool = False
    #: Per storage service: credential variable -> Secret holding it (for the service's own pod).
    credentials: dict[str, str] = field(default_factory=dict)


def service_names(service: str, namespace: str) -> list[str]:
    """The names a pod resolves a Service by: bare (same namespace), in the namespace, fully qualified."""
    return [
        service,
        f"{service}.{namespace}",
        f"{service}.{namespace}.svc",
        f"{service}.{namespace}.svc.cluster.local",
    ]


def control_plane_identity(name: str, namespace: str) -> ServerIdentity:
    """The control plane's certificate (`ingress.tls`): its Service's names and the compute gateway's, and
    localhost and 127.0.0.1 for clients outside the cluster through `kubectl port-forward`."""
    names = [*service_names(name, namespace), *service_names(gateway.SERVICE, namespace)]
    return ServerIdentity("control-plane", [*names, "localhost", "127.0.0.1"])


def mongodb_identity(namespace: str) -> ServerIdentity:
    """The certificate of the Percona replica set, for `secrets.ssl` and `secrets.sslInternal` alike, with the
    names Percona's documentation lists: its Service `<cluster>-rs0` (what the core processes connect to) and,
    by wildcard, each member under it (`<cluster>-rs0-<i>.<cluster>-rs0.<ns>.svc.cluster.local`: the members'
    names in the replica set's configuration, which drivers and the other members then connect to), each
    name bare, in the namespace, and fully qualified; and localhost (mongosh inside a member's pod). The
    members present it to each other too (x509 membership), hence the client usage."""
    names = service_names(f"{MONGODB_CLUSTER}-rs0", namespace)
    return ServerIdentity("mongodb", [*names, *(f"*.{n}" for n in names), "localhost"], client_auth=True)


def block(ctx: Context, name: str) -> dict[str, Any]:
    value = getattr(ctx.params, name)
    if not isinstance(value, dict):
        raise RenderError(f"{ctx.file}: {name}: expected an object or null, got {value!r}")
    return value


def running_services(params: Parameters) -> set[str]:
    """The storage blocks that name a service running outside the deployment (`storage.names_running_service`):
    the renderer deploys nothing for them and the core processes connect to the address they give."""
    return {name for name in ADDRESS_KEYS if names_running_service(name, getattr(params, name))}


def deployed_services(params: Parameters) -> list[str]:
    """The storage blocks whose service the renderer deploys, in the order it renders them."""
    running = running_services(params)
    return [n for n in ADDRESS_KEYS if getattr(params, n) is not None and n not in running]


def cluster_blocks(ctx: Context) -> dict[str, dict[str, Any] | None]:
    """The storage blocks with the in-cluster addresses and credentials of the services the renderer
    deploys, as `storage_env` reads them (the blocks' other keys are for the services themselves); a block
    naming a running service is taken as it is."""
    params, creds = ctx.params, ctx.credentials
    running = running_services(params)
    out: dict[str, dict[str, Any] | None] = {name: block(ctx, name) for name in running}
    if params.mongodb is not None and "mongodb" not in running:
        cluster = block(ctx, "mongodb").get("cluster") or {}
        database = cluster.get("database_name", "database")
        out["mongodb"] = {
            "host": ctx.host(f"{MONGODB_CLUSTER}-rs0"),
            "port": 27017,
            "database_name": database,
            "replica_set": "rs0",
            "auth_source": database,
            "tls": True,
            "ca_file": f"{MONGODB_CA_PATH}/ca.crt",
            "user": MONGODB_USER,
            "password": creds.get("mongodb", block(ctx, "mongodb").get("password")),
        }
    for queue in ("rabbitmq", "activemq"):
        if getattr(params, queue) is not None and queue not in running:
            given = block(ctx, queue)
            out[queue] = {
                "host": ctx.host(queue),
                "port": 5672,
                "user": given.get("user", "armonik"),
                "password": creds.get(queue, given.get("password")),
                **{k: given[k] for k in ("max_priority", "prefix") if k in given},
            }
    if params.redis is not None and "redis" not in running:
        given = block(ctx, "redis")
        out["redis"] = {
            "host": ctx.host("redis"),
            "port": 6379,
            "password": creds.get("redis", given.get("password")),
            **{k: given[k] for k in ("instance_name",) if k in given},
        }
    if params.minio is not None and "minio" not in running:
        given = block(ctx, "minio")
        out["minio"] = {
            "endpoint_url": f"http://{ctx.host('minio')}:9000",
            "login": given.get("login", "armonik"),
            "password": creds.get("minio", given.get("password")),
            "default_bucket": given.get("default_bucket", "minio-bucket"),
        }
    return out


def cluster_storage_env(ctx: Context) -> dict[str, str]:
    blocks = cluster_blocks(ctx)
    in_cluster = dataclasses.replace(
        ctx.params,
        mongodb=blocks.get("mongodb"),
        rabbitmq=blocks.get("rabbitmq"),
        activemq=blocks.get("activemq"),
        redis=blocks.get("redis"),
        minio=blocks.get("minio"),
    )
    try:
        return storage_env(in_cluster, ctx.file)
    except ParametersError as exc:
        raise RenderError(str(exc)) from None


def _secret_name(variable: str, queue: str | None) -> str:
    section = variable.split("__", 1)[0]
    if section == "Amqp":
        return f"{queue}-credentials"
    return _CREDENTIAL_SECRETS[section]


def build_settings(ctx: Context) -> Settings:
    params, configs = ctx.params, ctx.params.configurations
    out = Settings()
    storage = cluster_storage_env(ctx)
    queue = "rabbitmq" if params.rabbitmq is not None else "activemq"
    plain = {k: v for k, v in storage.items() if not k.endswith(_SECRET_SUFFIXES)}
    secret_values: dict[str, dict[str, str]] = {}
    for key, value in storage.items():
        if key.endswith(_SECRET_SUFFIXES):
            name = _secret_name(key, queue)
            secret_values.setdefault(name, {})[key] = value
            out.credentials[key] = name
    out.mongodb_tls = "mongodb" in deployed_services(params)
    out.embedded = (
        params.mongodb is None
        or storage.get("Components__QueueStorage") in (None, "embedded")
        or "Components__ObjectStorage" not in storage
    )
    core = {**plain, **({"Embedded__DataDirectory": DATA_PATH} if out.embedded else {})}

    partitions = {
        f"{PARTITIONS_PREFIX}{i}": json.dumps(partition_json(name, p))
        for i, (name, p) in enumerate(params.compute_plane.items())
    }
    server_tls, client_tls = _tls_env(ctx, out)
    auth_env, init_auth = authentication_env(ctx, out.mtls)
    scheme = "https" if out.tls else "http"
    endpoint = f"{scheme}://{ctx.host(params.control_plane.name)}:{params.control_plane.port}"
    exporter = params.metrics_exporter
    maps = {
        LOG: {"Serilog__MinimumLevel": params.logging_level, **fragment_env(configs.log)},
        CORE: {**core, **fragment_env(configs.core)},
        CONTROL: {
            "ControlPlane__Host": "0.0.0.0",
            "ControlPlane__Port": str(CONTROL_PLANE_PORT),
            "Submitter__DefaultPartition": params.control_plane.default_partition,
            **partitions,
            **server_tls,
            **auth_env,
            **gateway.control_plane_settings(),
            **fragment_env(configs.control),
        },
        POLLING: {
            "Pollster__SharedCacheFolder": f"{CACHE_PATH}/shared",
            "ControlPlane__Endpoint": endpoint,
            **gateway.agent_settings(ctx, out.tls),
            **client_tls,
            **fragment_env(configs.compute),
            **fragment_env(configs.polling),
        },
        WORKER: {**fragment_env(configs.compute), **fragment_env(configs.worker)},
        INIT: {**partitions, **init_auth, **fragment_env(configs.jobs)},
    }
    if exporter is not None:
        maps[METRICS] = {
            "MetricsExporter__Host": "0.0.0.0",
            "MetricsExporter__Port": str(METRICS_PORT),
            **fragment_env(configs.metrics),
            **env_strings(exporter.extra_conf),
        }
    out.manifests += [objects.config_map(name, ctx.ns, "settings", data) for name, data in maps.items()]
    for name, data in sorted(secret_values.items()):
        out.manifests.append(objects.secret(name, ctx.ns, name.removesuffix("-credentials"), data))
        out.credential_secrets.append(name)
    if out.embedded:
        out.manifests.append(objects.persistent_volume_claim(DATA_CLAIM, ctx.ns, "storage", "8Gi"))
    return out


def _tls_env(ctx: Context, out: Settings) -> tuple[dict[str, str], dict[str, str]]:
    """With `ingress.tls`, the control plane serves TLS itself (there is no ingress): its certificate and the
    agents' trust (and, with mTLS, their client certificate) as Secrets, and the variables naming the files."""
    try:
        settings = read_ingress_tls(ctx.params, ctx.file)
    except ParametersError as exc:
        raise RenderError(str(exc)) from None
    if not settings.tls:
        return {}, {}
    out.tls, out.mtls = True, settings.mtls
    ns = ctx.ns
    certs = ensure_certificates(
        ctx.certificates,
        [control_plane_identity(ctx.params.control_plane.name, ns)],
        ["client"] if settings.mtls else [],
        validity_days=settings.certificate_validity_days,
        key_size=settings.certificate_key_size,
    )
    ca = certs.ca.certificate.read_bytes()
    server = certs.servers["control-plane"]
    client_ca = ca + b"".join(_custom_cas(ctx, settings.custom_client_ca_file)) if settings.mtls else ca
    server_files = {"tls.crt": server.certificate.read_bytes(), "tls.key": server.key.read_bytes()}
    client_files = {"ca.crt": ca}
    server_env = {
        "ControlPlane__Tls__CertificateFile": f"{CERTIFICATES_PATH}/tls.crt",
        "ControlPlane__Tls__KeyFile": f"{CERTIFICATES_PATH}/tls.key",
    }
    client_env = {"ControlPlane__Tls__CaFile": f"{CERTIFICATES_PATH}/ca.crt"}
    if settings.mtls:
        out.client_ca = client_ca
        server_files["ca.crt"] = client_ca
        server_env["ControlPlane__Tls__ClientCaFile"] = f"{CERTIFICATES_PATH}/ca.crt"
        client = certs.clients["client"]
        client_files |= {"tls.crt": client.certificate.read_bytes(), "tls.key": client.key.read_bytes()}
        client_env |= {
            "ControlPlane__Tls__ClientCertificateFile": f"{CERTIFICATES_PATH}/tls.crt",
            "ControlPlane__Tls__ClientKeyFile": f"{CERTIFICATES_PATH}/tls.key",
        }
    out.manifests.append(
        objects.secret(SERVER_TLS_SECRET, ns, "control-plane", binary=server_files, kind="kubernetes.io/tls")
    )
    out.manifests.append(objects.secret(CLIENT_TLS_SECRET, ns, "compute-plane", binary=client_files))
    return server_env, client_env


def _custom_cas(ctx: Context, files: str) -> list[bytes]:
    base = ctx.file.resolve().parent
    out = []
    for part in (p.strip() for p in files.split(",")):
        if not part:
            continue
        path = Path(base / part)
        try:
            out.append(b"\n" + path.read_bytes().strip() + b"\n")
        except OSError as exc:
            raise RenderError(
                f"{ctx.file}: ingress.custom_client_ca_file: cannot read {path}: {exc}"
            ) from None
    return out
