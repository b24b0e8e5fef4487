#!/usr/bin/env bash
# Runs every test: the pure core on the host (cargo test), then the built Worker
# on the local workerd runtime (wrangler dev) driven over HTTP with loopback
# stand-ins for outside services (tests/e2e, node:test).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/node_modules/.bin:$HOME/.cargo/bin:$PATH"

echo "== host tests (cargo test)"
cargo test --quiet

echo "== building the Worker"
bash scripts/build.sh

echo "== integration tests on the local runtime (wrangler dev)"
node --test --experimental-test-isolation=none --test-timeout=300000 "tests/e2e/*.test.mjs"
