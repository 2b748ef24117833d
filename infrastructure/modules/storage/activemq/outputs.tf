output "env" {
  description = "core settings (the Secret activemq-credentials holds Amqp__User and Amqp__Password)"
  value = merge(
    {
      Components__QueueStorage = "activemq"
      Amqp__Host               = "activemq.${var.namespace}.svc"
      Amqp__Port               = "5672"
    },
    var.activemq.max_priority == null ? {} : { Amqp__MaxPriority = tostring(var.activemq.max_priority) },
    var.activemq.prefix == null ? {} : { Amqp__Prefix = var.activemq.prefix },
  )
}
