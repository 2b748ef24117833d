# The Kubernetes target in Terraform: the same objects as `armonik-deploy render` (armonik_deploy/kubernetes),
# from the same parameters.tfvars and versions.tfvars.json:
#   terraform init && terraform apply -var-file=parameters.tfvars -var-file=versions.tfvars.json
# With `ingress.tls`, the control plane serves TLS with the certificates of var.certificates (written by
# `armonik-deploy deploy --target kubernetes`); relative paths of `ingress.custom_client_ca_file` are taken from
# this folder. MongoDB always serves TLS, with its certificate of var.certificates. The KEDA and Percona
# operator charts are installed here unless install_helm_charts = false (`--charts helm`: helm installs them).

locals {
  # upstream's default-images rule: component versions, then image_tags win; a tag in the parameters wins
  default_tags = merge(
    { for component, images in var.armonik_images : component => null },
    merge([for component, images in var.armonik_images : { for image in images : image => var.armonik_versions[component] }]...),
    var.image_tags,
  )
  # this project's processes replace upstream's .NET images
  own_images = {
    "dockerhubaneo/armonik_control"         = "armonik-control-plane"
    "dockerhubaneo/armonik_pollingagent"    = "armonik-polling-agent"
    "dockerhubaneo/armonik_control_metrics" = "armonik-metrics-exporter"
  }
  cp            = var.control_plane
  cp_image_name = lookup(local.own_images, try(local.cp.image, "dockerhubaneo/armonik_control"), try(local.cp.image, "dockerhubaneo/armonik_control"))
  cp_tag        = coalesce(try(local.cp.tag, null), local.default_tags[local.cp_image_name])
  agent_default = "armonik-polling-agent"
  exporter_name = lookup(local.own_images, try(var.metrics_exporter.image_name, "dockerhubaneo/armonik_control_metrics"), try(var.metrics_exporter.image_name, "armonik-metrics-exporter"))

  # the storage blocks by name: a block left out (null) keeps the embedded backend of its kind
  storage = { mongodb = var.mongodb, rabbitmq = var.rabbitmq, activemq = var.activemq, redis = var.redis, minio = var.minio }
  # a password given in a block wins over the generated one, as in the renderer
  passwords  = { for name, generated in random_password.storage : name => coalesce(try(local.storage[name].password, null), generated.result) }
  embedded   = var.mongodb == null || (var.rabbitmq == null && var.activemq == null) || (var.redis == null && var.minio == null)
  queue      = var.rabbitmq != null ? "rabbitmq" : (var.activemq != null ? "activemq" : null)
  data_mount = local.embedded ? [{ name = "data", mount_path = "/armonik/data", source = { persistentVolumeClaim = { claimName = "armonik-data" } } }] : []
  # the authority of MongoDB's certificate (it serves TLS only), mounted by every core process
  mongodb_volumes = var.mongodb != null ? module.mongodb[0].client_volumes : []

  partitions = {
    for i, name in keys(var.compute_plane) : "InitServices__Partitioning__Partitions__${i}" => jsonencode({
      PartitionId          = name
      ParentPartitionIds   = try(var.compute_plane[name].partition_data.parent_partition_ids, [])
      PodReserved          = try(var.compute_plane[name].partition_data.reserved_pods, min(1, try(var.compute_plane[name].replicas, 1)))
      PodMax               = try(var.compute_plane[name].partition_data.max_pods, try(var.compute_plane[name].replicas, 1))
      PreemptionPercentage = try(var.compute_plane[name].partition_data.preemption_percentage, 50)
      Priority             = try(var.compute_plane[name].partition_data.priority, 1)
      PodConfiguration     = try(var.compute_plane[name].partition_data.pod_configuration, null)
    })
  }
  storage_env = merge(
    var.mongodb != null ? module.mongodb[0].env : {},
    var.rabbitmq != null ? module.rabbitmq[0].env : {},
    var.activemq != null ? module.activemq[0].env : {},
    var.redis != null ? module.redis[0].env : {},
    var.minio != null ? module.minio[0].env : {},
    var.mongodb != null && local.queue == null ? { Components__QueueStorage = "embedded" } : {},
    local.embedded ? { Embedded__DataDirectory = "/armonik/data" } : {},
  )
  config_maps = {
    "log-configmap"  = merge({ Serilog__MinimumLevel = var.logging_level }, try(var.configurations.log.env, {}))
    "core-configmap" = merge(local.storage_env, try(var.configurations.core.env, {}))
    "control-plane-configmap" = merge({
      ControlPlane__Host          = "0.0.0.0"
      ControlPlane__Port          = "1080"
      Submitter__DefaultPartition = try(local.cp.default_partition, "default")
      # the agents' compute gateway: a port of its own, never the clients' (docs/security.md)
      ComputeGateway__Host = "0.0.0.0"
      ComputeGateway__Port = "1081"
    }, local.partitions, module.control_plane_tls.server_env, try(var.configurations.control.env, {}))
    "polling-configmap" = merge({
      Pollster__SharedCacheFolder = "/cache/shared"
      ControlPlane__Endpoint      = "${module.control_plane_tls.scheme}://${try(local.cp.name, "control-plane")}.${var.namespace}.svc:${try(local.cp.port, 5001)}"
      ComputeGateway__Endpoint    = "${module.control_plane_tls.scheme}://compute-gateway.${var.namespace}.svc:1081"
    }, module.control_plane_tls.client_env, try(var.configurations.compute.env, {}), try(var.configurations.polling.env, {}))
    "worker-configmap"           = merge(try(var.configurations.compute.env, {}), try(var.configurations.worker.env, {}))
    "metrics-exporter-configmap" = merge({ MetricsExporter__Host = "0.0.0.0", MetricsExporter__Port = "1080" }, try(var.configurations.metrics.env, {}), try(var.metrics_exporter.extra_conf, {}))
    "init-configmap"             = merge(local.partitions, try(var.configurations.jobs.env, {}))
  }
  credentials = merge(
    var.mongodb != null ? { "mongodb-credentials" = { MongoDB__User = "application_user", MongoDB__Password = local.passwords["mongodb"] } } : {},
    var.rabbitmq != null ? { "rabbitmq-credentials" = { Amqp__User = try(var.rabbitmq.user, "armonik"), Amqp__Password = local.passwords["rabbitmq"] } } : {},
    var.activemq != null ? { "activemq-credentials" = { Amqp__User = try(var.activemq.user, "armonik"), Amqp__Password = local.passwords["activemq"] } } : {},
    var.redis != null ? { "redis-credentials" = { Redis__Password = local.passwords["redis"] } } : {},
    var.minio != null ? { "minio-credentials" = { S3__Login = try(var.minio.login, "armonik"), S3__Password = local.passwords["minio"] } } : {},
  )
  secrets = sort(keys(local.credentials))
}

