variable "namespace" {
  type    = string
  default = "default"
}
variable "chart_repository" { type = string }
variable "chart_version" { type = string }
variable "keda_image" {
  type    = string
  default = "ghcr.io/kedacore/keda"
}
variable "keda_tag" { type = string }
variable "apiserver_image" {
  type    = string
  default = "ghcr.io/kedacore/keda-metrics-apiserver"
}
variable "apiserver_tag" { type = string }
