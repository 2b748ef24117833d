variable "namespace" { type = string }
variable "image" { type = string } # minio/minio:<tag>
# The parameters' `minio` block as given (see ../README.md).
variable "minio" {
  type = object({
    default_bucket     = optional(string, "minio-bucket") # the bucket made at start and named in S3__BucketName
    storage_size       = optional(string, "8Gi")
    limits             = optional(map(string), {})
    requests           = optional(map(string), {})
    node_selector      = optional(map(string), {})
    credentials_secret = optional(string, "minio-credentials") # with S3__Login and S3__Password (the root user)
  })
  validation {
    # S3's bucket names; also what keeps the name a single word in the start command
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.minio.default_bucket))
    error_message = "default_bucket: 3 to 63 lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit."
  }
}