resource "kubernetes_namespace" "armonik" {
  metadata {
    name   = var.namespace
    labels = { app = "armonik" }
  }
  lifecycle {
    # the renderer's checks (armonik_deploy/storage.py): one queue, one object storage
    precondition {
      condition     = var.rabbitmq == null || var.activemq == null
      error_message = "rabbitmq and activemq are both set: the deployment uses one queue."
    }
    precondition {
      condition     = var.redis == null || var.minio == null
      error_message = "redis and minio are both set: the deployment uses one object storage."
    }
  }
}

resource "random_password" "storage" {
  for_each = toset([for name, block in local.storage : name if block != null])
  length   = 24
  special  = false
}

# The compute gateway's deployment secret (the control plane's alone) and each partition's agent credential
# (that partition's agents' alone), as `armonik-deploy deploy --target kubernetes` derives them
# (armonik_deploy/kubernetes/gateway.py, var.compute_gateway).
resource "kubernetes_secret" "compute_gateway" {
  metadata {
    name      = "compute-gateway-secret"
    namespace = kubernetes_namespace.armonik.metadata[0].name
    labels    = { app = "armonik", service = "control-plane" }
  }
  data = { ComputeGateway__Secret = var.compute_gateway.secret }
}

resource "kubernetes_secret" "agent_credential" {
  for_each = var.compute_plane
  metadata {
    name      = "compute-gateway-agent-${each.key}"
    namespace = kubernetes_namespace.armonik.metadata[0].name
    labels    = { app = "armonik", service = "compute-plane" }
  }
  data = { ComputeGateway__Credential = var.compute_gateway.credentials[each.key] }
}

