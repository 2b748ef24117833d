"""The operators' stack on Kubernetes, as upstream deploys it, each part behind its parameters block.

- `ingress` (not null): nginx and the project's gRPC-Web ingress in one pod, routing `/admin/`, `/grafana/`,
  `/seq/` to the pages below and the rest to gRPC-Web and the console; TLS, mTLS and the browsers' identity
  there: kubernetes/ingress.py.
- `admin_gui`: upstream's GUI image (`dockerhubaneo/armonik_admin_app`, pinned in versions.tfvars.json), port 1080.
- `grafana` (needs the metrics exporter, hence Prometheus): Grafana with a Prometheus data source and an ArmoniK
  dashboard provisioned from ConfigMaps (tasks per status, queued tasks per partition, queue depth, throughput),
  served under `/grafana/`, anonymous viewers allowed as upstream's quick-deploy does.
- `seq`: Seq (web UI under `/seq/`, ingestion on 5341); `fluent_bit` (with `seq`): a DaemonSet tailing the pods'
  logs, lifting the JSON lines ArmoniK's processes write (`@t`, `@l`, `@m`: Seq's own CLEF names) and posting
  them to Seq's raw ingestion endpoint.
"""

from __future__ import annotations

import json
from typing import Any

from armonik_core.metrics.settings import ALL_STATUSES
from armonik_deploy.kubernetes import ingress, objects
from armonik_deploy.kubernetes.armonik import PROMETHEUS_PORT
from armonik_deploy.kubernetes.context import Context, RenderError
from armonik_deploy.kubernetes.settings import Settings

Manifest = objects.Manifest
#: The `service` label of every object of the stack.
SERVICES = ("ingress", "admin-gui", "grafana", "seq", "fluent-bit")
GUI_PORT = 1080
GRAFANA_PORT = 3000
SEQ_WEB_PORT = 80
SEQ_INGEST_PORT = 5341


