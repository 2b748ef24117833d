output "env" {
  description = "core settings (the Secret minio-credentials holds S3__Login and S3__Password)"
  value = {
    Components__ObjectStorage = "s3"
    S3__EndpointUrl           = "http://minio.${var.namespace}.svc:9000"
    S3__BucketName            = var.minio.default_bucket
  }
}
