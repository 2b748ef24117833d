# The metrics exporter: Deployment + Service metrics-exporter (var.port -> container 1080), HTTP probes, and
# with MongoDB its authority mounted as a file.
module "workload" {
  source    = "../../workload"
  namespace = var.namespace
  name      = "metrics-exporter"
  labels    = { app = "armonik", service = "metrics-exporter" }
  user      = 5000
  containers = [{
    name          = "metrics-exporter"
    image         = var.image
    ports         = { metrics = 1080 }
    config_maps   = var.config_maps
    secrets       = var.secrets
    startupProbe  = { httpGet = { path = "/startup", port = "metrics" }, periodSeconds = 3, failureThreshold = 20 }
    livenessProbe = { httpGet = { path = "/liveness", port = "metrics" }, periodSeconds = 10, failureThreshold = 3 }
  }]
  volumes        = var.volumes
  secret_volumes = var.secret_volumes
  services       = [{ name = "metrics-exporter", type = var.service_type, ports = { metrics = var.port } }]
}
