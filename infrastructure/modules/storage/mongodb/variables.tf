variable "namespace" { type = string }
variable "chart_repository" { type = string }
variable "chart_version" { type = string }
variable "image" {
  description = "percona/percona-server-mongodb:<tag>"
  type        = string
}
variable "replicas" {
  type    = number
  default = 1
}
variable "database_name" {
  type    = string
  default = "database"
}
variable "storage_size" {
  description = "null: emptyDir (upstream's persistence = null)"
  type        = string
  default     = null
}
variable "password" {
  type      = string
  sensitive = true
}
variable "install_operator" {
  description = "Install the operator's chart (false: helm installs it, armonik-deploy deploy --charts helm)"
  type        = bool
  default     = true
}
variable "certificates" {
  description = <<-EOT
    The certificate files `armonik-deploy deploy --target kubernetes` generates: ca.certificate and
    servers["mongodb"].certificate and .key (the replica set's, see tls.tf).
  EOT
  type        = any
  default     = null
}
