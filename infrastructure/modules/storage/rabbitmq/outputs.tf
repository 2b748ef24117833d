output "env" {
  value = {
    Components__QueueStorage = "rabbitmq"
    Amqp__Host               = "rabbitmq.${var.namespace}.svc"
    Amqp__Port               = "5672"
  }
}
