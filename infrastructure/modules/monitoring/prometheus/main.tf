# Prometheus scraping the metrics exporter every 10 s (job metrics-exporter): the source of the ScaledObjects'
# armonik_<partition>_tasks_queued.
terraform {
  required_providers {
    kubectl = { source = "gavinbunney/kubectl" }
  }
}

locals {
  labels = { app = "armonik", service = "prometheus" }
  config = yamlencode({
    global         = { scrape_interval = "10s" }
    scrape_configs = [{ job_name = "metrics-exporter", static_configs = [{ targets = [var.exporter_target] }] }]
  })
}

resource "kubectl_manifest" "config" {
  yaml_body = yamlencode({
    apiVersion = "v1"
    kind       = "ConfigMap"
    metadata   = { name = "prometheus-configmap", namespace = var.namespace, labels = local.labels }
    data       = { "prometheus.yml" = local.config }
  })
}

module "workload" {
  source    = "../../workload"
  namespace = var.namespace
  name      = "prometheus"
  labels    = local.labels
  containers = [{
    name         = "prometheus"
    image        = var.image
    args         = ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
    ports        = { http = 9090 }
    volumeMounts = [{ name = "config", mountPath = "/etc/prometheus" }, { name = "tsdb", mountPath = "/prometheus" }]
  }]
  pod        = { volumes = [{ name = "config", configMap = { name = "prometheus-configmap" } }, { name = "tsdb", emptyDir = {} }] }
  services   = [{ name = "prometheus", ports = { http = 9090 } }]
  depends_on = [kubectl_manifest.config]
}
