#!/usr/bin/env bash
# mongosh on the deployment's MongoDB as the database admin (see access-mongo.sh): [local|kubernetes]
exec "$(dirname "$0")/access-mongo.sh" admin "$@"
