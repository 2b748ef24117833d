variable "namespace" { type = string }
variable "image" { type = string }
variable "port" {
  type    = number
  default = 9419
}
variable "service_type" {
  type    = string
  default = "ClusterIP"
}
variable "config_maps" { type = list(string) }
variable "secrets" {
  type    = list(string)
  default = []
}
variable "volumes" {
  type    = list(object({ name = string, mount_path = string, source = any }))
  default = []
}
variable "secret_volumes" {
  description = "Secrets mounted read-only in the container (MongoDB: the authority MongoDB__CAFile names)"
  type        = list(object({ name = string, secret = string, mount_path = string, mode = optional(number, 288) }))
  default     = []
}
