# The metrics exporter: Deployment + Service metrics-exporter (var.port -> container 1080), HTTP probes.
terraform {
  required_providers {
    kubectl = { source = "gavinbunney/kubectl" }
  }
}

locals {
  labels = { app = "armonik", service = "metrics-exporter" }
}

resource "kubectl_manifest" "deployment" {
  yaml_body = yamlencode({
    apiVersion = "apps/v1"
    kind       = "Deployment"
    metadata   = { name = "metrics-exporter", namespace = var.namespace, labels = local.labels }
    spec = {
      replicas = 1
      selector = { matchLabels = local.labels }
      template = {
        metadata = { labels = local.labels }
        spec = merge({
          securityContext = { runAsUser = 5000, runAsGroup = 5000, fsGroup = 5000, runAsNonRoot = true }
          containers = [merge({
            name            = "metrics-exporter"
            image           = var.image
            imagePullPolicy = "IfNotPresent"
            ports           = [{ name = "metrics", containerPort = 1080, protocol = "TCP" }]
            envFrom = concat(
              [for name in var.config_maps : { configMapRef = { name = name } }],
              [for name in var.secrets : { secretRef = { name = name } }],
            )
            startupProbe    = { httpGet = { path = "/startup", port = "metrics" }, periodSeconds = 3, failureThreshold = 20 }
            livenessProbe   = { httpGet = { path = "/liveness", port = "metrics" }, periodSeconds = 10, failureThreshold = 3 }
            securityContext = { allowPrivilegeEscalation = false, capabilities = { drop = ["ALL"] } }
          }, length(var.volumes) > 0 ? { volumeMounts = [for v in var.volumes : { name = v.name, mountPath = v.mount_path }] } : {})]
        }, length(var.volumes) > 0 ? { volumes = [for v in var.volumes : merge({ name = v.name }, v.source)] } : {})
      }
    }
  })
}

resource "kubectl_manifest" "service" {
  yaml_body = yamlencode({
    apiVersion = "v1"
    kind       = "Service"
    metadata   = { name = "metrics-exporter", namespace = var.namespace, labels = local.labels }
    spec = {
      type     = var.service_type
      selector = local.labels
      ports    = [{ name = "metrics", port = var.port, targetPort = "metrics", protocol = "TCP" }]
    }
  })
}
