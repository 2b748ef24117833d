# Parameters of the local deployment (`make deploy`), in the structure of upstream ArmoniK's
# infrastructure/quick-deploy/localhost/parameters.tfvars. Keys that matter only on Kubernetes (images, limits,
# requests, hpa, ...) are accepted and ignored by the local target. After editing this file, run `make deploy`
# again: new partitions and other replica counts are applied without restarting the control plane.
#
# Another file: `make deploy PARAMETERS_FILE=path/to/file.tfvars` (HCL) or `.tfvars.json` (JSON).
# In a `command`, "{python}" is the project's Python interpreter and "{generated}" the generated folder.

# Logging level of every process: Debug, Information, Warning, Error
logging_level = "Information"

# The local target (processes on this machine)
local = {
  host           = "127.0.0.1" # address the control plane listens on
  data_directory = "data"      # embedded storage (state, queue, objects), under the generated folder
  # python            = "/usr/bin/python3" # interpreter for "{python}" (default: the project's .venv)
  # working_directory = "."                # cwd of every process (default: where armonik-deploy runs)
  # env               = { Embedded__SqliteSynchronous = "FULL" } # extra environment of every process
  # object_storage    = { memory = true }  # objects on /dev/shm (kept across process crashes, not reboots)
  # restart_delay     = 1                  # seconds before restarting a process that died (doubles up to...)
  # max_restart_delay = 30
  # stop_grace_period = 10                 # SIGTERM -> SIGKILL delay of the control plane and metrics exporter
}

# Parameters of the control plane
control_plane = {
  port              = 5001 # gRPC endpoint: 127.0.0.1:5001
  default_partition = "default"
  limits = {
    cpu    = "1000m"
    memory = "2048Mi"
  }
  requests = {
    cpu    = "50m"
    memory = "50Mi"
  }
}

# Parameters of the compute plane: one entry per partition.
# `replicas` is the number of polling agent + worker pairs of the partition: to scale a partition, change it
# (e.g. `replicas = 4`) and run `make deploy` again.
compute_plane = {
  # Default partition: the bundled generic worker
  default = {
    replicas                         = 1
    termination_grace_period_seconds = 30
    # cache_config = { memory = true } # its data folders in memory (/dev/shm), see docs/deployment.md
    polling_agent = {
      limits = {
        cpu    = "2000m"
        memory = "2048Mi"
      }
      requests = {
        cpu    = "50m"
        memory = "50Mi"
      }
    }
    worker = [
      {
        image   = "armonik-samples-worker" # Kubernetes only
        command = ["{python}", "-m", "armonik_samples.worker"]
        env     = {}
        limits = {
          cpu    = "1000m"
          memory = "1024Mi"
        }
        requests = {
          cpu    = "50m"
          memory = "50Mi"
        }
      }
    ]
    hpa = {
      type              = "prometheus"
      polling_interval  = 15
      cooldown_period   = 300
      min_replica_count = 0
      max_replica_count = 5
      behavior = {
        restore_to_original_replica_count = true
        stabilization_window_seconds      = 300
        type                              = "Percent"
        value                             = 100
        period_seconds                    = 15
      }
      triggers = [
        {
          type      = "prometheus"
          threshold = 2
        },
      ]
    }
  },
  # Partition for PymoniK workers. PymoniK looks for the resources it fetches (materialize, retrieve_object)
  # under /cache/shared/<communication token>, so this partition's agents put the tasks' data folders there
  # (needs a user who may create /cache: see docs/inprocess-workers.md).
  pymonik = {
    replicas                         = 1
    termination_grace_period_seconds = 30
    polling_agent = {
      env = { Pollster__SharedCacheFolder = "/cache/shared" }
      limits = {
        cpu    = "2000m"
        memory = "2048Mi"
      }
      requests = {
        cpu    = "50m"
        memory = "50Mi"
      }
    }
    # Or run PymoniK's processor in the polling agent's process (faster on short tasks; no isolation):
    # worker = [{ module = "armonik_samples.pymonik_processor:processor" }]
    worker = [
      {
        image   = "armonik-pymonik-worker" # Kubernetes only
        command = ["{python}", "-c", "from pymonik import run_pymonik_worker; run_pymonik_worker()"]
        limits = {
          cpu    = "1000m"
          memory = "1024Mi"
        }
        requests = {
          cpu    = "50m"
          memory = "50Mi"
        }
      }
    ]
  },
}

# The ingress, with upstream's `ingress` keys: on http_port, gRPC-Web for the browser (forwarded to the control
# plane), the Admin GUI under /admin/ (see admin_gui below), /static/, metrics over time under /monitoring/ and
# a search of the logs under /logs/; armonik-output.json names them (admin_app_url, grafana_url, seq_web_url).
# `ingress = null`: no ingress. See docs/admin-gui.md.
# TLS of the client endpoint: the control plane serves TLS itself, on control_plane.port. With `tls = true`,
# `make deploy` keeps an authority and certificates under generated/certificates/ (kept across redeploys while
# valid), control_plane_url becomes https://127.0.0.1:5001 and generated/armonik-cli.yaml names the authority;
# with `mtls = true`, clients must also present a certificate (generated/certificates/client.crt, named in
# armonik-cli.yaml; the ingress presents its own, armonik-ingress.crt). `tls = false`: plain gRPC.
ingress = {
  http_port = 5000
  tls       = false
  mtls      = false
  # generate_client_cert      = true  # name the generated client certificate in armonik-cli.yaml (mTLS)
  # custom_client_ca_file     = ""    # mTLS: comma-separated PEM files of more client authorities
  # certificate_validity_days = 365   # local: validity of the generated authority and certificates
  # certificate_key_size      = 4096  # local: RSA key size, 2048, 3072 or 4096
  # cors_allowed_host         = "http://localhost:4200" # origins allowed to call gRPC-Web from elsewhere
}

# An Admin GUI build to serve under /admin/ (upstream's ArmoniK.Admin.GUI built with --base-href=/admin/); without
# it, /admin/ says how to get one.
# admin_gui = { dist = "/path/to/ArmoniK.Admin.GUI/dist/admin/browser" }

# Storage services, with upstream's blocks. On Kubernetes they deploy the services; the local target uses services
# already running, at the addresses given (each key has the usual local default, so `rabbitmq = {}` is the broker
# on this machine). Without these blocks, the embedded backends: SQLite state, an in-memory queue, files.
# Queue, one of:
# rabbitmq = { host = "127.0.0.1", port = 5672, user = "guest", password = "guest" }
# activemq = { host = "127.0.0.1", port = 5673 }                 # AMQP 1.0
# Object storage, one of:
# redis = { host = "127.0.0.1", port = 6379 }
# minio = { endpoint_url = "http://127.0.0.1:9000", login = "minioadmin", password = "minioadmin", default_bucket = "armonik" }
# State (then the queue is the embedded file queue unless rabbitmq or activemq is set):
# mongodb = { host = "127.0.0.1", port = 27017, database_name = "database" } # or connection_string = "mongodb://..."

# Metrics exporter (Prometheus format) on http://127.0.0.1:9419/metrics; `metrics_exporter = null` disables it
metrics_exporter = {
  port = 9419
}

# Extra environment of each kind of process, as upstream's `configurations`
configurations = {
  core    = { env = {} } # control plane, polling agents, metrics exporter, init job
  control = { env = {} } # control plane
  polling = { env = {} } # polling agents
  worker  = { env = {} } # workers
}

environment_description = {
  name        = "local-dev"
  version     = "0.0.0"
  description = "Local development environment"
  color       = "blue"
}
