# MinIO (S3): a StatefulSet with a claim for the objects (they must outlive the pod) + Service, as
# armonik_deploy/kubernetes/services.py; the bucket is made at start, before the server runs.
module "workload" {
  source      = "../../workload"
  namespace   = var.namespace
  service     = { name = "minio", image = var.image, block = var.minio }
  credentials = [["MINIO_ROOT_USER", "S3__Login"], ["MINIO_ROOT_PASSWORD", "S3__Password"]]
  containers = [{
    command        = ["/bin/sh", "-c", "mkdir -p /data/${var.minio.default_bucket} && exec minio server /data --console-address :9001"]
    ports          = { s3 = 9000, console = 9001 }
    volumeMounts   = [{ name = "data", mountPath = "/data" }]
    readinessProbe = { httpGet = { path = "/minio/health/ready", port = "s3" }, periodSeconds = 10, failureThreshold = 3 }
  }]
  stateful = {
    service_name = "minio"
    claims = [{
      metadata = { name = "data" }
      spec     = { accessModes = ["ReadWriteOnce"], resources = { requests = { storage = var.minio.storage_size } } }
    }]
  }
  services = [{ name = "minio", ports = { s3 = 9000, console = 9001 } }]
}
