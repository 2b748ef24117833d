"""tools/mongodb: the mongosh command that opens a deployment's MongoDB, built from what the deployment applied."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from armonik_deploy.mongo_access import MongoAccessError, kubernetes_command, local_command
from armonik_deploy.parameters import parameters_from_dict
from armonik_deploy.plan import build_plan

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "tools" / "mongodb"
WORKER = {"command": ["{python}", "worker.py"]}


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """A short folder: unix socket paths (under it) are limited to about 100 bytes."""
    path = Path(tempfile.mkdtemp(prefix="akmongo-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def applied(tmp_path: Path, **blocks: Any) -> Path:
    """A generated folder holding the plan a deployment with `blocks` would apply."""
    data = {"compute_plane": {"default": {"replicas": 1, "worker": [WORKER]}}, **blocks}
    params = parameters_from_dict(data, str(tmp_path / "p.tfvars"))
    generated = tmp_path / "generated"
    plan = build_plan(params, tmp_path / "p.tfvars", generated, cwd=tmp_path)
    (generated / "deploy").mkdir(parents=True)
    (generated / "deploy" / "plan.json").write_text(plan.to_json())
    return generated


def test_user_command_from_host_settings_with_tls(tmp_path: Path) -> None:
    generated = applied(
        tmp_path,
        mongodb={
            "host": "db.local",
            "port": 27018,
            "database_name": "database",
            "user": "app",
            "password": "secret",
            "replica_set": "rs0",
            "tls": True,
            "ca_file": "/certs/ca.pem",
        },
    )
    assert local_command(generated, "user") == [
        "mongosh",
        "mongodb://db.local:27018/database?replicaSet=rs0",
        "--tls",
        "--tlsCAFile",
        "/certs/ca.pem",
        "-u",
        "app",
        "-p",
        "secret",
        "--authenticationDatabase",
        "database",
    ]


def test_connection_string_wins_and_admin_authenticates_on_admin(tmp_path: Path) -> None:
    generated = applied(tmp_path, mongodb={"connection_string": "mongodb://h1,h2/database?replicaSet=rs0"})
    command = local_command(generated, "admin", "root", "pw")
    assert command == [
        "mongosh",
        "mongodb://h1,h2/database?replicaSet=rs0",
        "-u",
        "root",
        "-p",
        "pw",
        "--authenticationDatabase",
        "admin",
    ]
    with pytest.raises(MongoAccessError, match="MONGODB_ADMIN_USER"):
        local_command(generated, "admin")


def test_a_deployment_without_mongodb_is_named(tmp_path: Path) -> None:
    with pytest.raises(MongoAccessError, match="keeps its state in sqlite, not MongoDB"):
        local_command(applied(tmp_path), "user")
    with pytest.raises(MongoAccessError, match="no deployment in"):
        local_command(tmp_path / "nothing", "user")


def test_kubernetes_command_runs_mongosh_in_the_replica_set_pod() -> None:
    command = kubernetes_command("armonik", "user", "pw")
    assert command[:7] == ["kubectl", "-n", "armonik", "exec", "-it", "mongodb-db-ps-rs0-0", "--"]
    assert command[7:9] == ["mongosh", "mongodb://localhost:27017/database"]
    assert ["-u", "application_user", "-p", "pw"] == command[command.index("-u") : command.index("-u") + 4]
    assert kubernetes_command("armonik", "admin", "pw", "databaseadmin")[-1] == "admin"


@pytest.mark.parametrize("role", ["user", "admin"])
def test_the_scripts_print_the_command_and_example_queries(tmp_path: Path, role: str) -> None:
    generated = applied(tmp_path, mongodb={"host": "db.local", "user": "app", "password": "secret"})
    env = {
        **os.environ,
        "GENERATED": str(generated),
        "PRINT_ONLY": "1",
        "MONGODB_ADMIN_USER": "root",
        "MONGODB_ADMIN_PASSWORD": "pw",
    }
    done = subprocess.run(
        [str(SCRIPTS / f"access-mongo-as-{role}.sh")], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("mongosh mongodb://db.local:27017/database")
    assert ("-u root" if role == "admin" else "-u app") in done.stdout
    assert "db.TaskData.aggregate" in done.stderr


def test_the_script_reports_a_deployment_without_mongodb(tmp_path: Path) -> None:
    env = {**os.environ, "GENERATED": str(applied(tmp_path)), "PRINT_ONLY": "1"}
    done = subprocess.run(
        [str(SCRIPTS / "access-mongo-as-user.sh")], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "not MongoDB" in done.stderr


@pytest.mark.skipif(not os.environ.get("MONGODB_URI"), reason="needs a MongoDB server (MONGODB_URI)")
@pytest.mark.skipif(shutil.which("mongosh") is None, reason="needs mongosh")
def test_the_script_opens_a_real_server(tmp_path: Path) -> None:
    generated = applied(tmp_path, mongodb={"connection_string": os.environ["MONGODB_URI"]})
    env = {**os.environ, "GENERATED": str(generated), "PRINT_ONLY": "1"}
    printed = subprocess.run(
        [str(SCRIPTS / "access-mongo-as-user.sh")], env=env, capture_output=True, text=True, timeout=60
    ).stdout.strip()
    done = subprocess.run(
        ["bash", "-c", f"{printed} --quiet --eval 'db.runCommand({{ping: 1}}).ok'"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.strip() == "1", done.stderr
