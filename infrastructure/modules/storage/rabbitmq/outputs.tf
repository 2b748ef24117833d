output "env" {
  description = "core settings (the Secret rabbitmq-credentials holds Amqp__User and Amqp__Password)"
  value = merge(
    {
      Components__QueueStorage = "rabbitmq"
      Amqp__Host               = "rabbitmq.${var.namespace}.svc"
      Amqp__Port               = "5672"
    },
    var.rabbitmq.max_priority == null ? {} : { Amqp__MaxPriority = tostring(var.rabbitmq.max_priority) },
    var.rabbitmq.prefix == null ? {} : { Amqp__Prefix = var.rabbitmq.prefix },
  )
}
