# KEDA, installed with its Helm chart as upstream's monitoring/onpremise/keda module does (values.tf: its
# images as the chart composes them); the ScaledObjects themselves belong to the compute-plane module. The
# quick-deploy calls it only with install_helm_charts (otherwise helm installs the same release).
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
  values           = [yamlencode(local.values)]
}
