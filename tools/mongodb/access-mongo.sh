#!/usr/bin/env bash
# Open mongosh on the deployment's MongoDB with TLS, as ROLE (user or admin):
#   access-mongo.sh ROLE [local|kubernetes]
# local (default): the database a local deployment (`make deploy` with a `mongodb` block) uses, read from
#   $GENERATED/deploy/plan.json (GENERATED defaults to the repository's generated/); admin needs
#   MONGODB_ADMIN_USER and MONGODB_ADMIN_PASSWORD.
# kubernetes: mongosh inside the replica set's first pod of namespace $NAMESPACE (default armonik), with the
#   password of the deployment's secret, its database (MongoDB__DatabaseName of core-configmap) and the CA the
#   operator mounts.
# Set PRINT_ONLY=1 to print the command instead of running it.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
python="${PYTHON:-$root/.venv/bin/python}"
role="${1:?usage: access-mongo.sh user|admin [local|kubernetes]}"
target="${2:-local}"
namespace="${NAMESPACE:-armonik}"
args=(--role "$role" --target "$target")
if [ "$target" = kubernetes ]; then
  secret_value() { kubectl -n "$namespace" get secret "$1" -o "jsonpath={.data.$2}" | base64 -d; }
  if [ "$role" = admin ]; then
    args+=(--admin-user "$(secret_value mongodb-db-ps-secrets MONGODB_DATABASE_ADMIN_USER)")
    args+=(--password "$(secret_value mongodb-db-ps-secrets MONGODB_DATABASE_ADMIN_PASSWORD)")
  else
    args+=(--password "$(secret_value application-user-password password)")
  fi
  # The database the application user is defined in: the deployment's own (core settings), "database" by default.
  database="$(kubectl -n "$namespace" get configmap core-configmap -o 'jsonpath={.data.MongoDB__DatabaseName}' 2>/dev/null || true)"
  args+=(--namespace "$namespace" --database "${database:-database}")
else
  args+=(--generated "${GENERATED:-$root/generated}")
  args+=(--admin-user "${MONGODB_ADMIN_USER:-}" --admin-password "${MONGODB_ADMIN_PASSWORD:-}")
fi
command="$("$python" -m armonik_deploy.mongo_access "${args[@]}")"
if [ "${PRINT_ONLY:-0}" = 1 ]; then
  echo "$command"
  exit 0
fi
if [ "$target" = local ] && ! command -v mongosh >/dev/null; then
  echo "mongosh is not installed (npm install -g mongosh, or MongoDB's packages)" >&2
  exit 127
fi
eval "exec $command"
