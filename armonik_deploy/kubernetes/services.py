"""The third-party services the storage blocks and monitoring ask for, as upstream deploys them where it can
be rendered without a chart (see the package docstring for each choice)."""

from __future__ import annotations

from typing import Any

from armonik_deploy.certificates import CertificateError, ensure_certificates
from armonik_deploy.kubernetes import objects
from armonik_deploy.kubernetes.armonik import PROMETHEUS_PORT
from armonik_deploy.kubernetes.context import Context, RenderError
from armonik_deploy.kubernetes.settings import (
    MONGODB_CA_SECRET,
    MONGODB_CLUSTER,
    MONGODB_TLS_SECRET,
    MONGODB_USER,
    Settings,
    block,
    mongodb_identity,
)
from armonik_deploy.parameters import ParametersError
from armonik_deploy.tls import read_ingress_tls

Manifest = objects.Manifest


def _key_ref(settings: Settings, variable: str) -> dict[str, Any]:
    return {"secretKeyRef": {"name": settings.credentials[variable], "key": variable}}


def _secret_env(settings: Settings, **variables: str) -> list[dict[str, Any]]:
    """Environment variables of a third-party image (its own names) read from our credential Secrets:
    `RABBITMQ_USERNAME="Amqp__User"` is the key Amqp__User of the Secret holding it."""
    return [{"name": name, "valueFrom": _key_ref(settings, key)} for name, key in variables.items()]


