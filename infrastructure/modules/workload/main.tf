# One workload (a Deployment, or a StatefulSet when `stateful` is given) and the Services selecting its pods:
# the module every other one builds its pods with, so that labels, selectors, ArmoniK's security context and
# the way settings reach containers (envFrom a ConfigMap or a Secret) are written once, as
# armonik_deploy/kubernetes/objects.py does for the renderer. The objects are built in manifests.tf.
terraform {
  required_providers {
    kubectl = { source = "gavinbunney/kubectl" }
  }
}

resource "kubectl_manifest" "workload" {
  yaml_body = yamlencode(local.workload)
}

resource "kubectl_manifest" "service" {
  for_each  = local.services
  yaml_body = yamlencode(each.value)
}
