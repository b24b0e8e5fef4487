#!/usr/bin/env bash
# Runs every test and quality gate: formatting, clippy (host and wasm32, warnings are
# errors, unused dependencies included), the host tests (cargo test), then the built
# Worker on the local workerd runtime (wrangler dev) driven over HTTP, with loopback
# stand-ins for outside services where it calls any (tests/e2e, node:test).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/tools.sh

echo "== formatting (cargo fmt --check)"
cargo fmt --all --check

echo "== lints (cargo clippy, host and wasm32)"
cargo clippy --quiet --workspace --all-targets -- -D warnings
cargo clippy --quiet --workspace --all-targets --target wasm32-unknown-unknown -- -D warnings

echo "== host tests (cargo test)"
cargo test --quiet --workspace

echo "== building the Worker"
bash scripts/build.sh

echo "== integration tests on the local runtime (wrangler dev)"
node --test --experimental-test-isolation=none --test-timeout=300000 "tests/e2e/*.test.mjs"
