"""Reading `parameters.tfvars` / `parameters.tfvars.json` and `versions.tfvars.json` into typed parameters.

Both forms Terraform reads are accepted and give the same result; every kind of mistake is reported as a
`ParametersError` naming the file and the key path (never a traceback), including through the CLI.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from armonik_deploy.cli import app
from armonik_deploy.parameters import (
    ComputePartition,
    Hpa,
    Parameters,
    ParametersError,
    Versions,
    load_parameters,
    load_versions,
)

QUICK_DEPLOY = Path(__file__).resolve().parents[2] / "infrastructure" / "quick-deploy" / "localhost"


def write(tmp_path: Path, text: str, name: str = "parameters.tfvars") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def error_of(path: Path) -> ParametersError:
    with pytest.raises(ParametersError) as caught:
        load_parameters(path)
    return caught.value


# -- the shipped files -------------------------------------------------------------------------------------
def test_shipped_parameters_have_default_and_pymonik_partitions_with_one_pair_each() -> None:
    params = load_parameters(QUICK_DEPLOY / "parameters.tfvars")
    assert list(params.compute_plane) == ["default", "pymonik"]
    default, pymonik = params.compute_plane["default"], params.compute_plane["pymonik"]
    assert default.replicas == 1 and pymonik.replicas == 1
    assert default.worker[0].command == ["{python}", "-m", "armonik_samples.worker"]
    assert pymonik.worker[0].command == [
        "{python}",
        "-c",
        "from pymonik import run_pymonik_worker; run_pymonik_worker()",
    ]
    assert params.control_plane.port == 5001
    assert params.control_plane.default_partition == "default"
    assert params.metrics_exporter is not None and params.metrics_exporter.port == 9419
    # Kubernetes-only keys are kept, typed
    assert default.polling_agent.limits == {"cpu": "2000m", "memory": "2048Mi"}
    assert isinstance(default.hpa, Hpa) and default.hpa.max_replica_count == 5
    assert default.hpa.triggers == [{"type": "prometheus", "threshold": 2}]
    assert pymonik.worker[0].image == "armonik-pymonik-worker" and pymonik.worker[0].tag is None


def test_shipped_versions_resolve_image_tags_as_upstream() -> None:
    versions = load_versions(QUICK_DEPLOY / "versions.tfvars.json")
    assert isinstance(versions, Versions)
    core = versions.armonik_versions["core"]
    assert versions.tag_of("dockerhubaneo/armonik_control") == core
    assert versions.tag_of("dockerhubaneo/armonik_pollingagent", "custom") == "custom"
    assert versions.tag_of("ghcr.io/kedacore/keda") == versions.image_tags["ghcr.io/kedacore/keda"]
    assert versions.helm_charts["keda"].repository.startswith("https://")
    assert versions.armonik_images["infra"] == ["https://github.com/aneoconsulting/ArmoniK.Infra.git"]


# -- forms and defaults ------------------------------------------------------------------------------------
HCL = """
# a comment
logging_level = "Debug"
control_plane = {
  port              = 6001
  default_partition = "cpu"
}
compute_plane = {
  cpu = {
    replicas = 3
    worker = [{ command = ["{python}", "-m", "w"], env = { A = "1", B = 2, C = true } }]
  }
}
local = { data_directory = "/var/tmp/armonik" }
"""


def test_hcl_and_json_forms_give_the_same_parameters(tmp_path: Path) -> None:
    from_hcl = load_parameters(write(tmp_path, HCL))
    data = {
        "logging_level": "Debug",
        "control_plane": {"port": 6001, "default_partition": "cpu"},
        "compute_plane": {
            "cpu": {
                "replicas": 3,
                "worker": [{"command": ["{python}", "-m", "w"], "env": {"A": "1", "B": 2, "C": True}}],
            }
        },
        "local": {"data_directory": "/var/tmp/armonik"},
    }
    from_json = load_parameters(write(tmp_path, json.dumps(data), "parameters.tfvars.json"))
    assert from_hcl == from_json
    assert from_hcl.compute_plane["cpu"].replicas == 3
    assert from_hcl.compute_plane["cpu"].worker[0].env == {"A": "1", "B": 2, "C": True}


def test_an_empty_file_gives_upstream_defaults(tmp_path: Path) -> None:
    params = load_parameters(write(tmp_path, ""))
    assert params == Parameters()
    assert params.logging_level == "Information"
    assert params.control_plane.port == 5001
    assert params.control_plane.image == "dockerhubaneo/armonik_control"
    assert params.control_plane.command == ["{python}", "-m", "armonik_core.control_plane"]
    assert params.compute_plane == {}
    assert params.metrics_exporter is not None
    assert params.metrics_exporter.command == ["{python}", "-m", "armonik_core.metrics"]
    assert params.local.host == "127.0.0.1" and params.local.data_directory == "data"
    assert params.environment_description is None


def test_partition_defaults_and_null_semantics(tmp_path: Path) -> None:
    params = load_parameters(
        write(
            tmp_path,
            'compute_plane = { a = { replicas = null, worker = [{ command = ["w"] }] } }\n'
            "metrics_exporter = null\n",
        )
    )
    partition = params.compute_plane["a"]
    assert isinstance(partition, ComputePartition)
    assert partition.replicas == 1  # null takes the default, as Terraform's optional(number, 1)
    assert partition.termination_grace_period_seconds == 30
    assert partition.polling_agent.command == ["{python}", "-m", "armonik_core.polling_agent"]
    assert partition.polling_agent.image == "dockerhubaneo/armonik_pollingagent"
    assert partition.worker[0].name == "worker"
    assert partition.hpa is None and partition.partition_data is None
    assert params.metrics_exporter is None  # null disables a block


def test_upstream_kubernetes_parameters_are_accepted(tmp_path: Path) -> None:
    upstream = """
