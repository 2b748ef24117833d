output "url" {
  value = "http://prometheus.${var.namespace}.svc:9090"
}
