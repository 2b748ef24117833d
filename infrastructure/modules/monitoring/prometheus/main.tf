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

resource "kubectl_manifest" "deployment" {
  yaml_body = yamlencode({
    apiVersion = "apps/v1"
    kind       = "Deployment"
    metadata   = { name = "prometheus", namespace = var.namespace, labels = local.labels }
    spec = {
      replicas = 1
      selector = { matchLabels = local.labels }
      template = {
        metadata = { labels = local.labels }
        spec = {
          containers = [{
            name         = "prometheus"
            image        = var.image
            args         = ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
            ports        = [{ name = "http", containerPort = 9090, protocol = "TCP" }]
            volumeMounts = [{ name = "config", mountPath = "/etc/prometheus" }, { name = "tsdb", mountPath = "/prometheus" }]
          }]
          volumes = [{ name = "config", configMap = { name = "prometheus-configmap" } }, { name = "tsdb", emptyDir = {} }]
        }
      }
    }
  })
  depends_on = [kubectl_manifest.config]
}

resource "kubectl_manifest" "service" {
  yaml_body = yamlencode({
    apiVersion = "v1"
    kind       = "Service"
    metadata   = { name = "prometheus", namespace = var.namespace, labels = local.labels }
    spec = {
      type     = "ClusterIP"
      selector = local.labels
      ports    = [{ name = "http", port = 9090, targetPort = "http", protocol = "TCP" }]
    }
  })
}
