"""The `mongosh` command line that opens a deployment's MongoDB, for `tools/mongodb/access-mongo-as-*.sh`.

Local target: the connection comes from the control plane's settings in the applied plan
(`<generated>/deploy/plan.json`: `MongoDB__ConnectionString`, or `MongoDB__Host`, `__Port`, `__DatabaseName`,
`__User`, `__Password`, `__ReplicaSet`, `__Tls`, `__CAFile`, `__AuthSource`), so the shell opens exactly the
database the deployment uses, with its TLS authority. The admin role authenticates against `admin` with
`MONGODB_ADMIN_USER` / `MONGODB_ADMIN_PASSWORD` (a local deployment knows only its application user).

Kubernetes target: `mongosh` runs inside the first pod of the Percona replica set, reading the password from
the secret the deployment created (`application-user-password` for the user, the operator's
`<cluster>-secrets` for the database admin). The replica set serves TLS only, with the deployment's
certificate (`kubernetes.settings.mongodb_identity`, which names localhost, the host mongosh connects to in
the pod): mongosh checks it, host name included, against the deployment's authority, which Percona mounts in
the pod with the certificate (`secrets.ssl`).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from urllib.parse import quote

from armonik_deploy.kubernetes.settings import MONGODB_CLUSTER, MONGODB_USER
from armonik_deploy.plan import Plan

EXAMPLES = """\
Example queries on the ArmoniK collections:
  db.SessionData.find({}, {Status: 1, CreationDate: 1}).sort({CreationDate: -1}).limit(5)
  db.TaskData.aggregate([{$group: {_id: "$Status", n: {$sum: 1}}}])   // 2 SUBMITTED, 4 COMPLETED, 5 ERROR
  db.TaskData.find({SessionId: "<session>", Status: 5}, {Output: 1, StatusMessage: 1})
  db.Result.countDocuments({SessionId: "<session>", Status: 2})        // completed results
  db.PartitionData.find()
"""

#: Where the Percona operator mounts the replica set's `secrets.ssl` authority in its pods.
POD_CA_FILE = "/etc/mongodb-ssl/ca.crt"
#: The deployment's database when `mongodb.cluster.database_name` is not set, as upstream's.
DEFAULT_DATABASE = "database"
#: The host mongosh connects to inside the pod (a name of the replica set's certificate).
POD_HOST = "localhost"


class MongoAccessError(RuntimeError):
    """The deployment has no MongoDB to open, or its settings cannot be read."""


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes")


def local_command(generated: Path, role: str, admin_user: str = "", admin_password: str = "") -> list[str]:
    plan_file = generated / "deploy" / "plan.json"
    try:
        plan = Plan.from_json(plan_file.read_text())
    except OSError as exc:
        raise MongoAccessError(f"no deployment in {generated} ({plan_file}: {exc.strerror})") from None
    env = plan.process("control-plane").env
    storage = env.get("Components__TableStorage", "sqlite")
    if storage.lower() not in ("mongodb", "armonik.adapters.mongodb.tablestorage"):
        raise MongoAccessError(
            f"the deployment in {generated} keeps its state in {storage}, not MongoDB "
            "(set a `mongodb` block in parameters.tfvars)"
        )
    database = env.get("MongoDB__DatabaseName", "ArmoniK")
    uri = env.get("MongoDB__ConnectionString") or (
        f"mongodb://{env.get('MongoDB__Host', '127.0.0.1')}:{env.get('MongoDB__Port', '27017')}/{quote(database)}"
        + (f"?replicaSet={quote(env['MongoDB__ReplicaSet'])}" if env.get("MongoDB__ReplicaSet") else "")
    )
    command = ["mongosh", uri]
    if _truthy(env.get("MongoDB__Tls")) or env.get("MongoDB__CAFile"):
        command.append("--tls")
    if env.get("MongoDB__CAFile"):
        command += ["--tlsCAFile", env["MongoDB__CAFile"]]
    if _truthy(env.get("MongoDB__AllowInsecureTls")):
        command.append("--tlsAllowInvalidCertificates")
    if role == "admin":
        if not admin_user:
            raise MongoAccessError("the admin role needs MONGODB_ADMIN_USER and MONGODB_ADMIN_PASSWORD")
        command += ["-u", admin_user, "-p", admin_password, "--authenticationDatabase", "admin"]
    elif env.get("MongoDB__User"):
        command += ["-u", env["MongoDB__User"], "-p", env.get("MongoDB__Password", "")]
        command += ["--authenticationDatabase", env.get("MongoDB__AuthSource", database)]
    return command


def kubernetes_command(
    namespace: str, role: str, password: str, admin_user: str = "", database: str = DEFAULT_DATABASE
) -> list[str]:
    """`kubectl exec` into the replica set's first pod; `password` read from the deployment's secret, `database`
    the deployment's (`mongodb.cluster.database_name`, `MongoDB__DatabaseName` of its core settings), where the
    application user is defined."""
    user, auth_db = (admin_user, "admin") if role == "admin" else (MONGODB_USER, database)
    pod = f"{MONGODB_CLUSTER}-rs0-0"
    return [
        "kubectl", "-n", namespace, "exec", "-it", pod, "--",
        "mongosh", f"mongodb://{POD_HOST}:27017/{database}",
        "--tls", "--tlsCAFile", POD_CA_FILE,
        "-u", user, "-p", password, "--authenticationDatabase", auth_db,
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--role", choices=("user", "admin"), default="user")
    parser.add_argument("--target", choices=("local", "kubernetes"), default="local")
    parser.add_argument("--generated", type=Path, default=Path("generated"))
    parser.add_argument("--namespace", default="armonik")
    parser.add_argument("--password", default="", help="kubernetes: the password read from the secret")
    parser.add_argument(
        "--database",
        default=DEFAULT_DATABASE,
        help="kubernetes: the deployment's database (MongoDB__DatabaseName)",
    )
    parser.add_argument("--admin-user", default="")
    parser.add_argument("--admin-password", default="")
    args = parser.parse_args(argv)
    try:
        if args.target == "local":
            command = local_command(args.generated, args.role, args.admin_user, args.admin_password)
        else:
            command = kubernetes_command(
                args.namespace, args.role, args.password, args.admin_user, args.database or DEFAULT_DATABASE
            )
    except MongoAccessError as exc:
        print(f"mongo access: {exc}", file=sys.stderr)
        sys.exit(2)
    print(EXAMPLES, file=sys.stderr)
    print(shlex.join(command))


if __name__ == "__main__":
    main()
