variable "namespace" { type = string }
variable "image" { type = string } # redis:<tag>
# The parameters' `redis` block as given (see ../README.md).
variable "redis" {
  type = object({
    max_memory         = optional(string)
    max_memory_samples = optional(number)
    instance_name      = optional(string) # Redis__InstanceName: the prefix of the keys (null: none)
    limits             = optional(map(string), {})
    requests           = optional(map(string), {})
    node_selector      = optional(map(string), {})
    credentials_secret = optional(string, "redis-credentials") # with Redis__Password
  })
}
