output "endpoint" {
  description = "In-cluster gRPC endpoint of the control plane"
  value       = "${var.name}.${var.namespace}.svc:${var.port}"
}
