locals {
  missing_certificates = "ingress.tls = true needs the certificates variable (the files armonik-deploy deploy --target kubernetes generates)"
}

output "scheme" {
  description = "Of the control plane's endpoint, for its clients"
  value       = var.tls ? "https" : "http"
}
output "server_env" {
  description = "ControlPlane__Tls__* settings of the control plane"
  value       = local.server_env
  precondition {
    condition     = !var.tls || local.ready
    error_message = local.missing_certificates
  }
  precondition {
    condition     = var.tls || !var.mtls
    error_message = "ingress.mtls = true needs ingress.tls = true: client certificates are checked over TLS"
  }
}
output "client_env" {
  description = "ControlPlane__Tls__* settings of the polling agents"
  value       = local.client_env
}
output "server_volumes" {
  description = "secret_volumes of the control plane's workload"
  value       = local.volumes["server"]
}
output "client_volumes" {
  description = "secret_volumes of the polling agents' workloads"
  value       = local.volumes["client"]
}
output "secrets" {
  description = "Names of the Secrets created"
  value       = keys(local.secrets)
}
