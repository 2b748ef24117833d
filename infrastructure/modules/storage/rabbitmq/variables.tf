variable "namespace" { type = string }
variable "image" { type = string } # bitnamilegacy/rabbitmq:<tag>
# The parameters' `rabbitmq` block as given (see ../README.md).
variable "rabbitmq" {
  type = object({
    service_type       = optional(string, "ClusterIP") # of the client Service
    max_priority       = optional(number)              # Amqp__MaxPriority of the clients (null: theirs)
    prefix             = optional(string)              # Amqp__Prefix of the queue names (null: the clients')
    storage_size       = optional(string, "8Gi")
    limits             = optional(map(string), {})
    requests           = optional(map(string), {})
    node_selector      = optional(map(string), {})
    credentials_secret = optional(string, "rabbitmq-credentials") # with Amqp__User and Amqp__Password
  })
}