# Anyone reaches the clients' port; only the compute-plane pods reach the gateway's (where the cluster's network
# enforces NetworkPolicies: the agent credential is checked either way).
resource "kubernetes_network_policy_v1" "control_plane" {
  metadata {
    name      = "control-plane"
    namespace = kubernetes_namespace.armonik.metadata[0].name
    labels    = { app = "armonik", service = "control-plane" }
  }
  spec {
    pod_selector {
      match_labels = { app = "armonik", service = "control-plane" }
    }
    policy_types = ["Ingress"]
    ingress {
      ports {
        port     = "grpc"
        protocol = "TCP"
      }
    }
    ingress {
      from {
        pod_selector {
          match_labels = { app = "armonik", service = "compute-plane" }
        }
      }
      ports {
        port     = "gateway"
        protocol = "TCP"
      }
    }
  }
}

resource "kubernetes_config_map" "settings" {
  for_each = local.config_maps
  metadata {
    name      = each.key
    namespace = kubernetes_namespace.armonik.metadata[0].name
    labels    = { app = "armonik", service = "settings" }
  }
  data = { for k, v in each.value : k => tostring(v) }
}

resource "kubernetes_secret" "credentials" {
  for_each = local.credentials
  metadata {
    name      = each.key
    namespace = kubernetes_namespace.armonik.metadata[0].name
    labels    = { app = "armonik", service = trimsuffix(each.key, "-credentials") }
  }
  data = each.value
}

resource "kubernetes_persistent_volume_claim" "data" {
  count = local.embedded ? 1 : 0
  metadata {
    name      = "armonik-data"
    namespace = kubernetes_namespace.armonik.metadata[0].name
    labels    = { app = "armonik", service = "storage" }
  }
  spec {
    access_modes = ["ReadWriteOnce"]
    resources {
      requests = { storage = "8Gi" }
    }
  }
  wait_until_bound = false
}

module "mongodb" {
  source           = "../../modules/storage/mongodb"
  count            = var.mongodb != null ? 1 : 0
  namespace        = kubernetes_namespace.armonik.metadata[0].name
  chart_repository = var.helm_charts["mongodb"].repository
  chart_version    = var.helm_charts["mongodb"].version
  image            = "percona/percona-server-mongodb:${coalesce(try(var.mongodb.cluster.tag, null), local.default_tags["percona/percona-server-mongodb"])}"
  replicas         = try(var.mongodb.cluster.replicas, 1)
  database_name    = try(var.mongodb.cluster.database_name, "database")
  storage_size     = try(var.mongodb.persistence, null) == null ? null : try(var.mongodb.persistence.shards.storage_size, "8Gi")
  password         = local.passwords["mongodb"]
  install_operator = var.install_helm_charts
  certificates     = var.certificates
}

module "rabbitmq" {
  source    = "../../modules/storage/rabbitmq"
  count     = var.rabbitmq != null ? 1 : 0
  namespace = kubernetes_namespace.armonik.metadata[0].name
  image     = "${try(var.rabbitmq.image, "bitnamilegacy/rabbitmq")}:${coalesce(try(var.rabbitmq.tag, null), local.default_tags[try(var.rabbitmq.image, "bitnamilegacy/rabbitmq")])}"
  rabbitmq  = var.rabbitmq
}

module "activemq" {
  source    = "../../modules/storage/activemq"
  count     = var.activemq != null ? 1 : 0
  namespace = kubernetes_namespace.armonik.metadata[0].name
  image     = "${try(var.activemq.image_name, "apache/activemq-classic")}:${coalesce(try(var.activemq.image_tag, null), local.default_tags[try(var.activemq.image_name, "apache/activemq-classic")])}"
  activemq  = var.activemq
}

