# The objects of the module as data: locals only, no resource, so that they can be evaluated (and compared
# with the renderer's) without a cluster or a provider; main.tf applies them.
locals {
  armonik = var.user != null
  name    = var.name != null ? var.name : var.service.name
  labels  = var.labels != null ? var.labels : { app = "armonik", service = var.service.name }
  # A storage service's container: named, pulled and sized from the service, its credentials first in its env
  # (try: with no service, nothing; a conditional would need both sides of one type).
  given = [for c in var.containers : merge(
    try({ name = var.service.name, image = var.service.image, imagePullPolicy = "IfNotPresent" }, {}),
    c,
    try({
      resources = { limits = var.service.block.limits, requests = var.service.block.requests }
      env = concat([for pair in var.credentials : {
        name      = pair[0]
        valueFrom = { secretKeyRef = { name = var.service.block.credentials_secret, key = pair[1] } }
      }], try(c.env, []))
    }, {}),
  )]
  given_pod = merge(try({ nodeSelector = var.service.block.node_selector }, {}), var.pod)
  own_keys  = ["config_maps", "secrets", "ports", "resources"]
  # A container's limits and requests without their empty maps (none at all: no `resources`), and the pod
  # without an empty nodeSelector or tolerations, as the renderer writes them: callers pass their variables as
  # they are, empty or not.
  resources = [for c in local.given : { for kind, values in try(c.resources, {}) : kind => values if length(values) > 0 }]
  prunable  = ["nodeSelector", "tolerations"]
  mounts = concat(
    [for v in var.volumes : { name = v.name, mountPath = v.mount_path }],
    [for s in var.secret_volumes : { name = s.name, mountPath = s.mount_path, readOnly = true }],
  )
  containers = [for i, c in local.given : merge(
    local.armonik ? { imagePullPolicy = "IfNotPresent" } : {},
    local.armonik ? { securityContext = { allowPrivilegeEscalation = false, capabilities = { drop = ["ALL"] } } } : {},
    { for key, value in c : key => value if !contains(local.own_keys, key) },
    length(local.resources[i]) > 0 ? { resources = local.resources[i] } : {},
    can(c.ports) ? { ports = [for name, port in c.ports : { name = name, containerPort = port, protocol = "TCP" }] } : {},
    can(c.config_maps) || can(c.secrets) ? { envFrom = concat(
      [for name in try(c.config_maps, []) : { configMapRef = { name = name } }],
      [for name in try(c.secrets, []) : { secretRef = { name = name } }],
    ) } : {},
    length(local.mounts) > 0 && contains(coalesce(var.mount_in, [c.name]), c.name) ? {
      volumeMounts = concat(try(c.volumeMounts, []), local.mounts)
    } : {},
  )]
  volumes = concat(
    try(local.given_pod.volumes, []),
    [for v in var.volumes : merge({ name = v.name }, v.source)],
    [for s in var.secret_volumes : { name = s.name, secret = { secretName = s.secret, defaultMode = s.mode } }],
  )
  pod = merge(
    local.armonik ? { securityContext = { runAsUser = var.user, runAsGroup = var.user, fsGroup = var.user, runAsNonRoot = var.user != 0 } } : {},
    { for key, value in local.given_pod : key => value if !contains(local.prunable, key) || try(length(value) > 0, true) },
    { containers = local.containers },
    length(local.volumes) > 0 ? { volumes = local.volumes } : {},
  )

  workload = {
    apiVersion = "apps/v1"
    kind       = var.stateful == null ? "Deployment" : "StatefulSet"
    metadata   = { name = local.name, namespace = var.namespace, labels = local.labels }
    spec = merge(
      var.stateful == null ? {} : { serviceName = var.stateful.service_name },
      var.stateful == null ? {} : { volumeClaimTemplates = var.stateful.claims },
      {
        replicas = var.replicas
        selector = { matchLabels = local.labels }
        template = { metadata = { labels = local.labels }, spec = local.pod }
      },
    )
  }
  services = {
    for s in var.services : s.name => {
      apiVersion = "v1"
      kind       = "Service"
      metadata   = { name = s.name, namespace = var.namespace, labels = local.labels }
      spec = merge({
        type     = s.type
        selector = local.labels
        ports    = [for name, port in s.ports : { name = name, port = port, targetPort = name, protocol = "TCP" }]
      }, s.headless ? { clusterIP = "None" } : {})
    }
  }
}
