output "deployment" {
  value = "compute-plane-${var.partition}"
}
output "scaled_object" {
  value = length(local.triggers) > 0 ? "${var.partition}-compute-plane" : null
}
