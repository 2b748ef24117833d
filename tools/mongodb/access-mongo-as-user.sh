#!/usr/bin/env bash
# mongosh on the deployment's MongoDB as the application user (see access-mongo.sh): [local|kubernetes]
exec "$(dirname "$0")/access-mongo.sh" user "$@"
