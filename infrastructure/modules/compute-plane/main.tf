# One partition of the compute plane: Deployment compute-plane-<partition> (polling agent + workers sharing the
# emptyDir /cache for their sockets) and its KEDA ScaledObject <partition>-compute-plane (scaled-object.tf), as
# armonik_deploy/kubernetes/armonik.py renders them.
locals {
  labels = { app = "armonik", service = "compute-plane", partition = var.partition }
  tcp    = var.socket_type == "tcp"
  channels = local.tcp ? {
    ComputePlane__WorkerChannel__Address    = "http://localhost:10667"
    ComputePlane__WorkerChannel__SocketType = "Tcp"
    ComputePlane__AgentChannel__Address     = "http://localhost:10666"
    ComputePlane__AgentChannel__SocketType  = "Tcp"
    } : {
    ComputePlane__WorkerChannel__Address    = "/cache/armonik_worker.sock"
    ComputePlane__WorkerChannel__SocketType = "UnixDomainSocket"
    ComputePlane__AgentChannel__Address     = "/cache/armonik_agent.sock"
    ComputePlane__AgentChannel__SocketType  = "UnixDomainSocket"
  }
  env = concat(
    [{ name = "Pollster__PartitionId", value = var.partition }],
    [{ name = "Pollster__AgentId", valueFrom = { fieldRef = { fieldPath = "metadata.name" } } }],
    [for k, v in local.channels : { name = k, value = v }],
  )
  cache_mount = { name = "cache-volume", mountPath = "/cache" }
  # Terraform's conditional needs both sides of one type, so the socket type picks from a tuple instead.
  probes = {
    for own in ["agent", "worker"] : own => [{
      startupProbe  = { tcpSocket = { port = own == "agent" ? 10666 : 10667 }, periodSeconds = 3, failureThreshold = 20 }
      livenessProbe = { tcpSocket = { port = own == "agent" ? 10666 : 10667 }, periodSeconds = 10, failureThreshold = 3, initialDelaySeconds = 15 }
      }, {
      startupProbe  = { exec = { command = ["test", "-S", "/cache/armonik_${own}.sock"] }, periodSeconds = 3, failureThreshold = 20 }
      livenessProbe = { exec = { command = ["test", "-S", "/cache/armonik_${own}.sock"] }, periodSeconds = 10, failureThreshold = 3, initialDelaySeconds = 15 }
    }][local.tcp ? 0 : 1]
  }
  agent = merge({
    name         = "polling-agent"
    image        = var.polling_agent.image
    config_maps  = var.agent_config_maps
    secrets      = var.secrets
    env          = local.env
    volumeMounts = [local.cache_mount]
    resources    = { limits = var.polling_agent.limits, requests = var.polling_agent.requests }
  }, local.probes["agent"])
  workers = [for i, w in var.workers : merge({
    name         = length(var.workers) == 1 ? w.name : "${w.name}-${i}"
    image        = w.image
    config_maps  = var.worker_config_maps
    env          = local.env
    volumeMounts = [local.cache_mount]
    resources    = { limits = w.limits, requests = w.requests }
    lifecycle = { preStop = { exec = { command = [
      "/bin/sh", "-c", "while test -e /cache/armonik_agent.sock; do sleep 1; done"
    ] } } }
  }, local.probes["worker"])]
  cache_volume = merge(
    var.cache_memory ? { medium = "Memory" } : {},
    var.cache_size_limit != null ? { sizeLimit = var.cache_size_limit } : {},
  )
  triggers = [for t in try(var.hpa.triggers, []) : (
    [{
      type = "prometheus"
      metadata = {
        serverAddress = var.prometheus_url
        metricName    = "armonik_${replace(var.partition, "-", "_")}_tasks_queued"
        threshold     = tostring(try(t.threshold, 2))
        query         = "armonik_${replace(var.partition, "-", "_")}_tasks_queued{job=\"metrics-exporter\"}"
      }
      }, {
      type       = t.type
      metricType = try(t.metric_type, "Utilization")
      metadata   = { value = tostring(try(t.value, "80")) }
    }][t.type == "prometheus" ? 0 : 1]
  ) if contains(["prometheus", "cpu", "memory"], t.type)]
}

module "workload" {
  source     = "../workload"
  namespace  = var.namespace
  name       = "compute-plane-${var.partition}"
  labels     = local.labels
  replicas   = var.replicas
  user       = var.user
  containers = concat([local.agent], local.workers)
  pod = {
    terminationGracePeriodSeconds = var.termination_grace_period_seconds
    nodeSelector                  = var.node_selector
    tolerations                   = [for k, v in var.node_selector : { key = k, operator = "Equal", value = v, effect = "NoSchedule" }]
    volumes                       = [{ name = "cache-volume", emptyDir = local.cache_volume }]
  }
  volumes        = var.volumes
  secret_volumes = var.secret_volumes
  mount_in       = ["polling-agent"]
}
