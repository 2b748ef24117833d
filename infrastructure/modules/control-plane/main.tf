# The control plane: Deployment + Service, as armonik_deploy/kubernetes/armonik.py renders them
# (container port 1080, Service var.port -> 1080, settings from ConfigMaps and Secrets with envFrom, and with
# TLS its certificate Secret mounted as files), and the agents' compute gateway on container port 1081 behind a
# Service of its own, `compute-gateway`, whose address only the agents are given.
module "workload" {
  source    = "../workload"
  namespace = var.namespace
  name      = var.name
  labels    = { app = "armonik", service = "control-plane" }
  replicas  = var.replicas
  user      = 5000
  containers = [{
    name            = "control-plane"
    image           = "${var.image}:${var.tag}"
    imagePullPolicy = var.image_pull_policy
    ports           = { grpc = 1080, gateway = 1081 }
    config_maps     = var.config_maps
    secrets         = var.secrets
    startupProbe    = { tcpSocket = { port = "grpc" }, periodSeconds = 3, failureThreshold = 20 }
    livenessProbe   = { tcpSocket = { port = "grpc" }, periodSeconds = 5, failureThreshold = 3 }
    resources       = { limits = var.limits, requests = var.requests }
  }]
  pod            = { nodeSelector = var.node_selector }
  volumes        = var.volumes
  secret_volumes = var.secret_volumes
  services = [
    { name = var.name, type = var.service_type, ports = { grpc = var.port } },
    { name = "compute-gateway", type = "ClusterIP", ports = { gateway = 1081 } },
  ]
}
