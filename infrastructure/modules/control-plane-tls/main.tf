# TLS of the control plane, as armonik_deploy/kubernetes/settings.py (`_tls_env`) renders it. With upstream's
# `ingress.tls` the control plane serves TLS itself (there is no ingress), so:
# - Secret control-plane-tls: its certificate and key (tls.crt, tls.key) and, with `ingress.mtls`, the
#   authorities its clients' certificates must come from (ca.crt: the generated one, then the custom ones);
# - Secret polling-agent-tls: what the polling agents trust (ca.crt) and, with mTLS, present (tls.crt, tls.key);
# - the ControlPlane__Tls__* settings (read by armonik_core/tls.py) naming those files where the Secrets are
#   mounted, and the volumes mounting them.
# Only the Secrets are resources (secrets.tf): the rest is data, evaluated without a cluster.
locals {
  mtls  = var.tls && var.mtls
  ready = var.tls && var.certificates != null
  ca    = local.ready ? file(var.certificates.ca.certificate) : ""
  # read under mTLS only, as the renderer does
  custom_parts      = local.mtls ? split(",", var.custom_client_ca_file) : []
  custom_client_cas = [for part in local.custom_parts : pathexpand(trimspace(part)) if trimspace(part) != ""]
  # the renderer's bundle: the generated authority, then each custom file trimmed between newlines
  client_ca = join("", concat([local.ca], [
    for path in local.custom_client_cas : "\n${trimspace(file(startswith(path, "/") ? path : "${var.base_folder}/${path}"))}\n"
  ]))
  files = local.ready ? {
    (var.server_secret) = merge(
      {
        "tls.crt" = file(var.certificates.servers["control-plane"].certificate)
        "tls.key" = file(var.certificates.servers["control-plane"].key)
      },
      local.mtls ? { "ca.crt" = local.client_ca } : {},
    )
    (var.client_secret) = merge(
      { "ca.crt" = local.ca },
      local.mtls ? {
        "tls.crt" = file(var.certificates.clients["client"].certificate)
        "tls.key" = file(var.certificates.clients["client"].key)
      } : {},
    )
  } : {}
  # Secret name -> its type and the component it belongs to (its `service` label)
  secrets = var.tls ? {
    (var.server_secret) = { type = "kubernetes.io/tls", service = "control-plane" }
    (var.client_secret) = { type = "Opaque", service = "compute-plane" }
  } : {}

  server_env = var.tls ? merge(
    {
      ControlPlane__Tls__CertificateFile = "${var.mount_path}/tls.crt"
      ControlPlane__Tls__KeyFile         = "${var.mount_path}/tls.key"
    },
    local.mtls ? { ControlPlane__Tls__ClientCaFile = "${var.mount_path}/ca.crt" } : {},
  ) : {}
  client_env = var.tls ? merge(
    { ControlPlane__Tls__CaFile = "${var.mount_path}/ca.crt" },
    local.mtls ? {
      ControlPlane__Tls__ClientCertificateFile = "${var.mount_path}/tls.crt"
      ControlPlane__Tls__ClientKeyFile         = "${var.mount_path}/tls.key"
    } : {},
  ) : {}
  volumes = {
    for role, secret in { server = var.server_secret, client = var.client_secret } :
    role => var.tls ? [{ name = "certificates", secret = secret, mount_path = var.mount_path }] : []
  }
}
