# The two Secrets of locals.files (binary-safe: the provider encodes `data` itself).
terraform {
  required_providers {
    kubernetes = { source = "hashicorp/kubernetes" }
  }
}

resource "kubernetes_secret" "tls" {
  for_each = local.secrets
  metadata {
    name      = each.key
    namespace = var.namespace
    labels    = { app = "armonik", service = each.value.service }
  }
  type = each.value.type
  data = try(local.files[each.key], {}) # {} only without certificates, which the precondition refuses
  lifecycle {
    precondition {
      condition     = local.ready
      error_message = local.missing_certificates
    }
  }
}
