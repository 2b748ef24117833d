variable "namespace" { type = string }
variable "image" {
  description = "bitnamilegacy/rabbitmq:<tag>"
  type        = string
}
variable "credentials_secret" {
  description = "Secret with Amqp__User and Amqp__Password"
  type        = string
  default     = "rabbitmq-credentials"
}
variable "storage_size" {
  type    = string
  default = "8Gi"
}
