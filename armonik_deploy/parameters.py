"""Deployment parameters: upstream ArmoniK's `parameters.tfvars` and `versions.tfvars.json`, typed.

Both files are read in either form Terraform reads: HCL (`*.tfvars`) or JSON (`*.tfvars.json`, any `*.json`).
The structure and defaults follow upstream's `infrastructure/quick-deploy/localhost/variables.tf`; keys that
matter only on Kubernetes (images, tags, limits, requests, node selectors, HPA, ...) are accepted and typed,
and ignored by the local target. A few keys exist for the local target only (marked "local" below):

    local = {                                # the local target (processes on this machine)
      host              = "127.0.0.1"        # address the control plane listens on
      data_directory    = "data"             # embedded storage; relative paths are under the generated folder
      working_directory = null               # cwd of every process; default: where armonik-deploy runs
      python            = null               # interpreter for "{python}"; default: armonik-deploy's
      env               = {}                 # extra environment of every process
      restart_delay     = 1                  # seconds before restarting a process that died (doubles, up to:)
      max_restart_delay = 30
      stop_grace_period = 10                 # SIGTERM -> SIGKILL delay (compute plane: its
                                             # termination_grace_period_seconds)
      health_timeout    = 60                 # seconds `deploy` waits for the control plane to be healthy
      log_max_bytes     = 52428800           # a process's log past this size is rotated (0: never)
      log_files_kept    = 3                  # rotated copies kept (<name>.log.1, .2, ...)
    }
    control_plane    = { port = 5001, command = [...], env = {...} }          # command, env: local
    metrics_exporter = { port = 9419, command = [...], env = {...} }          # port, command, env: local
    compute_plane = { <partition> = {
      replicas      = 1                      # local: number of polling agent + worker pairs
      polling_agent = { command = [...], env = {...} }                        # command, env: local
      worker        = [ { command = [...], env = {...} } ]                    # command: required locally
                    # or [ { module = "package.module:processor" } ]: run in the polling agent's process
    } }
    ingress = { tls = false, mtls = false, generate_client_cert = true, custom_client_ca_file = "" }
                                             # TLS of the control plane's port (see armonik_deploy.tls)

In a `command`, `{python}` stands for the Python interpreter (`local.python`) and `{generated}` for the
generated folder. Errors name the file and the key path:
`parameters.tfvars: compute_plane.default.worker[0].comand: unknown key (...)`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from armonik_deploy.schema import SchemaError, build, constraint, key_path

T = TypeVar("T")

Scalar = str | int | float | bool
Resources = dict[str, str | int | float]
EnvMap = dict[str, Scalar]

NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}"
NAME_TEXT = "must be 1-63 letters, digits, '-', '_' or '.', starting with a letter or a digit"
LOGGING_LEVELS = Literal["Verbose", "Debug", "Information", "Warning", "Error", "Fatal"]


class ParametersError(ValueError):
    """A parameters or versions file cannot be used; the message names the file and the key path."""

    def __init__(self, file: Path | str, path: str, message: str) -> None:
        where = f"{file}: {path}" if path else str(file)
        super().__init__(f"{where}: {message}")
        self.file = str(file)
        self.path = path
        self.message = message


# -- shared blocks -------------------------------------------------------------------------------------------
@dataclass(slots=True)
class ConfigurationFragment:
    """Upstream's aggregator fragment; only `env` is used locally."""

    env: EnvMap = field(default_factory=dict)
    env_secret: list[str] = field(default_factory=list)
    env_from_secret: dict[str, Any] = field(default_factory=dict)
    env_configmap: list[str] = field(default_factory=list)
    env_from_configmap: dict[str, Any] = field(default_factory=dict)
    mount_secret: dict[str, Any] = field(default_factory=dict)
    mount_configmap: dict[str, Any] = field(default_factory=dict)


Fragment = ConfigurationFragment | list[ConfigurationFragment]


