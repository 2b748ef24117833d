variable "namespace" { type = string }
variable "name" {
  type    = string
  default = "control-plane"
}
variable "image" { type = string }
variable "tag" { type = string }
variable "image_pull_policy" {
  type    = string
  default = "IfNotPresent"
}
variable "replicas" {
  type    = number
  default = 1
}
variable "port" {
  description = "Port of the Service (the container listens on 1080)"
  type        = number
  default     = 5001
}
variable "service_type" {
  type    = string
  default = "ClusterIP"
}
variable "limits" {
  type    = map(string)
  default = {}
}
variable "requests" {
  type    = map(string)
  default = {}
}
variable "node_selector" {
  type    = map(string)
  default = {}
}
variable "config_maps" {
  description = "ConfigMaps read with envFrom, in order (later wins)"
  type        = list(string)
}
variable "secrets" {
  description = "Secrets read with envFrom, after the ConfigMaps"
  type        = list(string)
  default     = []
}
variable "volumes" {
  description = "Volumes mounted in the container: name, mount_path and the volume source object"
  type        = list(object({ name = string, mount_path = string, source = any }))
  default     = []
}
variable "secret_volumes" {
  description = "Secrets mounted read-only in the container (TLS: the certificate the ControlPlane__Tls__* settings name)"
  type        = list(object({ name = string, secret = string, mount_path = string, mode = optional(number, 288) }))
  default     = []
}
