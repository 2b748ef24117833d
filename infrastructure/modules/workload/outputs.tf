output "name" {
  value = local.name
}
output "manifests" {
  description = "The objects applied: the workload and its Services by name"
  value       = { workload = local.workload, services = local.services }
}
