variable "namespace" { type = string }
variable "tls" {
  description = "upstream's ingress.tls: the control plane serves TLS, the polling agents connect with https"
  type        = bool
  default     = false
}
variable "mtls" {
  description = "upstream's ingress.mtls: clients (the polling agents too) must present a certificate; needs tls"
  type        = bool
  default     = false
}
variable "custom_client_ca_file" {
  description = "upstream's ingress.custom_client_ca_file: comma-separated PEM files of more client authorities (mTLS)"
  type        = string
  default     = ""
}
variable "base_folder" {
  description = "Where the relative paths of custom_client_ca_file are"
  type        = string
  default     = "."
}
variable "certificates" {
  description = <<-EOT
    The certificate files `armonik-deploy deploy --target kubernetes` generates: ca.certificate,
    servers["control-plane"].certificate and .key, and with mTLS clients["client"].certificate and .key.
  EOT
  type        = any
  default     = null
}
variable "mount_path" {
  description = "Where the Secrets are mounted in the control plane and the polling agents"
  type        = string
  default     = "/certificates"
}
variable "server_secret" {
  type    = string
  default = "control-plane-tls"
}
variable "client_secret" {
  type    = string
  default = "polling-agent-tls"
}
