#!/usr/bin/env bash
# Starts the Worker locally on http://localhost:8787 on the real workerd runtime,
# installing and building whatever is missing first, with the local D1 migrated and
# the documented local secrets (.dev.vars, from .dev.vars.example: API_TOKEN=dev-token).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/node_modules/.bin:$PATH"
[ -f .dev.vars ] || cp .dev.vars.example .dev.vars
wrangler d1 migrations apply DB --local
exec wrangler dev --port 8787 "$@"