module "redis" {
  source    = "../../modules/storage/redis"
  count     = var.redis != null ? 1 : 0
  namespace = kubernetes_namespace.armonik.metadata[0].name
  image     = "${try(var.redis.image_name, "redis")}:${coalesce(try(var.redis.image_tag, null), local.default_tags[try(var.redis.image_name, "redis")])}"
  redis     = var.redis
}

module "minio" {
  source    = "../../modules/storage/minio"
  count     = var.minio != null ? 1 : 0
  namespace = kubernetes_namespace.armonik.metadata[0].name
  image     = "${try(var.minio.image_name, "minio/minio")}:${coalesce(try(var.minio.image_tag, null), local.default_tags[try(var.minio.image_name, "minio/minio")])}"
  minio     = var.minio
}

module "control_plane_tls" {
  source                = "../../modules/control-plane-tls"
  namespace             = kubernetes_namespace.armonik.metadata[0].name
  tls                   = try(var.ingress.tls, false) == true
  mtls                  = try(var.ingress.mtls, false) == true
  custom_client_ca_file = try(var.ingress.custom_client_ca_file, "")
  base_folder           = path.root
  certificates          = var.certificates
}

module "keda" {
  source           = "../../modules/keda"
  count            = var.install_helm_charts ? 1 : 0
  namespace        = try(var.keda.namespace, "default")
  chart_repository = var.helm_charts["keda"].repository
  chart_version    = var.helm_charts["keda"].version
  keda_tag         = local.default_tags["ghcr.io/kedacore/keda"]
  apiserver_tag    = local.default_tags["ghcr.io/kedacore/keda-metrics-apiserver"]
}

module "metrics_exporter" {
  source         = "../../modules/monitoring/metrics-exporter"
  namespace      = kubernetes_namespace.armonik.metadata[0].name
  image          = "${local.exporter_name}:${coalesce(try(var.metrics_exporter.image_tag, null), local.default_tags[local.exporter_name])}"
  port           = try(var.metrics_exporter.port, 9419)
  config_maps    = ["log-configmap", "core-configmap", "metrics-exporter-configmap"]
  secrets        = local.secrets
  volumes        = local.data_mount
  secret_volumes = local.mongodb_volumes
  depends_on     = [kubernetes_job.init]
}

module "prometheus" {
  source          = "../../modules/monitoring/prometheus"
  namespace       = kubernetes_namespace.armonik.metadata[0].name
  image           = "${try(var.prometheus.image_name, "prom/prometheus")}:${local.default_tags[try(var.prometheus.image_name, "prom/prometheus")]}"
  exporter_target = module.metrics_exporter.target
}

resource "kubernetes_job" "init" {
  metadata {
    name      = "init"
    namespace = kubernetes_namespace.armonik.metadata[0].name
    labels    = { app = "armonik", service = "init" }
  }
  spec {
    backoff_limit = 5
    template {
      metadata {
        labels = { app = "armonik", service = "init" }
      }
      spec {
        restart_policy = "OnFailure"
        security_context {
          run_as_user     = 5000
          run_as_group    = 5000
          fs_group        = 5000
          run_as_non_root = true
        }
        container {
          name    = "init"
          image   = "${local.cp_image_name}:${local.cp_tag}"
          command = ["python", "-m", "armonik_deploy.init_job"]
          dynamic "env_from" {
            for_each = ["log-configmap", "core-configmap", "init-configmap"]
            content {
              config_map_ref {
                name = env_from.value
              }
            }
          }
          dynamic "env_from" {
            for_each = local.secrets
            content {
              secret_ref {
                name = env_from.value
              }
            }
          }
          dynamic "volume_mount" {
            for_each = local.data_mount
            content {
              name       = volume_mount.value.name
              mount_path = volume_mount.value.mount_path
            }
          }
          dynamic "volume_mount" {
            for_each = local.mongodb_volumes
            content {
              name       = volume_mount.value.name
              mount_path = volume_mount.value.mount_path
              read_only  = true
            }
          }
        }
        dynamic "volume" {
          for_each = local.data_mount
          content {
            name = volume.value.name
            persistent_volume_claim {
              claim_name = "armonik-data"
            }
          }
        }
        dynamic "volume" {
          for_each = local.mongodb_volumes
          content {
            name = volume.value.name
            secret {
              secret_name  = volume.value.secret
              default_mode = format("%04o", volume.value.mode)
            }
          }
        }
      }
    }
  }
  wait_for_completion = true
  depends_on          = [kubernetes_config_map.settings, kubernetes_secret.credentials, module.mongodb, module.rabbitmq, module.activemq, module.redis, module.minio]
}

