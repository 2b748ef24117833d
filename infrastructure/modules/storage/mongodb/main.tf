# MongoDB through the Percona operator, as upstream's storage/onpremise/mongodb-percona: the operator's Helm
# chart, then the PerconaServerMongoDB resource armonik_deploy/kubernetes/services.py renders.
terraform {
  required_providers {
    helm    = { source = "hashicorp/helm" }
    kubectl = { source = "gavinbunney/kubectl" }
  }
}

resource "helm_release" "operator" {
  name       = "mongodb-psmdb-operator"
  namespace  = var.namespace
  repository = var.chart_repository
  chart      = "psmdb-operator"
  version    = var.chart_version
}

resource "kubectl_manifest" "application_password" {
  sensitive_fields = ["stringData"]
  yaml_body = yamlencode({
    apiVersion = "v1"
    kind       = "Secret"
    metadata   = { name = "application-user-password", namespace = var.namespace, labels = { app = "armonik", service = "mongodb" } }
    type       = "Opaque"
    stringData = { password = var.password }
  })
}

resource "kubectl_manifest" "cluster" {
  yaml_body = yamlencode({
    apiVersion = "psmdb.percona.com/v1"
    kind       = "PerconaServerMongoDB"
    metadata   = { name = "mongodb-db-ps", namespace = var.namespace, labels = { app = "armonik", service = "mongodb" } }
    spec = {
      crVersion       = var.chart_version
      image           = var.image
      imagePullPolicy = "IfNotPresent"
      unsafeFlags     = { replsetSize = var.replicas < 3, tls = true }
      tls             = { mode = "disabled" }
      secrets         = { users = "mongodb-db-ps-secrets" }
      users = [{
        name              = "application_user"
        db                = var.database_name
        passwordSecretRef = { name = "application-user-password", key = "password" }
        roles = [
          { name = "readWrite", db = var.database_name },
          { name = "dbAdmin", db = var.database_name },
          { name = "clusterAdmin", db = "admin" },
        ]
      }]
      replsets = [{
        name       = "rs0"
        size       = var.replicas
        affinity   = { antiAffinityTopologyKey = "none" }
        volumeSpec = var.storage_size == null ? { emptyDir = {} } : { persistentVolumeClaim = { accessModes = ["ReadWriteOnce"], resources = { requests = { storage = var.storage_size } } } }
      }]
      sharding = { enabled = false }
      backup   = { enabled = false }
    }
  })
  depends_on = [helm_release.operator, kubectl_manifest.application_password]
}
