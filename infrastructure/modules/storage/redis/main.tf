# Redis: a Deployment without persistence + Service, as upstream's module and
# armonik_deploy/kubernetes/services.py (Redis as an object cache). Ready once it accepts connections.
module "workload" {
  source    = "../../workload"
  namespace = var.namespace
  name      = "redis"
  labels    = { app = "armonik", service = "redis" }
  containers = [{
    name            = "redis"
    image           = var.image
    imagePullPolicy = "IfNotPresent"
    args = concat(
      ["--requirepass", "$(REDIS_PASSWORD)", "--save", "", "--appendonly", "no"],
      var.redis.max_memory == null ? [] : ["--maxmemory", var.redis.max_memory],
      var.redis.max_memory_samples == null ? [] : ["--maxmemory-samples", tostring(var.redis.max_memory_samples)],
    )
    ports          = { redis = 6379 }
    env            = [{ name = "REDIS_PASSWORD", valueFrom = { secretKeyRef = { name = var.redis.credentials_secret, key = "Redis__Password" } } }]
    readinessProbe = { tcpSocket = { port = "redis" }, periodSeconds = 5, failureThreshold = 3 }
    resources      = { limits = var.redis.limits, requests = var.redis.requests }
  }]
  pod      = { nodeSelector = var.redis.node_selector }
  services = [{ name = "redis", ports = { redis = 6379 } }]
}
