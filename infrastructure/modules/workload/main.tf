# One workload (a Deployment, or a StatefulSet when `stateful` is given) and the Services selecting its pods:
# the module every other one builds its pods with, so that labels, selectors, ArmoniK's security context and
# the way settings reach containers (envFrom a ConfigMap or a Secret) are written once, as
# armonik_deploy/kubernetes/objects.py does for the renderer.
terraform {
  required_providers {
    kubectl = { source = "gavinbunney/kubectl" }
  }
}

locals {
  armonik  = var.user != null
  own_keys = ["config_maps", "secrets", "ports"]
  mounts   = [for v in var.volumes : { name = v.name, mountPath = v.mount_path }]
  containers = [for c in var.containers : merge(
    local.armonik ? { imagePullPolicy = "IfNotPresent" } : {},
    local.armonik ? { securityContext = { allowPrivilegeEscalation = false, capabilities = { drop = ["ALL"] } } } : {},
    { for key, value in c : key => value if !contains(local.own_keys, key) },
    can(c.ports) ? { ports = [for name, port in c.ports : { name = name, containerPort = port, protocol = "TCP" }] } : {},
    can(c.config_maps) || can(c.secrets) ? { envFrom = concat(
      [for name in try(c.config_maps, []) : { configMapRef = { name = name } }],
      [for name in try(c.secrets, []) : { secretRef = { name = name } }],
    ) } : {},
    length(local.mounts) > 0 && contains(coalesce(var.mount_in, [c.name]), c.name) ? {
      volumeMounts = concat(try(c.volumeMounts, []), local.mounts)
    } : {},
  )]
  volumes = concat(try(var.pod.volumes, []), [for v in var.volumes : merge({ name = v.name }, v.source)])
  pod = merge(
    local.armonik ? { securityContext = { runAsUser = var.user, runAsGroup = var.user, fsGroup = var.user, runAsNonRoot = var.user != 0 } } : {},
    var.pod,
    { containers = local.containers },
    length(local.volumes) > 0 ? { volumes = local.volumes } : {},
  )
}

resource "kubectl_manifest" "workload" {
  yaml_body = yamlencode({
    apiVersion = "apps/v1"
    kind       = var.stateful == null ? "Deployment" : "StatefulSet"
    metadata   = { name = var.name, namespace = var.namespace, labels = var.labels }
    spec = merge(
      var.stateful == null ? {} : { serviceName = var.stateful.service_name },
      var.stateful == null ? {} : { volumeClaimTemplates = var.stateful.claims },
      {
        replicas = var.replicas
        selector = { matchLabels = var.labels }
        template = { metadata = { labels = var.labels }, spec = local.pod }
      },
    )
  })
}

resource "kubectl_manifest" "service" {
  for_each = { for s in var.services : s.name => s }
  yaml_body = yamlencode({
    apiVersion = "v1"
    kind       = "Service"
    metadata   = { name = each.key, namespace = var.namespace, labels = var.labels }
    spec = merge({
      type     = each.value.type
      selector = var.labels
      ports    = [for name, port in each.value.ports : { name = name, port = port, targetPort = name, protocol = "TCP" }]
    }, each.value.headless ? { clusterIP = "None" } : {})
  })
}
