# Redis: a Deployment without persistence + Service, as upstream's module and
# armonik_deploy/kubernetes/services.py.
terraform {
  required_providers {
    kubectl = { source = "gavinbunney/kubectl" }
  }
}

locals {
  labels = { app = "armonik", service = "redis" }
}

resource "kubectl_manifest" "deployment" {
  yaml_body = yamlencode({
    apiVersion = "apps/v1"
    kind       = "Deployment"
    metadata   = { name = "redis", namespace = var.namespace, labels = local.labels }
    spec = {
      replicas = 1
      selector = { matchLabels = local.labels }
      template = {
        metadata = { labels = local.labels }
        spec = {
          containers = [{
            name  = "redis"
            image = var.image
            args  = concat(["--requirepass", "$(REDIS_PASSWORD)", "--save", "", "--appendonly", "no"], var.max_memory == null ? [] : ["--maxmemory", var.max_memory])
            ports = [{ name = "redis", containerPort = 6379, protocol = "TCP" }]
            env   = [{ name = "REDIS_PASSWORD", valueFrom = { secretKeyRef = { name = var.credentials_secret, key = "Redis__Password" } } }]
          }]
        }
      }
    }
  })
}

resource "kubectl_manifest" "service" {
  yaml_body = yamlencode({
    apiVersion = "v1"
    kind       = "Service"
    metadata   = { name = "redis", namespace = var.namespace, labels = local.labels }
    spec = {
      type     = "ClusterIP"
      selector = local.labels
      ports    = [{ name = "redis", port = 6379, targetPort = "redis", protocol = "TCP" }]
    }
  })
}
