# The variables of parameters.tfvars and versions.tfvars.json, as upstream's localhost variables.tf names them.
# Blocks are typed `any`: armonik_deploy.parameters types and checks them (the same file drives the local
# target), and `null` disables an optional component, as upstream.

variable "k8s_config_path" {
  type    = string
  default = "~/.kube/config"
}
variable "k8s_config_context" {
  type    = string
  default = "default"
}
variable "namespace" {
  type    = string
  default = "armonik"
}
variable "prefix" {
  type    = string
  default = null
}
variable "logging_level" {
  type    = string
  default = "Information"
}
variable "local" {
  description = "Local target only (ignored here)"
  type        = any
  default     = {}
}
variable "control_plane" {
  type    = any
  default = {}
}
variable "compute_plane" {
  description = "Partition name -> partition (replicas, polling_agent, worker, hpa, ...)"
  type        = any
}
variable "metrics_exporter" {
  type    = any
  default = {}
}
variable "configurations" {
  type    = any
  default = {}
}
variable "environment_description" {
  type    = any
  default = null
}
variable "ingress" {
  type    = any
  default = null
}
variable "mongodb" {
  type    = any
  default = null
}
variable "rabbitmq" {
  type    = any
  default = null
}
variable "activemq" {
  type    = any
  default = null
}
variable "redis" {
  type    = any
  default = null
}
variable "minio" {
  type    = any
  default = null
}
variable "prometheus" {
  type    = any
  default = {}
}
variable "keda" {
  type    = any
  default = {}
}

# versions.tfvars.json
variable "armonik_versions" { type = map(string) }
variable "armonik_images" { type = map(list(string)) }
variable "image_tags" { type = map(string) }
variable "helm_charts" { type = map(object({ repository = string, version = string })) }

# Written by `armonik-deploy deploy --target kubernetes`: paths of the generated CA, service and client certificates
# Written by `armonik-deploy deploy --target kubernetes`: the compute gateway's deployment secret and each
# partition's agent credential derived from it (`{ secret = "...", credentials = { <partition> = "..." } }`).
variable "compute_gateway" {
  type = any
}

variable "certificates" {
  type    = any
  default = null
}

# Written false by `armonik-deploy deploy --target kubernetes --charts helm`, which installs the KEDA and
# Percona operator charts itself (armonik_deploy/kubernetes/helm.py): Terraform then leaves them out.
variable "install_helm_charts" {
  type    = bool
  default = true
}

# Written by `armonik-deploy deploy --target kubernetes`: the operators' stack (ingress, Admin GUI, Grafana, Seq,
# fluent-bit) as rendered by armonik_deploy/kubernetes/operators.py, file name -> YAML of one object.
variable "operators_manifests" {
  type    = map(string)
  default = {}
}
