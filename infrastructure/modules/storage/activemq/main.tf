# ActiveMQ (AMQP 1.0): a Deployment + Service, as upstream's module and armonik_deploy/kubernetes/services.py
# (the broker keeps no state the deployment relies on across pods). Ready once it accepts AMQP connections.
module "workload" {
  source      = "../../workload"
  namespace   = var.namespace
  service     = { name = "activemq", image = var.image, block = var.activemq }
  credentials = [["ACTIVEMQ_CONNECTION_USER", "Amqp__User"], ["ACTIVEMQ_CONNECTION_PASSWORD", "Amqp__Password"]]
  containers = [{
    ports          = { amqp = 5672, console = 8161 }
    env            = [{ name = "ACTIVEMQ_OPTS_MEMORY", value = var.activemq.activemq_opts_memory }]
    readinessProbe = { tcpSocket = { port = "amqp" }, periodSeconds = 10, failureThreshold = 3, initialDelaySeconds = 10 }
  }]
  services = [{ name = "activemq", ports = { amqp = 5672, console = 8161 } }]
}
