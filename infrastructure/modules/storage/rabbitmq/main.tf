# RabbitMQ: StatefulSet (stable host name for its data) + headless and client Services, as
# armonik_deploy/kubernetes/services.py renders them. Ready once it accepts AMQP connections.
module "workload" {
  source      = "../../workload"
  namespace   = var.namespace
  service     = { name = "rabbitmq", image = var.image, block = var.rabbitmq }
  credentials = [["RABBITMQ_USERNAME", "Amqp__User"], ["RABBITMQ_PASSWORD", "Amqp__Password"]]
  containers = [{
    ports          = { amqp = 5672, management = 15672 }
    env            = [{ name = "RABBITMQ_PLUGINS", value = "rabbitmq_management" }]
    volumeMounts   = [{ name = "data", mountPath = "/bitnami/rabbitmq/mnesia" }]
    readinessProbe = { tcpSocket = { port = "amqp" }, periodSeconds = 10, failureThreshold = 3, initialDelaySeconds = 10 }
  }]
  pod = { securityContext = { fsGroup = 1001 } }
  stateful = {
    service_name = "rabbitmq-headless"
    claims = [{
      metadata = { name = "data" }
      spec     = { accessModes = ["ReadWriteOnce"], resources = { requests = { storage = var.rabbitmq.storage_size } } }
    }]
  }
  services = [
    { name = "rabbitmq-headless", headless = true, ports = { amqp = 5672 } },
    { name = "rabbitmq", type = var.rabbitmq.service_type, ports = { amqp = 5672, management = 15672 } },
  ]
}
