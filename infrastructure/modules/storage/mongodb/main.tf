# MongoDB through the Percona operator, as upstream's storage/onpremise/mongodb-percona: the operator's Helm
# chart (unless install_operator is false: helm installs it, `armonik-deploy deploy --charts helm`), its TLS
# Secrets (tls.tf), then the PerconaServerMongoDB resource armonik_deploy/kubernetes/services.py renders.
terraform {
  required_providers {
    helm       = { source = "hashicorp/helm" }
    kubectl    = { source = "gavinbunney/kubectl" }
    kubernetes = { source = "hashicorp/kubernetes" }
  }
}

resource "helm_release" "operator" {
  count      = var.install_operator ? 1 : 0
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

# binary-safe: the provider encodes `data` itself
resource "kubernetes_secret" "tls" {
  for_each = local.secrets
  metadata {
    name      = each.key
    namespace = var.namespace
    labels    = { app = "armonik", service = "mongodb" }
  }
  type = each.value
  data = try(local.files[each.key], {}) # {} only without certificates, which the precondition refuses
  lifecycle {
    precondition {
      condition     = local.ready
      error_message = local.missing_certificates
    }
  }
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
      unsafeFlags     = { replsetSize = var.replicas < 3 }
      tls             = local.cluster_tls
      secrets         = local.cluster_secrets
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
  depends_on = [helm_release.operator, kubectl_manifest.application_password, kubernetes_secret.tls]
}
