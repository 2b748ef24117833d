output "target" {
  description = "What Prometheus scrapes"
  value       = "metrics-exporter.${var.namespace}.svc:${var.port}"
}
