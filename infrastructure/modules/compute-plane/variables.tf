variable "namespace" { type = string }
variable "partition" { type = string }
variable "replicas" {
  type    = number
  default = 1
}
variable "termination_grace_period_seconds" {
  type    = number
  default = 30
}
variable "socket_type" {
  type    = string
  default = "unixdomainsocket"
  validation {
    condition     = contains(["unixdomainsocket", "tcp"], var.socket_type)
    error_message = "socket_type is unixdomainsocket or tcp."
  }
}
variable "user" {
  description = "runAsUser of the pod (upstream's security.user)"
  type        = number
  default     = 5000
}
variable "node_selector" {
  type    = map(string)
  default = {}
}
variable "polling_agent" {
  description = "image (name:tag), limits, requests"
  type        = object({ image = string, limits = map(string), requests = map(string) })
}
variable "workers" {
  description = "name, image (name:tag), limits, requests of each worker container"
  type        = list(object({ name = string, image = string, limits = map(string), requests = map(string) }))
}
variable "cache_memory" {
  type    = bool
  default = false
}
variable "cache_size_limit" {
  type    = string
  default = null
}
variable "hpa" {
  description = "upstream's hpa block (null: no ScaledObject)"
  type        = any
  default     = null
}
variable "prometheus_url" { type = string }
variable "agent_config_maps" { type = list(string) }
variable "worker_config_maps" { type = list(string) }
variable "secrets" {
  type    = list(string)
  default = []
}
variable "volumes" {
  description = "Volumes of the polling agent: name, mount_path and the volume source object"
  type        = list(object({ name = string, mount_path = string, source = any }))
  default     = []
}
variable "secret_volumes" {
  description = "Secrets mounted read-only in the polling agent (TLS: the authority and client certificate it connects with)"
  type        = list(object({ name = string, secret = string, mount_path = string, mode = optional(number, 288) }))
  default     = []
}
