"""tools/mongodb: the mongosh command that opens a deployment's MongoDB, built from what the deployment applied."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from armonik_deploy.kubernetes.settings import MONGODB_TLS_SECRET
from armonik_deploy.mongo_access import (
    POD_CA_FILE,
    POD_HOST,
    MongoAccessError,
    kubernetes_command,
    local_command,
)
from armonik_deploy.parameters import parameters_from_dict
from armonik_deploy.plan import build_plan
from tests.support import render_file, short_folder
from tests.unit.kubernetes_render_support import VARIANT, secret_files, tls_handshake

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "tools" / "mongodb"
WORKER = {"command": ["{python}", "worker.py"]}


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """A short folder: unix socket paths (under it) are limited to about 100 bytes."""
    yield from short_folder("akmongo-")


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
    # a deployment with its own database name: the URL and the user's authentication database follow it
    own = kubernetes_command("armonik", "user", "pw", database="htc")
    assert own[8] == "mongodb://localhost:27017/htc" and own[-2:] == ["--authenticationDatabase", "htc"]
    assert kubernetes_command("armonik", "admin", "pw", "databaseadmin", database="htc")[-1] == "admin"
    # the replica set's certificate names the host: no check is turned off
    assert command[command.index("--tls") : command.index("--tls") + 3] == [
        "--tls",
        "--tlsCAFile",
        POD_CA_FILE,
    ]
    assert not [arg for arg in command if arg.startswith("--tlsAllow") or arg == "--tlsInsecure"]


def test_kubernetes_command_accepts_the_certificate_the_deployment_gives_mongodb(tmp_path: Path) -> None:
    """mongosh in the pod connects to POD_HOST and checks the server's certificate against POD_CA_FILE, where
    Percona mounts `secrets.ssl`: with the rendered Secret (the certificate, and the authority it holds),
    the handshake succeeds on that host name, without --tlsAllowInvalidHostnames."""
    file = tmp_path / "parameters.tfvars"
    file.write_text(VARIANT)
    rendered = render_file(file, tmp_path / "certificates")
    spec = rendered.get("PerconaServerMongoDB", "mongodb-db-ps")["spec"]
    assert spec["secrets"]["ssl"] == MONGODB_TLS_SECRET and POD_CA_FILE.startswith("/etc/mongodb-ssl/")
    mounted = secret_files(rendered, spec["secrets"]["ssl"], tmp_path / "etc-mongodb-ssl")
    command = kubernetes_command("armonik-test", "user", "pw")
    assert f"mongodb://{POD_HOST}:27017/database" in command
    tls_handshake(mounted, mounted[Path(POD_CA_FILE).name], POD_HOST)


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


#: Stand-in for kubectl (no cluster here): answers `get secret NAME -o jsonpath={.data.KEY}` with the base64 of
#: `<NAME>/<KEY>` and `get configmap core-configmap` with the database name of $DATABASE (empty if unset), and
#: records its arguments, so the test sees what the script asks of the cluster and what it makes of the answers.
KUBECTL = """#!/usr/bin/env bash
echo "$*" >> "$CALLS"
case "$4" in
  secret) key="${7#jsonpath=\\{.data.}"; printf '%s' "$5/${key%\\}}" | base64 ;;
  configmap) printf '%s' "${DATABASE:-}" ;;
esac
"""


@pytest.mark.parametrize(("role", "database"), [("user", ""), ("user", "htc"), ("admin", "htc")])
def test_the_scripts_read_the_cluster_for_the_kubernetes_target(
    tmp_path: Path, role: str, database: str
) -> None:
    kubectl = tmp_path / "bin" / "kubectl"
    kubectl.parent.mkdir()
    kubectl.write_text(KUBECTL)
    kubectl.chmod(0o755)
    calls = tmp_path / "calls"
    env = {
        **os.environ,
        "PATH": f"{kubectl.parent}:{os.environ['PATH']}",
        "CALLS": str(calls),
        "DATABASE": database,
        "NAMESPACE": "htc-ns",
        "PRINT_ONLY": "1",
    }
    done = subprocess.run(
        [str(SCRIPTS / f"access-mongo-as-{role}.sh"), "kubernetes"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    printed = shlex.split(done.stdout)
    expected_db = database or "database"
    assert printed[:7] == ["kubectl", "-n", "htc-ns", "exec", "-it", "mongodb-db-ps-rs0-0", "--"]
    assert printed[8] == f"mongodb://{POD_HOST}:27017/{expected_db}"
    if role == "user":
        password = "application-user-password/password"
        assert printed[-6:] == [
            "-u",
            "application_user",
            "-p",
            password,
            "--authenticationDatabase",
            expected_db,
        ]
    else:
        user, password = (f"mongodb-db-ps-secrets/MONGODB_DATABASE_ADMIN_{k}" for k in ("USER", "PASSWORD"))
        assert printed[-6:] == ["-u", user, "-p", password, "--authenticationDatabase", "admin"]
    asked = calls.read_text().splitlines()
    assert all(line.startswith("-n htc-ns get ") for line in asked)
    assert any("configmap core-configmap" in line for line in asked)
