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
