variable "namespace" { type = string }
variable "image" {
  description = "apache/activemq-classic:<tag>"
  type        = string
}
variable "credentials_secret" {
  description = "Secret with Amqp__User and Amqp__Password (the broker's connection user)"
  type        = string
  default     = "activemq-credentials"
}
variable "opts_memory" {
  description = "upstream's activemq_opts_memory: the broker's JVM heap (ACTIVEMQ_OPTS_MEMORY)"
  type        = string
  default     = "-Xms1g -Xmx3g"
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
