# RabbitMQ: StatefulSet (stable host name for its data) + headless and client Services, as
# armonik_deploy/kubernetes/services.py renders them. Ready once it accepts AMQP connections.
module "workload" {
  source    = "../../workload"
  namespace = var.namespace
  name      = "rabbitmq"
  labels    = { app = "armonik", service = "rabbitmq" }
  containers = [{
    name            = "rabbitmq"
    image           = var.image
    imagePullPolicy = "IfNotPresent"
    ports           = { amqp = 5672, management = 15672 }
    env = [
      { name = "RABBITMQ_USERNAME", valueFrom = { secretKeyRef = { name = var.rabbitmq.credentials_secret, key = "Amqp__User" } } },
      { name = "RABBITMQ_PASSWORD", valueFrom = { secretKeyRef = { name = var.rabbitmq.credentials_secret, key = "Amqp__Password" } } },
      { name = "RABBITMQ_PLUGINS", value = "rabbitmq_management" },
    ]
    volumeMounts   = [{ name = "data", mountPath = "/bitnami/rabbitmq/mnesia" }]
    readinessProbe = { tcpSocket = { port = "amqp" }, periodSeconds = 10, failureThreshold = 3, initialDelaySeconds = 10 }
    resources      = { limits = var.rabbitmq.limits, requests = var.rabbitmq.requests }
  }]
  pod = { securityContext = { fsGroup = 1001 }, nodeSelector = var.rabbitmq.node_selector }
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
