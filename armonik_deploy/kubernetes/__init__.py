"""The Kubernetes target: every manifest an ArmoniK deployment applies, from `parameters.tfvars`.

`render` builds them as Python dicts from the same typed `Parameters` and `Versions` as the local target
(`armonik-deploy render DIR` writes one YAML file per object, in apply order). The objects follow what
upstream's Terraform (ArmoniK.Infra) deploys in namespace `armonik`:

- Namespace; ConfigMaps `log`, `core`, `control-plane`, `polling`, `worker`, `metrics-exporter`, `init` and
  Secrets of credentials, read with `envFrom` (see `settings`); TLS Secrets when `ingress.tls` is on, and
  MongoDB's with a `mongodb` block.
- Job `init` (the control plane's image running `python -m armonik_deploy.init_job`), Deployment + Service
  `control-plane` (Service `control_plane.port` -> container 1080), one Deployment `compute-plane-<p>` per
  partition (container `polling-agent` and the workers, sharing the emptyDir `/cache` for their sockets), a
  KEDA `ScaledObject` `<p>-compute-plane` per partition with triggers (Prometheus
  `armonik_<p>_tasks_queued`), Deployment + Service `metrics-exporter` (9419 -> 1080), Prometheus.
- Storage services, one per block:
  - `mongodb`: a `PerconaServerMongoDB` resource, as upstream since it moved to the Percona operator. A
    StatefulSet of our own would duplicate what the operator does (replica set initiation, users). It serves
    TLS only, with a certificate of the deployment's authority (Secret `mongodb-db-ps-ssl`, for the replica
    set's clients and its members); the core processes trust that authority (Secret `mongodb-ca`).
  - `rabbitmq` and `minio`: StatefulSets with a volume claim, because their data (queued messages, objects)
    must survive a restarted pod and RabbitMQ ties its data to a stable host name. Upstream installs RabbitMQ
    with Bitnami's chart; this is the part of it ArmoniK needs, with the same image.
  - `activemq` and `redis`: Deployments, as upstream's modules (the broker and the cache keep no state the
    deployment counts on across pods).
  - No block: the embedded backends (SQLite state, in-memory queue, files) on a PersistentVolumeClaim
    `armonik-data` shared by the control plane, agents, exporter and init job; one control plane then.
- The third-party charts the objects need, KEDA (for the ScaledObjects) and the Percona operator (for
  MongoDB): `helm` lists them (`armonik-deploy plan --target kubernetes` shows them) and renders them with
  the helm executable (`armonik-deploy render` adds their objects when helm is installed); `armonik-deploy deploy` has Terraform install them with its
  `helm_release` (infrastructure/modules/keda and storage/mongodb), or helm with `--charts helm`.

- The operators' stack, each behind its block (see `operators`): `ingress` (nginx + the project's gRPC-Web
  ingress in one pod; `/static/`, `/admin/`, `/grafana/`, `/seq/`), `admin_gui`, `grafana` (Prometheus data
  source and an ArmoniK dashboard provisioned), `seq`, `fluent_bit`. `deploy` hands them to Terraform
  (variable `operators_manifests`, applied with `kubectl_manifest`) and names their URLs in the outputs.

Differences from upstream: no load balancer or pod-deletion-cost updater; with `ingress.tls` the control plane
serves TLS itself (gRPC clients reach it directly; nginx serves the browser's side in plain HTTP). Upstream's .NET images of the control plane,
polling agent and metrics exporter are replaced by this project's (see `context`). Probes: the agent and the
worker have no HTTP port here, so their probes check their channel (socket file or TCP port); the control
plane's is a TCP probe on its gRPC port; the exporter's are HTTP (`/startup`, `/liveness`) as upstream.
"""

from armonik_deploy.kubernetes.context import Credentials, RenderError
from armonik_deploy.kubernetes.render import Rendered, render, render_folder, to_yaml

__all__ = ["Credentials", "RenderError", "Rendered", "render", "render_folder", "to_yaml"]