logging_level = "Information"
redis = {}
activemq = {
  activemq_opts_memory = "-Xms1g -Xmx3g"
}
/* block comment */
control_plane = {
  limits = {
    cpu    = "1000m"
    memory = "2048Mi"
  }
  default_partition = "default"
}
admin_gui = {
  node_selector = { service = "monitoring" }
}
compute_plane = {
  default = {
    replicas = 0
    socket_type = "tcp"
    polling_agent = { limits = { cpu = "2000m" } }
    worker = [{ image = "dockerhubaneo/armonik_worker_dll", command = ["w"] }]
    cache_config = { memory = true, size_limit = "1Gi" }
    node_cache = { path = "/cache", threshold = 0.5 }
    partition_data = { priority = 2, max_pods = 10, parent_partition_ids = ["x"] }
    security = { user = -1 }
  },
}
ingress = {
  tls                  = false
  mtls                 = false
  generate_client_cert = false
}
configurations = {
  core = { env = { Amqp__AllowHostMismatch = true, Redis__Timeout = 30000 } }
  jobs = { env = { MongoDB__DataRetention = "1.00:00:00" } }
}
environment_description = { name = "local-dev", version = "0.0.0", description = "d", color = "blue" }
static = { gui_configuration = {} }
mongodb = { persistent_volume = {} }
"""
    params = load_parameters(write(tmp_path, upstream))
    default = params.compute_plane["default"]
    assert default.socket_type == "tcp"
    assert default.partition_data is not None and default.partition_data.max_pods == 10
    assert params.redis == {} and params.mongodb == {"persistent_volume": {}}
    assert params.ingress == {"tls": False, "mtls": False, "generate_client_cert": False}


# -- errors: file, key path, what was expected ------------------------------------------------------------
WORKER = '[{ command = ["w"] }]'


@pytest.mark.parametrize(
    ("text", "path", "message"),
    [
        (
            'compute_plane = { default = { worker = [{ comand = ["w"] }] } }',
            "compute_plane.default.worker[0].comand",
            "unknown key (expected one of: command, conf, env",
        ),
        ('compute_plane = { default = { worker = [{ comand = ["w"] }] } }', "", "did you mean 'command'?"),
        ("contol_plane = {}", "contol_plane", "did you mean 'control_plane'?"),
        (
            f'compute_plane = {{ default = {{ replicas = "two", worker = {WORKER} }} }}',
            "compute_plane.default.replicas",
            'expected an integer, got the string "two"',
        ),
        (
            f"compute_plane = {{ default = {{ replicas = 1.5, worker = {WORKER} }} }}",
            "compute_plane.default.replicas",
            "expected an integer, got the number 1.5",
        ),
        (
            'compute_plane = { default = { worker = [{ command = "python w.py" }] } }',
            "compute_plane.default.worker[0].command",
            'expected a list of strings or null, got the string "python w.py"',
        ),
        (
            'compute_plane = { default = { worker = [{ command = ["python", 3] }] } }',
            "compute_plane.default.worker[0].command[1]",
            "expected a string, got the number 3",
        ),
        (
            'compute_plane = { default = { worker = [{ command = ["w"], env = { A = [1] } }] } }',
            "compute_plane.default.worker[0].env.A",
            "got a list",
        ),
        ("compute_plane = { default = { } }", "compute_plane.default.worker", "required: a list of objects"),
        (
            "compute_plane = { default = { worker = [] } }",
            "compute_plane.default.worker",
            "must not be empty",
        ),
        (
            f"compute_plane = {{ default = {{ replicas = -1, worker = {WORKER} }} }}",
            "compute_plane.default.replicas",
            "must be at least 0, got -1",
        ),
        ("control_plane = { port = 70000 }", "control_plane.port", "must be at most 65535"),
        ("control_plane = 5001", "control_plane", "expected an object, got the number 5001"),
        ('compute_plane = ["default"]', "compute_plane", "expected a map of objects, got a list"),
        ('logging_level = "Info"', "logging_level", "expected one of 'Verbose', 'Debug', 'Information'"),
        (
            f'compute_plane = {{ "my partition" = {{ worker = {WORKER} }} }}',
            'compute_plane["my partition"]',
            "must be 1-63 letters, digits",
        ),
        (
            'compute_plane = { p = { worker = [{ command = ["a"] }, { command = ["b"] }] } }',
            "compute_plane.p.worker[1].name",
            "'worker' is already the name of worker[0]",
        ),
        (
            'compute_plane = { p = { socket_type = "pipe", worker = [{ command = ["a"] }] } }',
            "compute_plane.p.socket_type",
            "expected one of 'unixdomainsocket', 'tcp'",
        ),
        ("metrics_exporter = { port = true }", "metrics_exporter.port", "expected an integer, got true"),
        ('local = { restart_delay = "1s" }', "local.restart_delay", 'expected a number, got the string "1s"'),
        ("control_plane {\n  port = 1\n}\n", "control_plane", "blocks are not allowed in a variable file"),
        ("control_plane = { port = var.port }", "control_plane.port", "expressions are not allowed"),
        ("control_plane = { port = 5001 ", "", "not valid HCL: line"),
    ],
)
def test_every_error_names_the_file_and_the_key_path(
    tmp_path: Path, text: str, path: str, message: str
) -> None:
    file = write(tmp_path, text + "\n")
    error = error_of(file)
    assert message in str(error)
    assert str(error).startswith(f"{file}: {path}: " if path else f"{file}")
    if path:
        assert error.path == path
    assert error.file == str(file)


def test_json_errors_name_the_file_line_and_key_path(tmp_path: Path) -> None:
    broken = write(tmp_path, '{"control_plane": {"port": }', "p.tfvars.json")
    assert "not valid JSON: line 1 column" in str(error_of(broken))
    listing = write(tmp_path, "[1, 2]", "q.tfvars.json")
    assert "expected an object of variables at the top level" in str(error_of(listing))
    typed = write(
        tmp_path,
        '{"compute_plane": {"a": {"worker": [{"command": ["w"], "limits": {"cpu": [1]}}]}}}',
        "r.json",
    )
    error = error_of(typed)
    assert error.path == "compute_plane.a.worker[0].limits.cpu"
    assert "expected a string or an integer or a number, got a list" in str(error)


def test_a_missing_file_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    error = error_of(tmp_path / "nope.tfvars")
    assert "cannot read the file" in str(error) and "nope.tfvars" in str(error)


def test_versions_errors_name_the_key_path(tmp_path: Path) -> None:
    base = json.loads((QUICK_DEPLOY / "versions.tfvars.json").read_text())
    del base["helm_charts"]["keda"]["repository"]
    file = write(tmp_path, json.dumps(base), "versions.tfvars.json")
    with pytest.raises(ParametersError) as caught:
        load_versions(file)
    assert caught.value.path == "helm_charts.keda.repository"
    assert "required: a string" in str(caught.value)

    base = json.loads((QUICK_DEPLOY / "versions.tfvars.json").read_text())
    base["armonik_images"]["extra"] = ["some/image"]
    file = write(tmp_path, json.dumps(base), "versions.tfvars.json")
    with pytest.raises(ParametersError) as caught:
        load_versions(file)
    assert caught.value.path == "armonik_images.extra"

    file = write(tmp_path, json.dumps({**base, "image_tag": {}}), "versions.tfvars.json")
    with pytest.raises(ParametersError) as caught:
        load_versions(file)
    assert "did you mean 'image_tags'?" in str(caught.value)


def test_the_cli_reports_errors_without_traceback(tmp_path: Path) -> None:
    file = write(tmp_path, 'compute_plane = { default = { worker = [{ comand = ["w"] }] } }\n')
    result = CliRunner().invoke(app, ["plan", "--parameters", str(file), "--generated", str(tmp_path / "g")])
    assert result.exit_code == 1
    output = result.output
    assert "compute_plane.default.worker[0].comand" in output and str(file) in output
    assert "Traceback" not in output
    assert not (tmp_path / "g").exists()
