#!/usr/bin/env bash
# Starts the Worker locally on http://localhost:8787 on the real workerd runtime,
# installing and building whatever is missing first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/node_modules/.bin:$PATH"
exec wrangler dev --port 8787 "$@"
