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
variable "service_type" {
  description = "Of the client Service"
  type        = string
  default     = "ClusterIP"
}
variable "max_priority" {
  description = "Amqp__MaxPriority of the clients (null: theirs)"
  type        = number
  default     = null
}
variable "prefix" {
  description = "Amqp__Prefix of the queue names (null: the clients')"
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
