# The control plane: Deployment + Service, as armonik_deploy/kubernetes/armonik.py renders them
# (container port 1080, Service var.port -> 1080, settings from ConfigMaps and Secrets with envFrom).
terraform {
  required_providers {
    kubectl = { source = "gavinbunney/kubectl" }
  }
}

locals {
  labels = { app = "armonik", service = "control-plane" }
  container = merge({
    name            = "control-plane"
    image           = "${var.image}:${var.tag}"
    imagePullPolicy = var.image_pull_policy
    ports           = [{ name = "grpc", containerPort = 1080, protocol = "TCP" }]
    envFrom = concat(
      [for name in var.config_maps : { configMapRef = { name = name } }],
      [for name in var.secrets : { secretRef = { name = name } }],
    )
    startupProbe    = { tcpSocket = { port = "grpc" }, periodSeconds = 3, failureThreshold = 20 }
    livenessProbe   = { tcpSocket = { port = "grpc" }, periodSeconds = 5, failureThreshold = 3 }
    securityContext = { allowPrivilegeEscalation = false, capabilities = { drop = ["ALL"] } }
    resources       = { limits = var.limits, requests = var.requests }
    }, length(var.volumes) > 0 ? {
    volumeMounts = [for v in var.volumes : { name = v.name, mountPath = v.mount_path }]
  } : {})
  volumes = [for v in var.volumes : merge({ name = v.name }, v.source)]
}

resource "kubectl_manifest" "deployment" {
  yaml_body = yamlencode({
    apiVersion = "apps/v1"
    kind       = "Deployment"
    metadata   = { name = var.name, namespace = var.namespace, labels = local.labels }
    spec = {
      replicas = var.replicas
      selector = { matchLabels = local.labels }
      template = {
        metadata = { labels = local.labels }
        spec = merge({
          securityContext = { runAsUser = 5000, runAsGroup = 5000, fsGroup = 5000, runAsNonRoot = true }
          containers      = [local.container]
          nodeSelector    = var.node_selector
        }, length(local.volumes) > 0 ? { volumes = local.volumes } : {})
      }
    }
  })
}

resource "kubectl_manifest" "service" {
  yaml_body = yamlencode({
    apiVersion = "v1"
    kind       = "Service"
    metadata   = { name = var.name, namespace = var.namespace, labels = local.labels }
    spec = {
      type     = var.service_type
      selector = local.labels
      ports    = [{ name = "grpc", port = var.port, targetPort = "grpc", protocol = "TCP" }]
    }
  })
}
