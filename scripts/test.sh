#!/usr/bin/env bash
# Runs every test and quality gate: formatting, clippy (host and wasm32, warnings are
# errors, unused dependencies included), the host tests (cargo test), then the built
# Worker on the local workerd runtime (wrangler dev) driven over HTTP, with loopback
# stand-ins for outside services where it calls any (tests/e2e, node:test).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --browser
source scripts/tools.sh
# Tests build and run the Worker with the probe (the cargo feature `probe`, where there is one).
export WORKFLOWS_PROBE=1

echo "== formatting (cargo fmt --check)"
cargo fmt --all --check

echo "== lints (cargo clippy, host and wasm32)"
cargo clippy --quiet --workspace --all-targets -- -D warnings
cargo clippy --quiet --workspace --all-targets --target wasm32-unknown-unknown -- -D warnings

# The library crates' documentation: every public item documented (missing_docs), no
# broken links, for the host (with the test engine) and for wasm32 (the edge).
libraries=()
for crate in crates/*/; do libraries+=(-p "$(basename "$crate")"); done
if [ ${#libraries[@]} -gt 0 ]; then
  echo "== library docs (cargo doc, host and wasm32)"
  RUSTDOCFLAGS="-D warnings" cargo doc --quiet --no-deps "${libraries[@]}" --features worker-workflows/testing
  RUSTDOCFLAGS="-D warnings" cargo doc --quiet --no-deps "${libraries[@]}" --target wasm32-unknown-unknown
fi

echo "== host tests (cargo test)"
cargo test --quiet --workspace

echo "== building the Worker"
bash scripts/build.sh

echo "== integration tests on the local runtime (wrangler dev)"
node --test --experimental-test-isolation=none --test-timeout=300000 "tests/e2e/*.test.mjs"
