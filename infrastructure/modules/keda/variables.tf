variable "namespace" {
  type    = string
  default = "default"
}
variable "chart_repository" { type = string }
variable "chart_version" { type = string }
variable "keda_image" {
  description = "The operator's image, registry host first (the versions' name): values.tf splits it"
  type        = string
  default     = "ghcr.io/kedacore/keda"
}
variable "keda_tag" { type = string }
variable "apiserver_image" {
  description = "The metrics API server's image, registry host first: values.tf splits it"
  type        = string
  default     = "ghcr.io/kedacore/keda-metrics-apiserver"
}
variable "apiserver_tag" { type = string }
