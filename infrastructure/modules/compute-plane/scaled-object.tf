# The partition's KEDA ScaledObject (none without triggers), from the triggers built in main.tf.
terraform {
  required_providers {
    kubectl = { source = "gavinbunney/kubectl" }
  }
}

resource "kubectl_manifest" "scaled_object" {
  count = length(local.triggers) > 0 ? 1 : 0
  yaml_body = yamlencode({
    apiVersion = "keda.sh/v1alpha1"
    kind       = "ScaledObject"
    metadata   = { name = "${var.partition}-compute-plane", namespace = var.namespace, labels = local.labels }
    spec = {
      scaleTargetRef = {
        apiVersion             = "apps/v1"
        kind                   = "Deployment"
        name                   = "compute-plane-${var.partition}"
        envSourceContainerName = "polling-agent"
      }
      pollingInterval = try(var.hpa.polling_interval, 15)
      cooldownPeriod  = try(var.hpa.cooldown_period, 300)
      minReplicaCount = try(var.hpa.min_replica_count, 0)
      maxReplicaCount = try(var.hpa.max_replica_count, 5)
      advanced = {
        restoreToOriginalReplicaCount = try(var.hpa.behavior.restore_to_original_replica_count, true)
        horizontalPodAutoscalerConfig = { behavior = { scaleDown = {
          stabilizationWindowSeconds = try(var.hpa.behavior.stabilization_window_seconds, 300)
          policies = [{
            type          = try(var.hpa.behavior.type, "Percent")
            value         = try(var.hpa.behavior.value, 100)
            periodSeconds = try(var.hpa.behavior.period_seconds, 15)
          }]
        } } }
      }
      triggers = local.triggers
    }
  })
  depends_on = [module.workload]
}
