# Redis: a Deployment without persistence + Service, as upstream's module and
# armonik_deploy/kubernetes/services.py.
module "workload" {
  source    = "../../workload"
  namespace = var.namespace
  name      = "redis"
  labels    = { app = "armonik", service = "redis" }
  containers = [{
    name  = "redis"
    image = var.image
    args  = concat(["--requirepass", "$(REDIS_PASSWORD)", "--save", "", "--appendonly", "no"], var.max_memory == null ? [] : ["--maxmemory", var.max_memory])
    ports = { redis = 6379 }
    env   = [{ name = "REDIS_PASSWORD", valueFrom = { secretKeyRef = { name = var.credentials_secret, key = "Redis__Password" } } }]
  }]
  services = [{ name = "redis", ports = { redis = 6379 } }]
}
