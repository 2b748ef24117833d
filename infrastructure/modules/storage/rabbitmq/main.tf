# RabbitMQ: StatefulSet (stable host name for its data) + headless and client Services, as
# armonik_deploy/kubernetes/services.py renders them.
terraform {
  required_providers {
    kubectl = { source = "gavinbunney/kubectl" }
  }
}

locals {
  labels = { app = "armonik", service = "rabbitmq" }
}

resource "kubectl_manifest" "statefulset" {
  yaml_body = yamlencode({
    apiVersion = "apps/v1"
    kind       = "StatefulSet"
    metadata   = { name = "rabbitmq", namespace = var.namespace, labels = local.labels }
    spec = {
      serviceName = "rabbitmq-headless"
      replicas    = 1
      selector    = { matchLabels = local.labels }
      template = {
        metadata = { labels = local.labels }
        spec = {
          securityContext = { fsGroup = 1001 }
          containers = [{
            name  = "rabbitmq"
            image = var.image
            ports = [{ name = "amqp", containerPort = 5672, protocol = "TCP" }, { name = "management", containerPort = 15672, protocol = "TCP" }]
            env = [
              { name = "RABBITMQ_USERNAME", valueFrom = { secretKeyRef = { name = var.credentials_secret, key = "Amqp__User" } } },
              { name = "RABBITMQ_PASSWORD", valueFrom = { secretKeyRef = { name = var.credentials_secret, key = "Amqp__Password" } } },
              { name = "RABBITMQ_PLUGINS", value = "rabbitmq_management" },
            ]
            volumeMounts = [{ name = "data", mountPath = "/bitnami/rabbitmq/mnesia" }]
          }]
        }
      }
      volumeClaimTemplates = [{
        metadata = { name = "data" }
        spec     = { accessModes = ["ReadWriteOnce"], resources = { requests = { storage = var.storage_size } } }
      }]
    }
  })
}

resource "kubectl_manifest" "services" {
  for_each = { "rabbitmq-headless" = true, "rabbitmq" = false }
  yaml_body = yamlencode({
    apiVersion = "v1"
    kind       = "Service"
    metadata   = { name = each.key, namespace = var.namespace, labels = local.labels }
    spec = merge({
      type     = "ClusterIP"
      selector = local.labels
      ports    = [{ name = "amqp", port = 5672, targetPort = "amqp", protocol = "TCP" }]
    }, each.value ? { clusterIP = "None" } : {})
  })
}
