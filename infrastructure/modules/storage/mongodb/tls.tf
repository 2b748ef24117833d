# TLS of the replica set, as armonik_deploy/kubernetes/services.py (`mongodb_tls_secrets`) renders it: MongoDB
# serves TLS only, with the certificate `armonik-deploy deploy --target kubernetes` generates for it
# (certificates.servers["mongodb"], named after the replica set and each of its members), so:
# - Secret mongodb-db-ps-ssl (kubernetes.io/tls: ca.crt, tls.crt, tls.key): Percona's secrets.ssl and
#   secrets.sslInternal, what the members serve and present to each other;
# - Secret mongodb-ca: the authority alone, mounted by the core processes (control plane, polling agents,
#   init job, metrics exporter) where MongoDB__CAFile points.
# Only the Secrets are resources (main.tf): the rest is data, evaluated without a cluster.
locals {
  ready       = var.certificates != null
  tls_secret  = "mongodb-db-ps-ssl"
  ca_secret   = "mongodb-ca"
  ca_path     = "/mongodb/certs"
  ca          = local.ready ? file(var.certificates.ca.certificate) : ""
  server_pair = local.ready ? var.certificates.servers["mongodb"] : null
  files = local.ready ? {
    (local.tls_secret) = {
      "ca.crt"  = local.ca
      "tls.crt" = file(local.server_pair.certificate)
      "tls.key" = file(local.server_pair.key)
    }
    (local.ca_secret) = { "ca.crt" = local.ca }
  } : {}
  # Secret name -> its type
  secrets = { (local.tls_secret) = "kubernetes.io/tls", (local.ca_secret) = "Opaque" }

  # the PerconaServerMongoDB's TLS: the core processes present no certificate (they authenticate with a
  # password), which mongod accepts with allowInvalidCertificates (the operator's default, upstream's setting)
  cluster_tls     = { mode = "requireTLS", allowInvalidCertificates = true }
  cluster_secrets = { users = "mongodb-db-ps-secrets", ssl = local.tls_secret, sslInternal = local.tls_secret }
  # secret_volumes of the core processes' workloads
  client_volumes = [{ name = local.ca_secret, secret = local.ca_secret, mount_path = local.ca_path }]
}
