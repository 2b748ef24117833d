variable "namespace" { type = string }
variable "image" { type = string } # apache/activemq-classic:<tag>
# The parameters' `activemq` block as given (see ../README.md).
variable "activemq" {
  type = object({
    activemq_opts_memory = optional(string, "-Xms1g -Xmx3g") # the broker's JVM heap (ACTIVEMQ_OPTS_MEMORY)
    max_priority         = optional(number)                  # Amqp__MaxPriority of the clients (null: theirs)
    prefix               = optional(string)                  # Amqp__Prefix of the queue names (null: the clients')
    limits               = optional(map(string), {})
    requests             = optional(map(string), {})
    node_selector        = optional(map(string), {})
    credentials_secret   = optional(string, "activemq-credentials") # with Amqp__User and Amqp__Password
  })
}
