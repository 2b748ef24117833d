output "env" {
  description = "core settings (the Secret mongodb-credentials holds MongoDB__User and MongoDB__Password)"
  value = {
    Components__TableStorage = "mongodb"
    MongoDB__Host            = "mongodb-db-ps-rs0.${var.namespace}.svc"
    MongoDB__Port            = "27017"
    MongoDB__DatabaseName    = var.database_name
    MongoDB__ReplicaSet      = "rs0"
    MongoDB__AuthSource      = var.database_name
  }
}
