# The chart's values as data (no resource: evaluated and compared with armonik_deploy/kubernetes/helm.py's
# without a cluster). KEDA's chart writes an image as "<registry>/<repository>:<tag>" (registry ghcr.io by
# default), so each image is split as helm.py's `image_values` does: a first part that is a host (a dot, a
# port or localhost) is the registry, the rest the repository; an image without a host has an empty registry.
locals {
  images = { keda = var.keda_image, metricsApiServer = var.apiserver_image }
  tags   = { keda = var.keda_tag, metricsApiServer = var.apiserver_tag }
  parts  = { for key, image in local.images : key => split("/", image) }
  hosted = {
    for key, parts in local.parts : key => length(parts) > 1 && (
      strcontains(parts[0], ".") || strcontains(parts[0], ":") || parts[0] == "localhost"
    )
  }
  values = {
    image = {
      for key, image in local.images : key => {
        registry   = local.hosted[key] ? local.parts[key][0] : ""
        repository = local.hosted[key] ? join("/", slice(local.parts[key], 1, length(local.parts[key]))) : image
        tag        = local.tags[key]
      }
    }
  }
}
