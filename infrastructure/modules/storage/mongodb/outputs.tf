locals {
  missing_certificates = "the mongodb block needs the certificates variable (the files armonik-deploy deploy --target kubernetes generates): MongoDB serves TLS only"
}

output "env" {
  description = "core settings (the Secret mongodb-credentials holds MongoDB__User and MongoDB__Password)"
  value = {
    Components__TableStorage = "mongodb"
    MongoDB__Host            = "mongodb-db-ps-rs0.${var.namespace}.svc"
    MongoDB__Port            = "27017"
    MongoDB__DatabaseName    = var.database_name
    MongoDB__ReplicaSet      = "rs0"
    MongoDB__AuthSource      = var.database_name
    MongoDB__Tls             = "true"
    MongoDB__CAFile          = "${local.ca_path}/ca.crt"
  }
  precondition {
    condition     = local.ready
    error_message = local.missing_certificates
  }
}
output "client_volumes" {
  description = "secret_volumes of the core processes' workloads: the authority MongoDB__CAFile names"
  value       = local.client_volumes
}
output "secrets" {
  description = "Names of the TLS Secrets created"
  value       = keys(local.secrets)
}