@dataclass(slots=True)
class Configurations:
    """`configurations`: environment of each kind of process (later entries win), as upstream's aggregates."""

    core: Fragment = field(default_factory=ConfigurationFragment)
    control: Fragment = field(default_factory=ConfigurationFragment)
    compute: Fragment = field(default_factory=ConfigurationFragment)
    worker: Fragment = field(default_factory=ConfigurationFragment)
    polling: Fragment = field(default_factory=ConfigurationFragment)
    log: Fragment = field(default_factory=ConfigurationFragment)
    metrics: Fragment = field(default_factory=ConfigurationFragment)
    jobs: Fragment = field(default_factory=ConfigurationFragment)


def fragment_env(fragment: Fragment) -> dict[str, str]:
    fragments = fragment if isinstance(fragment, list) else [fragment]
    merged: dict[str, str] = {}
    for item in fragments:
        merged.update(env_strings(item.env))
    return merged


def env_strings(env: EnvMap) -> dict[str, str]:
    """Terraform's conversion of env values to strings: `true`, `10`, `0.5`."""
    out = {}
    for key, value in env.items():
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif isinstance(value, float) and value.is_integer():
            out[key] = str(int(value))
        else:
            out[key] = str(value)
    return out


@dataclass(slots=True)
class EnvironmentDescription:
    name: str = "local-dev"
    version: str = "0.0.0"
    description: str = "Local development environment"
    color: str = "blue"


def _python_module(module: str) -> list[str]:
    """A process's default command: `module` run by the deployment's Python (`{python}`)."""
    return field(default_factory=lambda: ["{python}", "-m", module], metadata=constraint(non_empty=True))


# -- control plane -------------------------------------------------------------------------------------------
@dataclass(slots=True)
class ControlPlane:
    name: str = "control-plane"
    service_type: str = "ClusterIP"
    replicas: int = field(default=1, metadata=constraint(min=0))
    image: str = "dockerhubaneo/armonik_control"
    tag: str | None = None
    image_pull_policy: str = "IfNotPresent"
    #: The port clients use (upstream: the Service port); locally, the port the control plane listens on.
    port: int = field(default=5001, metadata=constraint(min=1, max=65535))
    service_account_name: str = ""
    limits: Resources = field(default_factory=dict)
    requests: Resources = field(default_factory=dict)
    image_pull_secrets: str = ""
    node_selector: dict[str, Any] = field(default_factory=dict)
    annotations: dict[str, Any] = field(default_factory=dict)
    hpa: Any = None
    default_partition: str = "default"
    conf: Any = None
    # local
    command: list[str] = _python_module("armonik_core.control_plane")
    env: EnvMap = field(default_factory=dict)


# -- compute plane -------------------------------------------------------------------------------------------
@dataclass(slots=True)
class PollingAgent:
    image: str = "dockerhubaneo/armonik_pollingagent"
    tag: str | None = None
    image_pull_policy: str = "IfNotPresent"
    limits: Resources = field(default_factory=dict)
    requests: Resources = field(default_factory=dict)
    conf: Any = None
    # local
    command: list[str] = _python_module("armonik_core.polling_agent")
    env: EnvMap = field(default_factory=dict)


@dataclass(slots=True)
class Worker:
    name: str = field(default="worker", metadata=constraint(pattern=NAME_PATTERN, pattern_text=NAME_TEXT))
    image: str | None = None
    tag: str | None = None
    image_pull_policy: str = "IfNotPresent"
    limits: Resources = field(default_factory=dict)
    requests: Resources = field(default_factory=dict)
    conf: Any = None
    # local: the worker process to start (required by the local target, unless `module` is set)
    command: list[str] | None = field(default=None, metadata=constraint(non_empty=True))
    env: EnvMap = field(default_factory=dict)
    # `package.module:processor`: a worker-SDK processor the polling agent runs in its own process
    # (`Worker__Module`); no worker process is started
    module: str | None = field(default=None, metadata=constraint(non_empty=True))


