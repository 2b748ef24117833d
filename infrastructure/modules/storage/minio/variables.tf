variable "namespace" { type = string }
variable "image" {
  description = "minio/minio:<tag>"
  type        = string
}
variable "bucket" {
  description = "upstream's default_bucket: the bucket made at start and named in S3__BucketName"
  type        = string
  default     = "minio-bucket"
  validation {
    # S3's bucket names; also what keeps the name a single word in the start command
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket))
    error_message = "default_bucket: 3 to 63 lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit."
  }
}
variable "credentials_secret" {
  description = "Secret with S3__Login and S3__Password (the server's root user)"
  type        = string
  default     = "minio-credentials"
}
variable "storage_size" {
  type    = string
  default = "8Gi"
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
