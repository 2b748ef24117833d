"""The plan of a local deployment: which processes, with which command line and environment.

Nothing is started here: `build_plan` is pure, and these tests read the plan it returns.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from armonik_core.gateway.auth import agent_credential
from armonik_deploy.gateway_secret import prepare_gateway_files
from armonik_deploy.parameters import ParametersError, parameters_from_dict
from armonik_deploy.plan import PARTITIONS_PREFIX, Plan, PlanError, ProcessSpec, build_plan
from armonik_deploy.schema import to_plain
from tests.support import short_folder

WORKER = {"command": ["{python}", "worker.py", "{partition}", "{replica}", "{generated}"]}


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """A short folder: unix socket paths (under it) are limited to about 100 bytes."""
    yield from short_folder("akplan-")


def parameters(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "control_plane": {"port": 6123},
        "compute_plane": {
            "default": {"replicas": 2, "worker": [WORKER]},
            "gpu": {"replicas": 1, "worker": [WORKER], "partition_data": {"priority": 3, "max_pods": 8}},
        },
    }
    data.update(overrides)
    return data


def plan_of(tmp_path: Path, data: dict[str, Any] | None = None, **kwargs: Any) -> Plan:
    params = parameters_from_dict(data if data is not None else parameters(), str(tmp_path / "p.tfvars"))
    return build_plan(params, tmp_path / "p.tfvars", tmp_path / "generated", cwd=tmp_path, **kwargs)


def by_name(plan: Plan) -> dict[str, ProcessSpec]:
    return {spec.name: spec for spec in plan.processes}


def test_processes_of_the_plan(tmp_path: Path) -> None:
    plan = plan_of(tmp_path)
    assert [spec.name for spec in plan.processes] == [
        "control-plane",
        "default-0-polling-agent",
        "default-0-worker",
        "default-1-polling-agent",
        "default-1-worker",
        "gpu-0-polling-agent",
        "gpu-0-worker",
        "metrics-exporter",
    ]
    specs = by_name(plan)
    assert specs["control-plane"].args == [sys.executable, "-m", "armonik_core.control_plane"]
    assert specs["default-1-polling-agent"].args == [sys.executable, "-m", "armonik_core.polling_agent"]
    assert specs["metrics-exporter"].args == [sys.executable, "-m", "armonik_core.metrics"]
    generated = str((tmp_path / "generated").resolve())
    assert specs["default-1-worker"].args == [sys.executable, "worker.py", "default", "1", generated]
    assert all(spec.cwd == str(tmp_path.resolve()) for spec in plan.processes)
    assert plan.endpoint == "127.0.0.1:6123"
    assert [job.args for job in plan.jobs] == [[sys.executable, "-m", "armonik_deploy.init_job"]]


def test_control_plane_environment_and_partitions_json(tmp_path: Path) -> None:
    plan = plan_of(tmp_path)
    env = by_name(plan)["control-plane"].env
    data = str((tmp_path / "generated" / "data").resolve())
    assert env["ControlPlane__Host"] == "127.0.0.1"
    assert env["ControlPlane__Port"] == "6123"
    assert env["Embedded__DataDirectory"] == data
    assert env["Submitter__DefaultPartition"] == "default"
    assert env["Serilog__MinimumLevel"] == "Information"
    assert json.loads(env[f"{PARTITIONS_PREFIX}0"]) == {
        "PartitionId": "default",
        "ParentPartitionIds": [],
        "PodReserved": 1,
        "PodMax": 2,
        "PreemptionPercentage": 50,
        "Priority": 1,
        "PodConfiguration": None,
    }
    gpu = json.loads(env[f"{PARTITIONS_PREFIX}1"])
    assert gpu["PartitionId"] == "gpu" and gpu["PodMax"] == 8 and gpu["Priority"] == 3
    assert f"{PARTITIONS_PREFIX}2" not in env
    assert plan.partitions == [json.loads(env[f"{PARTITIONS_PREFIX}{i}"]) for i in range(2)]
    # the init job gets the same partitions and data directory
    init = plan.jobs[0].env
    assert init["Embedded__DataDirectory"] == data
    assert init[f"{PARTITIONS_PREFIX}1"] == env[f"{PARTITIONS_PREFIX}1"]


def test_each_pair_has_its_own_socket_folder_and_identity(tmp_path: Path) -> None:
    plan = plan_of(tmp_path)
    prepare_gateway_files(plan)
    specs = by_name(plan)
    secret = Path(specs["control-plane"].env["ComputeGateway__SecretFile"])
    kept = secret.read_text()
    cache = (tmp_path / "generated" / "cache").resolve()
    gateway = (tmp_path / "generated" / "data" / "compute-gateway.sock").resolve()
    for partition, replica in [("default", 0), ("default", 1), ("gpu", 0)]:
        pair = f"{partition}-{replica}"
        agent, worker = specs[f"{pair}-polling-agent"], specs[f"{pair}-worker"]
        expected = {
            "ComputePlane__WorkerChannel__Address": str(cache / pair / "armonik_worker.sock"),
            "ComputePlane__AgentChannel__Address": str(cache / pair / "armonik_agent.sock"),
            "Pollster__SharedCacheFolder": str(cache / "shared"),
            "Pollster__PartitionId": partition,
            "Pollster__AgentId": pair,
            "Embedded__DataDirectory": str((tmp_path / "generated" / "data").resolve()),
        }
        for spec in (agent, worker):
            assert {k: spec.env[k] for k in expected} == expected
            assert spec.partition == partition and spec.replica == replica
            assert str(cache / pair) in spec.folders
            assert spec.grace == 30
        assert agent.role == "polling-agent" and worker.role == "worker"
        # the agent alone reaches the compute gateway, with its partition's credential
        assert agent.env["ComputeGateway__Endpoint"] == f"unix://{gateway}"
        credential = Path(agent.env["ComputeGateway__CredentialFile"])
        assert credential.name == f"agent-{partition}.credential"
        assert credential.read_text().strip() == agent_credential(kept.strip().encode(), partition)
        assert credential.stat().st_mode & 0o777 == 0o600
        assert not any(key.startswith("ComputeGateway__") for key in worker.env)
    assert specs["control-plane"].env["ComputeGateway__Socket"] == str(gateway)
    assert secret.stat().st_mode & 0o777 == 0o600
    prepare_gateway_files(plan_of(tmp_path))  # a redeploy keeps the secret
    assert secret.read_text() == kept


def test_metrics_exporter_environment_and_disabling(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, parameters(metrics_exporter={"port": 9500, "extra_conf": {"X": 1}}))
    env = by_name(plan)["metrics-exporter"].env
    assert env["MetricsExporter__Port"] == "9500"
    assert env["Embedded__DataDirectory"] == str((tmp_path / "generated" / "data").resolve())
    assert env["X"] == "1"
    assert plan.metrics_url == "http://127.0.0.1:9500/metrics"
    plan = plan_of(tmp_path, parameters(metrics_exporter=None))
    assert "metrics-exporter" not in by_name(plan) and plan.metrics_url is None


def test_configurations_apply_to_their_processes_and_deployment_keys_win(tmp_path: Path) -> None:
    data = parameters(
        configurations={
            "core": {"env": {"Core": "c", "Submitter__DeletePayload": True}},
            "control": {"env": {"Control": "x"}},
            "compute": {"env": {"Compute": "y"}},
            "polling": {"env": {"Polling": "p"}},
            "worker": [{"env": {"Worker": "w", "Shared": "from-configurations"}}],
            "metrics": {"env": {"Metrics": "m"}},
            "log": {"env": {"Log": "l"}},
        },
        local={"env": {"Everywhere": "e", "Pollster__PartitionId": "nope"}, "host": "0.0.0.0"},
        logging_level="Debug",
    )
    data["compute_plane"]["default"]["worker"] = [{**WORKER, "env": {"Shared": "from-worker", "N": 2}}]
    data["compute_plane"]["default"]["polling_agent"] = {"env": {"ComputeGateway__Endpoint": "ignored"}}
    specs = by_name(plan_of(tmp_path, data))

    def keys(name: str) -> set[str]:
        wanted = {"Core", "Control", "Compute", "Polling", "Worker", "Metrics", "Log", "Everywhere"}
        return wanted & set(specs[name].env)

    assert keys("control-plane") == {"Core", "Control", "Log", "Everywhere"}
    assert keys("default-0-polling-agent") == {"Core", "Compute", "Polling", "Log", "Everywhere"}
    assert keys("default-0-worker") == {"Compute", "Worker", "Log", "Everywhere"}
    assert keys("metrics-exporter") == {"Core", "Metrics", "Log", "Everywhere"}
    assert specs["control-plane"].env["Submitter__DeletePayload"] == "true"
    assert specs["default-0-worker"].env["Shared"] == "from-worker"
    assert specs["default-0-worker"].env["N"] == "2"
    assert specs["default-0-worker"].env["Pollster__PartitionId"] == "default"
    assert specs["default-0-polling-agent"].env["ComputeGateway__Endpoint"].startswith("unix:///")
    assert specs["control-plane"].env["ControlPlane__Host"] == "0.0.0.0"
    assert specs["control-plane"].env["Serilog__MinimumLevel"] == "Debug"


def test_local_python_working_directory_and_absolute_data_directory(tmp_path: Path) -> None:
    (tmp_path / "work").mkdir()
    data = parameters(local={"python": "python3", "working_directory": "work", "data_directory": "/srv/ak"})
    specs = by_name(plan_of(tmp_path, data))
    assert specs["control-plane"].args[0] == "python3"
    assert specs["default-0-worker"].args[0] == "python3"
    assert specs["control-plane"].cwd == str((tmp_path / "work").resolve())
    assert specs["control-plane"].env["Embedded__DataDirectory"] == "/srv/ak"
    for local, path in [
        ({"python": "/no/such/python"}, "local.python"),
        ({"working_directory": "missing"}, "local.working_directory"),
    ]:
        with pytest.raises(ParametersError) as caught:
            plan_of(tmp_path, parameters(local=local))
        assert caught.value.path == path


def test_several_workers_per_pair_and_zero_replicas(tmp_path: Path) -> None:
    data = parameters()
    data["compute_plane"]["default"] = {
        "replicas": 1,
        "worker": [{**WORKER, "name": "a"}, {**WORKER, "name": "b"}],
    }
    data["compute_plane"]["gpu"]["replicas"] = 0
    data["compute_plane"]["gpu"]["partition_data"] = None
    plan = plan_of(tmp_path, data)
    names = [spec.name for spec in plan.processes]
    assert names == [
        "control-plane",
        "default-0-polling-agent",
        "default-0-a-0",
        "default-0-b-1",
        "metrics-exporter",
    ]
    gpu = next(p for p in plan.partitions if p["PartitionId"] == "gpu")
    assert gpu["PodMax"] == 0 and gpu["PodReserved"] == 0
    assert any("gpu.replicas = 0" in w for w in plan.warnings)


def test_local_requirements_are_reported_with_the_key_path(tmp_path: Path) -> None:
    data = parameters()
    data["compute_plane"]["gpu"]["worker"] = [{"image": "some/worker"}]
    with pytest.raises(ParametersError) as caught:
        plan_of(tmp_path, data)
    assert caught.value.path == "compute_plane.gpu.worker[0].command"
    assert "required by the local target" in str(caught.value)

    data = parameters(control_plane={"default_partition": "cpu"})
    with pytest.raises(ParametersError) as caught:
        plan_of(tmp_path, data)
    assert caught.value.path == "control_plane.default_partition"
    assert "'cpu' is not a partition of compute_plane (partitions: default, gpu)" in str(caught.value)


def test_too_long_socket_paths_are_refused_before_anything_starts(tmp_path: Path) -> None:
    params = parameters_from_dict(parameters())
    deep = tmp_path / ("x" * 120)
    with pytest.raises(PlanError, match="socket path too long"):
        build_plan(params, tmp_path / "p.tfvars", deep)


def test_partition_changes_do_not_restart_the_control_plane(tmp_path: Path) -> None:
    before = by_name(plan_of(tmp_path))["control-plane"]
    data = parameters()
    data["compute_plane"]["default"]["replicas"] = 5
    data["compute_plane"]["new"] = {"worker": [WORKER]}
    after = by_name(plan_of(tmp_path, data))["control-plane"]
    assert after.env != before.env
    assert after.fingerprint() == before.fingerprint()
    moved = by_name(plan_of(tmp_path, parameters(control_plane={"port": 6124})))["control-plane"]
    assert moved.fingerprint() != before.fingerprint()


def test_the_plan_round_trips_through_json(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, plan_id="fixed")
    again = Plan.from_json(plan.to_json())
    assert again == plan
    assert again.plan_id == "fixed"
    assert to_plain(again) == json.loads(plan.to_json())


def test_the_plan_command_shows_the_shipped_deployment_without_starting_anything(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from armonik_deploy.cli import app

    generated = tmp_path / "generated"
    result = CliRunner().invoke(app, ["plan", "--json", "--generated", str(generated)])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert [p["name"] for p in plan["processes"]] == [
        "control-plane",
        "default-0-polling-agent",
        "default-0-worker",
        "pymonik-0-polling-agent",
        "pymonik-0-worker",
        "metrics-exporter",
        "ingress",
    ]
    assert plan["endpoint"] == "127.0.0.1:5001"
    assert plan["ingress_urls"]["admin_app_url"] == "http://127.0.0.1:5000/admin/"
    assert [p["PartitionId"] for p in plan["partitions"]] == ["default", "pymonik"]
    assert not generated.exists()

    table = CliRunner().invoke(app, ["plan", "--generated", str(generated)], env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    assert "pymonik-0-worker" in table.stdout and "cache/pymonik-0" in table.stdout
    assert "127.0.0.1:5000" in table.stdout  # the ingress's address
    status = CliRunner().invoke(app, ["status", "--generated", str(generated)])
    assert status.exit_code == 0 and "Nothing is running" in status.stdout


def test_an_in_process_worker_runs_in_its_polling_agent(tmp_path: Path) -> None:
    data = parameters(
        compute_plane={
            "fast": {
                "replicas": 2,
                "worker": [{"module": "my_package.tasks:processor", "env": {"MY_SETTING": "x"}}],
            }
        },
        configurations={"worker": {"env": {"FROM_CONFIGURATIONS": "y"}}},
    )
    data["control_plane"]["default_partition"] = "fast"
    plan = plan_of(tmp_path, data)
    assert [spec.name for spec in plan.processes] == [
        "control-plane",
        "fast-0-polling-agent",
        "fast-1-polling-agent",
        "metrics-exporter",
    ]
    env = by_name(plan)["fast-1-polling-agent"].env
    assert env["Worker__Module"] == "my_package.tasks:processor"
    # What the worker process would have been given, the agent is given: the user's code runs there.
    assert env["MY_SETTING"] == "x" and env["FROM_CONFIGURATIONS"] == "y"
    assert plan.pairs() == {"fast": 2}


@pytest.mark.parametrize(
    ("worker", "key", "message"),
    [
        ([{"module": "a:b", "command": ["x"]}], "worker[0].command", "either module"),
        ([{"module": "a:b"}, {"name": "second", "command": ["x"]}], "worker[0].module", "only worker"),
        ([{"env": {}}], "worker[0].command", "or a module run in the polling agent"),
    ],
)
def test_an_in_process_worker_is_the_partitions_only_worker(
    tmp_path: Path, worker: list[dict[str, Any]], key: str, message: str
) -> None:
    data = parameters(compute_plane={"default": {"worker": worker}})
    with pytest.raises(ParametersError, match=message) as info:
        plan_of(tmp_path, data)
    assert f"compute_plane.default.{key}" in str(info.value)


def test_the_shared_cache_folder_is_a_default_the_parameters_may_change(tmp_path: Path) -> None:
    data = parameters(configurations={"polling": {"env": {"Pollster__SharedCacheFolder": "/srv/everyone"}}})
    data["compute_plane"]["gpu"]["polling_agent"] = {"env": {"Pollster__SharedCacheFolder": "/srv/gpu"}}
    specs = by_name(plan_of(tmp_path, data))
    assert specs["default-0-polling-agent"].env["Pollster__SharedCacheFolder"] == "/srv/everyone"
    assert specs["gpu-0-polling-agent"].env["Pollster__SharedCacheFolder"] == "/srv/gpu"
    assert "/srv/gpu" in specs["gpu-0-polling-agent"].folders
    assert specs["gpu-0-worker"].env["Pollster__SharedCacheFolder"] == "/srv/gpu"


def test_a_shared_cache_folder_this_user_cannot_create_falls_back_with_a_warning(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.write_text("a file: no folder can be made under it")
    data = parameters()
    data["compute_plane"]["gpu"]["polling_agent"] = {
        "env": {"Pollster__SharedCacheFolder": str(locked / "shared")}
    }
    plan = plan_of(tmp_path, data)
    specs = by_name(plan)
    fallback = specs["default-0-polling-agent"].env["Pollster__SharedCacheFolder"]
    assert specs["gpu-0-polling-agent"].env["Pollster__SharedCacheFolder"] == fallback
    assert [w for w in plan.warnings if "gpu" in w and str(locked / "shared") in w]
    assert not (locked.parent / "shared").exists()