def _container(name: str, image: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": image, "imagePullPolicy": "IfNotPresent", **extra}


def _broker(
    name: str,
    image: str,
    given: dict[str, Any],
    ports: dict[str, int],
    env: list[dict[str, Any]],
    **extra: Any,
) -> dict[str, Any]:
    """The container of an AMQP broker: ready once it accepts connections on its `amqp` port."""
    return _container(
        name,
        image,
        ports=objects.container_ports(**ports),
        env=env,
        **extra,
        readinessProbe=objects.tcp_probe("amqp", period=10, failures=3, delay=10),
        **_limits(given),
    )


def _limits(given: dict[str, Any]) -> dict[str, Any]:
    res = objects.resources(given.get("limits") or {}, given.get("requests") or {})
    return {"resources": res} if res else {}


def _node_selector(given: dict[str, Any]) -> dict[str, Any]:
    selector = given.get("node_selector") or {}
    return {"nodeSelector": {k: str(v) for k, v in selector.items()}} if selector else {}


def mongodb_tls_secrets(ctx: Context) -> list[Manifest]:
    """The replica set's certificate (`settings.mongodb_identity`, signed by the deployment's authority in
    `ctx.certificates`, with the key size and validity of `ingress`, as `armonik-deploy deploy` makes it) as
    the `kubernetes.io/tls` Secret Percona reads (ca.crt, tls.crt, tls.key), and the authority alone as the
    Secret the core processes mount to check it."""
    try:
        tls = read_ingress_tls(ctx.params, ctx.file)
        certs = ensure_certificates(
            ctx.certificates,
            [mongodb_identity(ctx.ns)],
            validity_days=tls.certificate_validity_days,
            key_size=tls.certificate_key_size,
        )
    except (ParametersError, CertificateError) as exc:
        raise RenderError(f"mongodb: TLS certificate: {exc}") from None
    ca = certs.ca.certificate.read_bytes()
    pair = certs.servers["mongodb"]
    server = {"ca.crt": ca, "tls.crt": pair.certificate.read_bytes(), "tls.key": pair.key.read_bytes()}
    return [
        objects.secret(MONGODB_TLS_SECRET, ctx.ns, "mongodb", binary=server, kind="kubernetes.io/tls"),
        objects.secret(MONGODB_CA_SECRET, ctx.ns, "mongodb", binary={"ca.crt": ca}),
    ]


def mongodb(ctx: Context, settings: Settings) -> list[Manifest]:
    """A `PerconaServerMongoDB` resource for the Percona operator (installed by a Helm chart: Terraform's
    helm_release by default, or `helm.py` with `armonik-deploy deploy --charts helm`, rendered into the
    manifests by `armonik-deploy render` when helm is there), its system-users Secret, the application
    user's password, and its TLS Secrets (`mongodb_tls_secrets`): the replica set serves TLS only."""
    given = block(ctx, "mongodb")
    cluster = given.get("cluster") or {}
    replicas = int(cluster.get("replicas", 1))
    database = cluster.get("database_name", "database")
    image = ctx.image(
        cluster.get("image", "percona/percona-server-mongodb"), cluster.get("tag"), "mongodb.cluster"
    )
    operator = given.get("operator") or {}
    operator_tag = ctx.versions.tag_of(operator.get("image", "percona/percona-server-mongodb-operator"))
    persistence = given.get("persistence")
    if persistence is None:
        volume: dict[str, Any] = {"emptyDir": {}}
    else:
        shards = persistence.get("shards") or {}
        pvc: dict[str, Any] = {
            "accessModes": shards.get("access_modes", ["ReadWriteOnce"]),
            "resources": {"requests": {"storage": shards.get("storage_size", "8Gi")}},
        }
        if shards.get("storage_class_name"):
            pvc["storageClassName"] = shards["storage_class_name"]
        volume = {"persistentVolumeClaim": pvc}
    replset: dict[str, Any] = {
        "name": "rs0",
        "size": replicas,
        "affinity": {"antiAffinityTopologyKey": "none"},
        "volumeSpec": volume,
        **_node_selector(cluster),
    }
    shard_resources = (given.get("resources") or {}).get("shards") or {}
    replset.update(_limits(shard_resources))
    system_users = {
        f"MONGODB_{role}_{field}": ctx.credentials.get(f"mongodb-{role.lower()}")
        if field == "PASSWORD"
        else role.lower().replace("_", "")
        for role in ("BACKUP", "DATABASE_ADMIN", "CLUSTER_ADMIN", "CLUSTER_MONITOR", "USER_ADMIN")
        for field in ("USER", "PASSWORD")
    }
    password = ctx.credentials.get("mongodb")
    resource = {
        "apiVersion": "psmdb.percona.com/v1",
        "kind": "PerconaServerMongoDB",
        "metadata": objects.metadata(MONGODB_CLUSTER, ctx.ns, "mongodb"),
        "spec": {
            "crVersion": operator_tag or "1.22.0",
            "image": image,
            "imagePullPolicy": "IfNotPresent",
            # One member is not a production replica set.
            "unsafeFlags": {"replsetSize": replicas < 3},
            # TLS only, with the deployment's certificate (no operator-made one): the core processes check it
            # against the authority of MONGODB_CA_SECRET. They authenticate with a password and present no
            # certificate, which mongod accepts with allowInvalidCertificates (the operator's default, and
            # upstream's setting); the members authenticate each other with the certificate of sslInternal.
            "tls": {"mode": "requireTLS", "allowInvalidCertificates": True},
            "secrets": {
                "users": f"{MONGODB_CLUSTER}-secrets",
                "ssl": MONGODB_TLS_SECRET,
                "sslInternal": MONGODB_TLS_SECRET,
            },
            "users": [
                {
                    "name": MONGODB_USER,
                    "db": database,
                    "passwordSecretRef": {"name": "application-user-password", "key": "password"},
                    "roles": [
                        {"name": "readWrite", "db": database},
                        {"name": "dbAdmin", "db": database},
                        {"name": "clusterAdmin", "db": "admin"},
                    ],
                }
            ],
            "replsets": [replset],
            "sharding": {"enabled": False},
            "backup": {"enabled": False},
        },
    }
    return [
        objects.secret(f"{MONGODB_CLUSTER}-secrets", ctx.ns, "mongodb", system_users),
        objects.secret("application-user-password", ctx.ns, "mongodb", {"password": password}),
        *mongodb_tls_secrets(ctx),
        resource,
    ]


def rabbitmq(ctx: Context, settings: Settings) -> list[Manifest]:
    """A StatefulSet (RabbitMQ names its node and its data after a stable host) with a claim for the queues,
    a headless Service for the pod's name and a Service for clients."""
    given = block(ctx, "rabbitmq")
    image = ctx.image(given.get("image", "bitnamilegacy/rabbitmq"), given.get("tag"), "rabbitmq")
    pod_labels = objects.labels("rabbitmq")
    container = _broker(
        "rabbitmq",
        image,
        given,
        {"amqp": 5672, "management": 15672},
        _secret_env(settings, RABBITMQ_USERNAME="Amqp__User", RABBITMQ_PASSWORD="Amqp__Password")
        + [{"name": "RABBITMQ_PLUGINS", "value": "rabbitmq_management"}],
        volumeMounts=[{"name": "data", "mountPath": "/bitnami/rabbitmq/mnesia"}],
    )
    pod = {"securityContext": {"fsGroup": 1001}, "containers": [container], **_node_selector(given)}
    return [
        objects.stateful_set(
            "rabbitmq", ctx.ns, "rabbitmq-headless", pod_labels, pod, [objects.claim("data", "8Gi")]
        ),
        objects.service("rabbitmq-headless", ctx.ns, pod_labels, [("amqp", 5672, "amqp")], headless=True),
        objects.service(
            "rabbitmq",
            ctx.ns,
            pod_labels,
            [("amqp", 5672, "amqp"), ("management", 15672, "management")],
            str(given.get("service_type", "ClusterIP")),
        ),
    ]


def activemq(ctx: Context, settings: Settings) -> list[Manifest]:
    """A Deployment, as upstream's module (the broker keeps no state the deployment relies on across pods)."""
    given = block(ctx, "activemq")
    image = ctx.image(given.get("image_name", "apache/activemq-classic"), given.get("image_tag"), "activemq")
    pod_labels = objects.labels("activemq")
    memory = str(given.get("activemq_opts_memory", "-Xms1g -Xmx3g"))
    container = _broker(
        "activemq",
        image,
        given,
        {"amqp": 5672, "console": 8161},
        _secret_env(
            settings, ACTIVEMQ_CONNECTION_USER="Amqp__User", ACTIVEMQ_CONNECTION_PASSWORD="Amqp__Password"
        )
        + [{"name": "ACTIVEMQ_OPTS_MEMORY", "value": memory}],
    )
    pod = {"containers": [container], **_node_selector(given)}
    return [
        objects.deployment("activemq", ctx.ns, pod_labels, pod),
        objects.service(
            "activemq", ctx.ns, pod_labels, [("amqp", 5672, "amqp"), ("console", 8161, "console")]
        ),
    ]


def redis(ctx: Context, settings: Settings) -> list[Manifest]:
    """A Deployment without persistence, as upstream's module (Redis as an object cache)."""
    given = block(ctx, "redis")
    image = ctx.image(given.get("image_name", "redis"), given.get("image_tag"), "redis")
    pod_labels = objects.labels("redis")
    args = ["--requirepass", "$(REDIS_PASSWORD)", "--save", "", "--appendonly", "no"]
    if given.get("max_memory"):
        args += ["--maxmemory", str(given["max_memory"])]
    if given.get("max_memory_samples"):
        args += ["--maxmemory-samples", str(given["max_memory_samples"])]
    container = _container(
        "redis",
        image,
        args=args,
        ports=objects.container_ports(redis=6379),
        env=_secret_env(settings, REDIS_PASSWORD="Redis__Password"),
        readinessProbe=objects.tcp_probe("redis", period=5, failures=3),
        **_limits(given),
    )
    pod = {"containers": [container], **_node_selector(given)}
    return [
        objects.deployment("redis", ctx.ns, pod_labels, pod),
        objects.service("redis", ctx.ns, pod_labels, [("redis", 6379, "redis")]),
    ]


def minio(ctx: Context, settings: Settings) -> list[Manifest]:
    """A StatefulSet with a claim for the objects (they must outlive the pod), its bucket made at start."""
    given = block(ctx, "minio")
    image = ctx.image(given.get("image_name", "minio/minio"), given.get("image_tag"), "minio")
    bucket = str(given.get("default_bucket", "minio-bucket"))
    pod_labels = objects.labels("minio")
    container = _container(
        "minio",
        image,
        command=[
            "/bin/sh",
            "-c",
            f"mkdir -p /data/{bucket} && exec minio server /data --console-address :9001",
        ],
        ports=objects.container_ports(s3=9000, console=9001),
        env=_secret_env(settings, MINIO_ROOT_USER="S3__Login", MINIO_ROOT_PASSWORD="S3__Password"),
        volumeMounts=[{"name": "data", "mountPath": "/data"}],
        readinessProbe=objects.http_probe("/minio/health/ready", "s3", period=10, failures=3),
        **_limits(given),
    )
    pod = {"containers": [container], **_node_selector(given)}
    return [
        objects.stateful_set("minio", ctx.ns, "minio", pod_labels, pod, [objects.claim("data", "8Gi")]),
        objects.service("minio", ctx.ns, pod_labels, [("s3", 9000, "s3"), ("console", 9001, "console")]),
    ]


def prometheus(ctx: Context) -> list[Manifest]:
    """Prometheus scraping the metrics exporter every 10 s (job `metrics-exporter`, as upstream): the source
    of the ScaledObjects' `armonik_<partition>_tasks_queued`."""
    exporter = ctx.params.metrics_exporter
    if exporter is None:
        return []
    given = ctx.params.prometheus or {}
    image = ctx.image(given.get("image_name", "prom/prometheus"), given.get("image_tag"), "prometheus")
    config = (
        "global:\n  scrape_interval: 10s\n"
        "scrape_configs:\n"
        "  - job_name: metrics-exporter\n"
        "    static_configs:\n"
        f"      - targets: ['{ctx.host('metrics-exporter')}:{exporter.port}']\n"
    )
    pod_labels = objects.labels("prometheus")
    container = _container(
        "prometheus",
        image,
        args=["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"],
        ports=objects.container_ports(http=PROMETHEUS_PORT),
        volumeMounts=[
            {"name": "config", "mountPath": "/etc/prometheus"},
            {"name": "tsdb", "mountPath": "/prometheus"},
        ],
        readinessProbe=objects.http_probe("/-/ready", "http", period=10, failures=3),
    )
    pod = {
        "containers": [container],
        "volumes": [
            {"name": "config", "configMap": {"name": "prometheus-configmap"}},
            {"name": "tsdb", "emptyDir": {}},
        ],
        **_node_selector(given),
    }
    return [
        objects.config_map("prometheus-configmap", ctx.ns, "prometheus", {"prometheus.yml": config}),
        objects.deployment("prometheus", ctx.ns, pod_labels, pod),
        objects.service("prometheus", ctx.ns, pod_labels, [("http", PROMETHEUS_PORT, "http")]),
    ]
