output "armonik" {
  description = "As upstream's armonik-output.json: where clients reach the control plane"
  value = {
    control_plane_url = "${module.control_plane_tls.scheme}://${module.control_plane.endpoint}"
    metrics_url       = "http://${module.metrics_exporter.target}/metrics"
    prometheus_url    = module.prometheus.url
  }
}