@dataclass(slots=True)
class CacheConfig:
    """The shared cache folder of a partition's pods: in memory (tmpfs) with `memory`; `size_limit` bounds it
    on Kubernetes (the emptyDir's sizeLimit), not locally, where the memory file system's own size does."""

    memory: bool = False
    size_limit: str | int | None = None


@dataclass(slots=True)
class NodeCache:
    path: str = ""
    threshold: float = field(default=0.75, metadata=constraint(min=0, max=1))


@dataclass(slots=True)
class HpaBehavior:
    restore_to_original_replica_count: bool = True
    stabilization_window_seconds: int = 300
    type: str = "Percent"
    value: int = 100
    period_seconds: int = 15


@dataclass(slots=True)
class Hpa:
    type: str = "prometheus"
    polling_interval: int = 15
    cooldown_period: int = 300
    min_replica_count: int = field(default=0, metadata=constraint(min=0))
    max_replica_count: int = field(default=5, metadata=constraint(min=0))
    behavior: HpaBehavior = field(default_factory=HpaBehavior)
    triggers: list[dict[str, Scalar]] = field(
        default_factory=lambda: [{"type": "prometheus", "threshold": 2}]
    )


@dataclass(slots=True)
class PartitionData:
    """Upstream's `partition_data`; unset `max_pods` means the partition's replicas locally."""

    priority: int = 1
    reserved_pods: int | None = field(default=None, metadata=constraint(min=0))
    max_pods: int | None = field(default=None, metadata=constraint(min=0))
    preemption_percentage: int = field(default=50, metadata=constraint(min=0, max=100))
    parent_partition_ids: list[str] = field(default_factory=list)
    pod_configuration: dict[str, str] | None = None


@dataclass(slots=True)
class Security:
    user: int = 5000


@dataclass(slots=True)
class ComputePartition:
    worker: list[Worker] = field(metadata=constraint(non_empty=True))
    replicas: int = field(default=1, metadata=constraint(min=0))
    termination_grace_period_seconds: int = field(default=30, metadata=constraint(min=0))
    image_pull_secrets: str = "IfNotPresent"
    node_selector: dict[str, Any] = field(default_factory=dict)
    annotations: dict[str, Any] = field(default_factory=dict)
    service_account_name: str = ""
    socket_type: Literal["unixdomainsocket", "tcp"] = "unixdomainsocket"
    polling_agent: PollingAgent = field(default_factory=PollingAgent)
    cache_config: CacheConfig | None = None
    node_cache: NodeCache | None = None
    hpa: Hpa | None = None
    partition_data: PartitionData | None = None
    security: Security | None = None
    readiness_probe: bool = False

    def validate(self, path: str) -> None:
        names = [w.name for w in self.worker]
        for i, name in enumerate(names):
            if names.index(name) != i:
                raise SchemaError(
                    f"{path}.worker[{i}].name", f"'{name}' is already the name of worker[{names.index(name)}]"
                )


# -- monitoring ----------------------------------------------------------------------------------------------
@dataclass(slots=True)
class MetricsExporter:
    image_name: str = "dockerhubaneo/armonik_control_metrics"
    image_tag: str | None = None
    pull_secrets: str = ""
    image_pull_secrets: str = ""
    service_type: str = "ClusterIP"
    node_selector: dict[str, Any] = field(default_factory=dict)
    extra_conf: EnvMap = field(default_factory=dict)
    conf: Any = None
    # local
    port: int = field(default=9419, metadata=constraint(min=1, max=65535))
    command: list[str] = _python_module("armonik_core.metrics")
    env: EnvMap = field(default_factory=dict)


