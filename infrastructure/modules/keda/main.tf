# KEDA, installed with its Helm chart as upstream's monitoring/onpremise/keda module does; the ScaledObjects
# themselves belong to the compute-plane module.
terraform {
  required_providers {
    helm = { source = "hashicorp/helm" }
  }
}

resource "helm_release" "keda" {
  name             = "keda"
  namespace        = var.namespace
  create_namespace = true
  repository       = var.chart_repository
  chart            = "keda"
  version          = var.chart_version
  values = [yamlencode({
    image = {
      keda             = { repository = var.keda_image, tag = var.keda_tag }
      metricsApiServer = { repository = var.apiserver_image, tag = var.apiserver_tag }
    }
  })]
}
