variable "namespace" { type = string }
variable "image" { type = string }
variable "exporter_target" { type = string }