# -- local target -----------------------------------------------------------------------------------------
@dataclass(slots=True)
class LocalObjectStorage:
    """The embedded filesystem object storage (upstream's LocalStorage adapter): in memory (tmpfs) with
    `memory`, else in `path` (`LocalStorage__Path`; relative to the generated folder), else under the data
    directory."""

    memory: bool = False
    path: str | None = field(default=None, metadata=constraint(non_empty=True))


@dataclass(slots=True)
class Local:
    host: str = "127.0.0.1"
    data_directory: str = "data"
    object_storage: LocalObjectStorage = field(default_factory=LocalObjectStorage)
    working_directory: str | None = None
    python: str | None = None
    env: EnvMap = field(default_factory=dict)
    restart_delay: float = field(default=1.0, metadata=constraint(min=0))
    max_restart_delay: float = field(default=30.0, metadata=constraint(min=0))
    stop_grace_period: float = field(default=10.0, metadata=constraint(min=0))
    health_timeout: float = field(default=60.0, metadata=constraint(min=0))
    log_max_bytes: int = field(default=50 * 1024 * 1024, metadata=constraint(min=0))
    log_files_kept: int = field(default=3, metadata=constraint(min=0))


# -- the whole file ---------------------------------------------------------------------------------------
KubernetesBlock = dict[str, Any] | None


@dataclass(slots=True)
class Parameters:
    logging_level: LOGGING_LEVELS = "Information"
    control_plane: ControlPlane = field(default_factory=ControlPlane)
    compute_plane: dict[str, ComputePartition] = field(
        default_factory=dict, metadata=constraint(pattern=NAME_PATTERN, pattern_text=NAME_TEXT)
    )
    metrics_exporter: MetricsExporter | None = field(default_factory=MetricsExporter)
    configurations: Configurations = field(default_factory=Configurations)
    environment_description: EnvironmentDescription | None = None
    static: dict[str, Any] = field(default_factory=lambda: {"gui_configuration": {}})
    local: Local = field(default_factory=Local)
    # Kubernetes only: accepted (an object or null), used by the kubernetes target.
    k8s_config_path: str = "~/.kube/config"
    k8s_config_context: str = "default"
    prefix: str | None = None
    namespace: str = "armonik"
    shared_storage: KubernetesBlock = None
    redis: KubernetesBlock = None
    minio: KubernetesBlock = None
    nfs: KubernetesBlock = None
    minio_s3_fs: KubernetesBlock = None
    activemq: KubernetesBlock = None
    rabbitmq: KubernetesBlock = None
    mongodb: KubernetesBlock = None
    mongodb_sharding: KubernetesBlock = None
    mongodb_metrics_exporter: KubernetesBlock = None
    partition_metrics_exporter: KubernetesBlock = None
    admin_gui: KubernetesBlock = None
    ingress: KubernetesBlock = None
    authentication: KubernetesBlock = None
    seq: KubernetesBlock = None
    grafana: KubernetesBlock = None
    prometheus: KubernetesBlock = None
    node_exporter: KubernetesBlock = None
    windows_exporter: KubernetesBlock = None
    fluent_bit: KubernetesBlock = None
    keda: KubernetesBlock = None
    metrics_server: KubernetesBlock = None
    chaos_mesh: KubernetesBlock = None
    load_balancer: KubernetesBlock = None
    pod_deletion_cost: KubernetesBlock = None
    init: KubernetesBlock = None
    job_partitions_in_database: KubernetesBlock = None
    extra_conf: KubernetesBlock = None
    jobs_in_database_extra_conf: KubernetesBlock = None
    others_conf: KubernetesBlock = None


# -- versions.tfvars.json ------------------------------------------------------------------------------------
@dataclass(slots=True)
class HelmChart:
    repository: str
    version: str


