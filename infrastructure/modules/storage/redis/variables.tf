variable "namespace" { type = string }
variable "image" {
  description = "redis:<tag>"
  type        = string
}
variable "credentials_secret" {
  type    = string
  default = "redis-credentials"
}
variable "max_memory" {
  type    = string
  default = null
}
variable "max_memory_samples" {
  type    = number
  default = null
}
variable "instance_name" {
  description = "Redis__InstanceName: the prefix of the keys (null: none)"
  type        = string
  default     = null
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
