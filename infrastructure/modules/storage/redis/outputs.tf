output "env" {
  description = "core settings (the Secret redis-credentials holds Redis__Password)"
  value = merge(
    {
      Components__ObjectStorage = "redis"
      Redis__EndpointUrl        = "redis.${var.namespace}.svc:6379"
    },
    var.redis.instance_name == null ? {} : { Redis__InstanceName = var.redis.instance_name },
  )
}
