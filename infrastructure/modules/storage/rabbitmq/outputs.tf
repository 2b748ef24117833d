output "env" {
  description = "core settings (the Secret rabbitmq-credentials holds Amqp__User and Amqp__Password)"
  value = merge(
    {
      Components__QueueStorage = "rabbitmq"
      Amqp__Host               = "rabbitmq.${var.namespace}.svc"
      Amqp__Port               = "5672"
    },
    var.max_priority == null ? {} : { Amqp__MaxPriority = tostring(var.max_priority) },
    var.prefix == null ? {} : { Amqp__Prefix = var.prefix },
  )
}