def _container(name: str, image: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": image, "imagePullPolicy": "IfNotPresent", **extra}


def _one_container(
    ctx: Context,
    container: dict[str, Any],
    ports: dict[str, int],
    pod: dict[str, Any] | None = None,
    replicas: int = 1,
) -> list[Manifest]:
    """The Deployment of a single `container`, labelled with its name, and its Service of that name publishing
    each of `ports` under its name (the container's port so named): the shape of the stack's web services."""
    name = container["name"]
    pod_labels = objects.labels(name)
    return [
        objects.deployment(name, ctx.ns, pod_labels, {"containers": [container], **(pod or {})}, replicas),
        objects.service(name, ctx.ns, pod_labels, [(port, number, port) for port, number in ports.items()]),
    ]


def _image(ctx: Context, given: dict[str, Any], default: str, where: str) -> str:
    return ctx.image(
        given.get("image") or given.get("image_name") or default,
        given.get("tag") or given.get("image_tag"),
        where,
    )


def ingress_routes(ctx: Context) -> list[tuple[str, str]]:
    """The operators' pages the ingress routes to: (path, upstream URL)."""
    routes = []
    if ctx.params.admin_gui is not None:
        routes.append(("/admin/", f"http://{ctx.host('admin-gui')}:{GUI_PORT}"))
    if grafana_enabled(ctx):
        routes.append(("/grafana/", f"http://{ctx.host('grafana')}:{GRAFANA_PORT}"))
    if ctx.params.seq is not None:
        routes.append(("/seq/", f"http://{ctx.host('seq')}:{SEQ_WEB_PORT}/"))
    return routes


def admin_gui(ctx: Context) -> list[Manifest]:
    given = ctx.params.admin_gui
    if given is None:
        return []
    image = _image(ctx, given, "dockerhubaneo/armonik_admin_app", "admin_gui")
    probe = objects.http_probe("/admin/en/", "http", period=10, failures=3)
    container = _container(
        "admin-gui", image, ports=objects.container_ports(http=GUI_PORT), readinessProbe=probe
    )
    return _one_container(ctx, container, {"http": GUI_PORT}, replicas=int(given.get("replicas", 1)))


def grafana_enabled(ctx: Context) -> bool:
    return ctx.params.grafana is not None and ctx.params.metrics_exporter is not None


def dashboard(ctx: Context) -> dict[str, Any]:
    """The ArmoniK dashboard: task counts per status, queued tasks per partition, queue depth, throughput."""
    partitions = sorted(ctx.params.compute_plane)

    def panel(index: int, title: str, targets: list[tuple[str, str]], unit: str = "short") -> dict[str, Any]:
        return {
            "id": index + 1,
            "type": "timeseries",
            "title": title,
            "datasource": {"type": "prometheus", "uid": "prometheus"},
            "gridPos": {"h": 8, "w": 12, "x": 12 * (index % 2), "y": 8 * (index // 2)},
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "targets": [
                {"refId": chr(65 + i), "expr": expr, "legendFormat": legend}
                for i, (expr, legend) in enumerate(targets)
            ],
        }

    panels = [
        panel(
            0,
            "Tasks per status",
            [(f"armonik_tasks_{s}", s) for s in (status.name.lower() for status in ALL_STATUSES)],
        ),
        panel(
            1,
            "Queued tasks per partition",
            [(f"armonik_{p.replace('-', '_')}_tasks_queued", p) for p in partitions],
        ),
        panel(
            2,
            "Queue depth",
            [("armonik_queue_depth", "all")]
            + [(f"armonik_{p.replace('-', '_')}_queue_depth", p) for p in partitions],
        ),
        panel(
            3,
            "Throughput (tasks completed per second)",
            [("deriv(armonik_tasks_completed[1m])", "completed/s")],
            "ops",
        ),
    ]
    return {
        "uid": "armonik",
        "title": "ArmoniK",
        "schemaVersion": 39,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "panels": panels,
    }


def grafana(ctx: Context) -> list[Manifest]:
    if not grafana_enabled(ctx):
        return []
    given = ctx.params.grafana or {}
    datasources = (
        "apiVersion: 1\ndatasources:\n  - name: Prometheus\n    uid: prometheus\n    type: prometheus\n"
        f"    access: proxy\n    url: http://{ctx.host('prometheus')}:{PROMETHEUS_PORT}\n    isDefault: true\n"
    )
    providers = (
        "apiVersion: 1\nproviders:\n  - name: armonik\n    type: file\n"
        "    options:\n      path: /var/lib/grafana/dashboards\n"
    )
    env = {
        "GF_SERVER_ROOT_URL": "%(protocol)s://%(domain)s:%(http_port)s/grafana/",
        "GF_SERVER_SERVE_FROM_SUB_PATH": "true",
        "GF_AUTH_ANONYMOUS_ENABLED": "true",
        "GF_AUTH_ANONYMOUS_ORG_ROLE": "Viewer",
        "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH": "/var/lib/grafana/dashboards/armonik.json",
    }
    container = _container(
        "grafana",
        _image(ctx, given, "grafana/grafana", "grafana"),
        env=objects.env_list(env),
        ports=objects.container_ports(http=GRAFANA_PORT),
        volumeMounts=[
            {"name": "datasources", "mountPath": "/etc/grafana/provisioning/datasources"},
            {"name": "providers", "mountPath": "/etc/grafana/provisioning/dashboards"},
            {"name": "dashboards", "mountPath": "/var/lib/grafana/dashboards"},
        ],
        readinessProbe=objects.http_probe("/grafana/api/health", "http", period=10, failures=3),
    )
    volumes = [
        {"name": name, "configMap": {"name": f"grafana-{name}"}}
        for name in ("datasources", "providers", "dashboards")
    ]
    return [
        objects.config_map("grafana-datasources", ctx.ns, "grafana", {"prometheus.yaml": datasources}),
        objects.config_map("grafana-providers", ctx.ns, "grafana", {"armonik.yaml": providers}),
        objects.config_map(
            "grafana-dashboards", ctx.ns, "grafana", {"armonik.json": json.dumps(dashboard(ctx), indent=1)}
        ),
        *_one_container(ctx, container, {"http": GRAFANA_PORT}, {"volumes": volumes}),
    ]


def seq(ctx: Context) -> list[Manifest]:
    given = ctx.params.seq
    if given is None:
        return []
    ports = {"web": SEQ_WEB_PORT, "ingest": SEQ_INGEST_PORT}
    container = _container(
        "seq",
        _image(ctx, given, "datalust/seq", "seq"),
        env=objects.env_list({"ACCEPT_EULA": "Y", "SEQ_FIRSTRUN_NOAUTHENTICATION": "true"}),
        ports=objects.container_ports(**ports),
        volumeMounts=[{"name": "data", "mountPath": "/data"}],
        readinessProbe=objects.tcp_probe("ingest", period=10, failures=6),
    )
    return _one_container(ctx, container, ports, {"volumes": [{"name": "data", "emptyDir": {}}]})


def fluent_bit_conf(ctx: Context) -> dict[str, str]:
    main = (
        "[SERVICE]\n    Flush 2\n    Parsers_File /fluent-bit/etc/parsers.conf\n\n"
        "[INPUT]\n    Name tail\n    Path /var/log/containers/*_" + ctx.ns + "_*.log\n"
        "    multiline.parser cri, docker\n    Tag kube.*\n    Mem_Buf_Limit 16MB\n\n"
        "[FILTER]\n    Name kubernetes\n    Match kube.*\n    Merge_Log On\n    Keep_Log Off\n"
        "    Merge_Log_Key armonik\n\n"
        "[FILTER]\n    Name nest\n    Match kube.*\n    Operation lift\n    Nested_under armonik\n\n"
        "[OUTPUT]\n    Name http\n    Match kube.*\n"
        f"    Host {ctx.host('seq')}\n    Port {SEQ_INGEST_PORT}\n    URI /api/events/raw?clef\n"
        "    Format json_lines\n    Json_date_key @t\n    Json_date_format iso8601\n"
    )
    return {"fluent-bit.conf": main}


def fluent_bit(ctx: Context) -> list[Manifest]:
    given = ctx.params.fluent_bit
    if given is None:
        return []
    if ctx.params.seq is None:
        raise RenderError(f"{ctx.file}: fluent_bit: ships the logs to Seq: set seq = {{}} too")
    name = "fluent-bit"
    container = _container(
        name,
        _image(ctx, given, "fluent/fluent-bit", "fluent_bit"),
        volumeMounts=[
            {"name": "config", "mountPath": "/fluent-bit/etc/fluent-bit.conf", "subPath": "fluent-bit.conf"},
            {"name": "varlog", "mountPath": "/var/log", "readOnly": True},
        ],
    )
    pod_labels = objects.labels(name)
    pod = {
        "serviceAccountName": name,
        "containers": [container],
        "volumes": [
            {"name": "config", "configMap": {"name": f"{name}-config"}},
            {"name": "varlog", "hostPath": {"path": "/var/log"}},
        ],
    }
    meta = objects.metadata(name, ctx.ns, name)
    cluster_name = f"{ctx.ns}-{name}"
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": objects.metadata(cluster_name, None, name),
            "rules": [
                {"apiGroups": [""], "resources": ["pods", "namespaces"], "verbs": ["get", "list", "watch"]}
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": objects.metadata(cluster_name, None, name),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ctx.ns}],
        },
        objects.config_map(f"{name}-config", ctx.ns, name, fluent_bit_conf(ctx)),
        {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": meta,
            "spec": {
                "selector": {"matchLabels": pod_labels},
                "template": {"metadata": {"labels": pod_labels}, "spec": pod},
            },
        },
    ]


def operators(ctx: Context, settings: Settings) -> list[Manifest]:
    return [
        *admin_gui(ctx),
        *grafana(ctx),
        *seq(ctx),
        *fluent_bit(ctx),
        *ingress.manifests(ctx, settings, ingress_routes(ctx)),
    ]


def operator_urls(ctx: Context, ingress_url: str) -> dict[str, str | None]:
    """The outputs' URLs of the stack, given where the ingress Service is reached (`http(s)://host:port`).
    `/admin/` always answers: the GUI's pod when `admin_gui` is deployed, else the gRPC-Web container, which
    sends it to the project's console (as the local target's ingress does)."""
    base = ingress_url.rstrip("/")
    return {
        "admin_app_url": f"{base}/admin/",
        "grafana_url": f"{base}/grafana/" if grafana_enabled(ctx) else None,
        "seq_web_url": f"{base}/seq/" if ctx.params.seq is not None else None,
    }