@dataclass(slots=True)
class Versions:
    armonik_versions: dict[str, str] = field(metadata=constraint(non_empty=True))
    armonik_images: dict[str, list[str]]
    image_tags: dict[str, str]
    helm_charts: dict[str, HelmChart]

    def validate(self, path: str) -> None:
        for component in self.armonik_images:
            if component not in self.armonik_versions:
                raise SchemaError(
                    key_path(key_path(path, "armonik_images"), component),
                    f"no version for this component in armonik_versions ({', '.join(self.armonik_versions)})",
                )

    def default_tags(self) -> dict[str, str]:
        """Image -> tag, as upstream's `default-images` module: component versions, then `image_tags` win."""
        tags = {
            image: self.armonik_versions[component]
            for component, images in self.armonik_images.items()
            for image in images
        }
        tags.update(self.image_tags)
        return tags

    def tag_of(self, image: str, tag: str | None = None) -> str | None:
        """`try(coalesce(tag), default_tags[image])`: an explicit tag wins."""
        return tag or self.default_tags().get(image)


# -- reading ------------------------------------------------------------------------------------------------
_EXPRESSION = re.compile(r"^\$\{.*\}$", re.S)


def read_variables(path: Path) -> dict[str, Any]:
    """The raw values of a variable file, HCL or JSON (by its name), or a ParametersError."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ParametersError(path, "", f"cannot read the file ({exc.strerror or exc})") from None
    if path.name.endswith(".json"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ParametersError(
                path, "", f"not valid JSON: line {exc.lineno} column {exc.colno}: {exc.msg}"
            ) from None
    else:
        data = _loads_hcl(path, text)
    if not isinstance(data, dict):
        raise ParametersError(path, "", "expected an object of variables at the top level")
    return data


def _loads_hcl(path: Path, text: str) -> dict[str, Any]:
    import hcl2

    options = hcl2.SerializationOptions(
        with_comments=False,
        strip_string_quotes=True,
        preserve_heredocs=False,
        preserve_scientific_notation=False,
    )
    try:
        data = hcl2.loads(text, serialization_options=options)
    except Exception as exc:  # lark's errors carry the line and column
        line, column = getattr(exc, "line", None), getattr(exc, "column", None)
        where = f"line {line} column {column}: " if line is not None else ""
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        first = re.sub(r",? at line \d+,? col(umn)? \d+\.?$", "", first)
        raise ParametersError(path, "", f"not valid HCL: {where}{first}") from None
    _check_literals(path, data, "")
    return data


def _check_literals(file: Path, value: Any, path: str) -> None:
    """A variable file holds literal values only: no blocks, no expressions."""
    if isinstance(value, dict):
        if value.get("__is_block__"):
            name = path or "a block"
            raise ParametersError(
                file, path, f"blocks are not allowed in a variable file: write `{name} = {{ ... }}`"
            )
        for key, item in value.items():
            _check_literals(file, item, key_path(path, str(key)))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if isinstance(item, dict) and item.get("__is_block__"):
                raise ParametersError(
                    file, path, f"blocks are not allowed in a variable file: write `{path} = {{ ... }}`"
                )
            _check_literals(file, item, f"{path}[{i}]")
    elif isinstance(value, str) and _EXPRESSION.match(value):
        raise ParametersError(
            file,
            path,
            f"expressions are not allowed in a variable file ({value[2:-1]}): write a literal value",
        )


def _typed(cls: type[T], file: Path, data: dict[str, Any]) -> T:
    try:
        return build(cls, data, "")
    except SchemaError as exc:
        raise ParametersError(file, exc.path, exc.message) from None


def load_parameters(path: Path | str) -> Parameters:
    """`parameters.tfvars` (HCL) or `parameters.tfvars.json` (JSON), typed and checked."""
    file = Path(path)
    return _typed(Parameters, file, read_variables(file))


def load_versions(path: Path | str) -> Versions:
    """`versions.tfvars.json` (or its HCL form), typed and checked."""
    file = Path(path)
    return _typed(Versions, file, read_variables(file))


def parameters_from_dict(data: dict[str, Any], file: str = "<parameters>") -> Parameters:
    return _typed(Parameters, Path(file), data)
