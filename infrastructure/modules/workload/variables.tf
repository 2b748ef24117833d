variable "namespace" { type = string }
variable "name" {
  description = "Name of the Deployment (or StatefulSet); null: the service's"
  type        = string
  default     = null
}
variable "labels" {
  description = "Labels of the workload, of its pods (its selector) and of its Services; null: the service's"
  type        = map(string)
  default     = null
}
variable "service" {
  description = <<-EOT
    A storage service run from its vendor's image (null: one of ArmoniK's own workloads). Its `name` names the
    workload and its one container and labels them (app = armonik, service = name), as the renderer does; its
    parameters' `block` gives the container's limits and requests and the pod's nodeSelector. The storage
    modules thereby pass only what sets their service apart.
  EOT
  type        = object({ name = string, image = string, block = any })
  default     = null
}
variable "credentials" {
  description = <<-EOT
    A storage service's environment variables read from keys of its block's credentials_secret, as
    [variable, key] in the order the renderer writes them; they come before the container's own `env`.
  EOT
  type        = list(tuple([string, string]))
  default     = []
}
variable "replicas" {
  type    = number
  default = 1
}
variable "containers" {
  description = <<-EOT
    Containers as Kubernetes reads them, except: `ports` is a map port name => containerPort (TCP), and
    `config_maps` and `secrets` list what the container reads with envFrom, ConfigMaps first (later wins).
  EOT
  type        = any
}
variable "pod" {
  description = "Other fields of the pod spec (nodeSelector, tolerations, volumes, securityContext, ...)"
  type        = any
  default     = {}
}
variable "user" {
  description = "ArmoniK's pods: runAsUser (upstream's security.user), capabilities dropped. null: the image's own"
  type        = number
  default     = null
}
variable "volumes" {
  description = "Volumes added to the pod and mounted in the containers of mount_in: name, mount_path, source object"
  type        = list(object({ name = string, mount_path = string, source = any }))
  default     = []
}
variable "secret_volumes" {
  description = <<-EOT
    Secrets mounted read-only as files in the containers of mount_in: volume name, Secret, mount_path and file
    mode (0440: readable by the pod's group only). Typed apart from `volumes`, whose `source = any` would turn
    the mode into a string once mixed with other sources.
  EOT
  type        = list(object({ name = string, secret = string, mount_path = string, mode = optional(number, 288) }))
  default     = []
}
variable "mount_in" {
  description = "Names of the containers that mount `volumes` and `secret_volumes` (null: every container)"
  type        = list(string)
  default     = null
}
variable "stateful" {
  description = "A StatefulSet instead of a Deployment: its headless Service and its volumeClaimTemplates"
  type        = object({ service_name = string, claims = any })
  default     = null
}
variable "services" {
  description = "Services selecting the pods: ports is a map port name => port, each targeting the container port so named"
  type = list(object({
    name     = string
    type     = optional(string, "ClusterIP")
    headless = optional(bool, false)
    ports    = map(number)
  }))
  default = []
}