module "control_plane" {
  source         = "../../modules/control-plane"
  namespace      = kubernetes_namespace.armonik.metadata[0].name
  name           = try(local.cp.name, "control-plane")
  image          = local.cp_image_name
  tag            = local.cp_tag
  replicas       = try(local.cp.replicas, 1)
  port           = try(local.cp.port, 5001)
  service_type   = try(local.cp.service_type, "ClusterIP")
  limits         = try(local.cp.limits, {})
  requests       = try(local.cp.requests, {})
  node_selector  = try(local.cp.node_selector, {})
  config_maps    = ["log-configmap", "core-configmap", "control-plane-configmap"]
  secrets        = concat(local.secrets, [kubernetes_secret.compute_gateway.metadata[0].name])
  volumes        = local.data_mount
  secret_volumes = concat(module.control_plane_tls.server_volumes, local.mongodb_volumes)
  depends_on     = [kubernetes_job.init, module.control_plane_tls]
}

module "compute_plane" {
  source                           = "../../modules/compute-plane"
  for_each                         = var.compute_plane
  namespace                        = kubernetes_namespace.armonik.metadata[0].name
  partition                        = each.key
  replicas                         = try(each.value.replicas, 1)
  termination_grace_period_seconds = try(each.value.termination_grace_period_seconds, 30)
  socket_type                      = try(each.value.socket_type, "unixdomainsocket")
  user                             = try(each.value.security.user, 5000)
  node_selector                    = try(each.value.node_selector, {})
  cache_memory                     = try(each.value.cache_config.memory, false)
  cache_size_limit                 = try(tostring(each.value.cache_config.size_limit), null)
  hpa                              = try(each.value.hpa, null)
  prometheus_url                   = module.prometheus.url
  agent_config_maps                = ["log-configmap", "core-configmap", "polling-configmap"]
  worker_config_maps               = ["log-configmap", "worker-configmap"]
  secrets                          = concat(local.secrets, [kubernetes_secret.agent_credential[each.key].metadata[0].name])
  volumes                          = local.data_mount
  secret_volumes                   = concat(module.control_plane_tls.client_volumes, local.mongodb_volumes)
  polling_agent = {
    image    = "${lookup(local.own_images, try(each.value.polling_agent.image, "dockerhubaneo/armonik_pollingagent"), try(each.value.polling_agent.image, local.agent_default))}:${coalesce(try(each.value.polling_agent.tag, null), local.default_tags[local.agent_default])}"
    limits   = try(each.value.polling_agent.limits, {})
    requests = try(each.value.polling_agent.requests, {})
  }
  workers = [for w in each.value.worker : {
    name     = try(w.name, "worker")
    image    = "${w.image}:${coalesce(try(w.tag, null), local.default_tags[w.image])}"
    limits   = try(w.limits, {})
    requests = try(w.requests, {})
  }]
  depends_on = [kubernetes_job.init, module.keda, module.control_plane_tls]
}

# The operators' stack, rendered by armonik-deploy from the same parameters (each object behind its block).
resource "kubectl_manifest" "operators" {
  for_each   = var.operators_manifests
  yaml_body  = each.value
  depends_on = [module.control_plane, module.prometheus]
}
