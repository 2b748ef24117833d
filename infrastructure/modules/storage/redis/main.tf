# Redis: a Deployment without persistence + Service, as upstream's module and
# armonik_deploy/kubernetes/services.py (Redis as an object cache). Ready once it accepts connections.
module "workload" {
  source      = "../../workload"
  namespace   = var.namespace
  service     = { name = "redis", image = var.image, block = var.redis }
  credentials = [["REDIS_PASSWORD", "Redis__Password"]]
  containers = [{
    args = concat(
      ["--requirepass", "$(REDIS_PASSWORD)", "--save", "", "--appendonly", "no"],
      var.redis.max_memory == null ? [] : ["--maxmemory", var.redis.max_memory],
      var.redis.max_memory_samples == null ? [] : ["--maxmemory-samples", tostring(var.redis.max_memory_samples)],
    )
    ports          = { redis = 6379 }
    readinessProbe = { tcpSocket = { port = "redis" }, periodSeconds = 5, failureThreshold = 3 }
  }]
  services = [{ name = "redis", ports = { redis = 6379 } }]
}
