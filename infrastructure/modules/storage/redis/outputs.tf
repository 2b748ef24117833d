output "env" {
  value = {
    Components__ObjectStorage = "redis"
    Redis__EndpointUrl        = "redis.${var.namespace}.svc:6379"
  }
}
