# ActiveMQ (AMQP 1.0): a Deployment + Service, as upstream's module and armonik_deploy/kubernetes/services.py
# (the broker keeps no state the deployment relies on across pods). Ready once it accepts AMQP connections.
module "workload" {
  source    = "../../workload"
  namespace = var.namespace
  name      = "activemq"
  labels    = { app = "armonik", service = "activemq" }
  containers = [{
    name            = "activemq"
    image           = var.image
    imagePullPolicy = "IfNotPresent"
    ports           = { amqp = 5672, console = 8161 }
    env = [
      { name = "ACTIVEMQ_CONNECTION_USER", valueFrom = { secretKeyRef = { name = var.activemq.credentials_secret, key = "Amqp__User" } } },
      { name = "ACTIVEMQ_CONNECTION_PASSWORD", valueFrom = { secretKeyRef = { name = var.activemq.credentials_secret, key = "Amqp__Password" } } },
      { name = "ACTIVEMQ_OPTS_MEMORY", value = var.activemq.activemq_opts_memory },
    ]
    readinessProbe = { tcpSocket = { port = "amqp" }, periodSeconds = 10, failureThreshold = 3, initialDelaySeconds = 10 }
    resources      = { limits = var.activemq.limits, requests = var.activemq.requests }
  }]
  pod      = { nodeSelector = var.activemq.node_selector }
  services = [{ name = "activemq", ports = { amqp = 5672, console = 8161 } }]
}
